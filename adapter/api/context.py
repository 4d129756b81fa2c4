"""What a request handler shares with the others: the process runtime, the clients, the
clock, and the client of the request in hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy.engine import Engine

from adapter.api.auth import Client, Clients
from adapter.config import Settings
from adapter.runtime import Runtime


@dataclass
class Services:
    """``clock`` is the only source of 'now' for the handlers."""

    runtime: Runtime
    clients: Clients
    clock: Callable[[], dt.datetime]
    # when the store last failed a write (unreachable, full, locked): /readyz is not ready
    # for a while after it, so a load balancer sends elsewhere
    store_failed_at: dt.datetime | None = None

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def engine(self) -> Engine:
        return self.runtime.engine


EXTENSION = "ggop"


def services() -> Services:
    svc: Services = current_app.extensions[EXTENSION]
    return svc


def current_client() -> Client | None:
    client: Client | None = g.get("client")
    return client
