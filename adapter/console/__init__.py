"""The operator console at ``/console``: server-rendered pages (Flask blueprint, Jinja
templates, one stylesheet, no script needed) for operators and for a municipality's
integration tester limited to its own messages. See docs/console.md."""

from __future__ import annotations

from flask import Flask

from adapter.api.auth import Clients
from adapter.config import Settings
from adapter.console.session import Sessions, load_secret
from adapter.console.views import EXTENSION, blueprint


def register(app: Flask, settings: Settings, clients: Clients) -> None:
    """Mount the console on ``app`` (the session secret is read, or created, now: a broken
    one stops the start with a located GGOP-E708)."""
    app.extensions[EXTENSION] = Sessions(load_secret(settings), clients, settings.console_session_hours)
    app.register_blueprint(blueprint)
