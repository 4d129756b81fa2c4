"""Who may do what on ``/fhir``, and the audit trail of it.

* no or an unknown bearer token: 401 (``WWW-Authenticate: Bearer``);
* ``hospital`` clients: 403 on everything but ``/fhir/metadata`` (they only push to /medcom);
* ``operator`` clients: read and search everything, update nothing (403);
* ``municipality`` clients: read, search and update only resources whose ``municipality``
  column is their code. A resource of another municipality is answered with 404, exactly as
  an unknown id, so a client cannot learn that it exists.

The scope is applied in SQL on every request (``adapter.store.search.Scope``); nothing about
it is carried in a URL, so a paging link used by another client shows that client's data.

Audit rows name the client, its role, the action, the target (``Task/<id>`` or, for a
search, the type and the parameter *names*) and the HTTP status; never a parameter value,
a CPR number or a name. Ids that are not the adapter's own id format are not written.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from sqlalchemy import insert
from sqlalchemy.engine import Connection, Engine

from adapter.api.auth import Client
from adapter.store.schema import audit
from adapter.store.search import Scope

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-:.]{0,63}$")
LONG_DIGITS = re.compile(r"\d{6}")


class Denied(Exception):
    """401 (no valid token) or 403 (the client's role may not do this)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def require_reader(client: Client | None) -> Client:
    if client is None:
        raise Denied(401, "A valid bearer token is required.")
    if client.role not in ("municipality", "operator"):
        raise Denied(403, "This client may not read the FHIR API.")
    if client.role == "municipality" and not client.municipality:
        raise Denied(403, "This client is bound to no municipality.")
    return client


def require_writer(client: Client | None) -> Client:
    client = require_reader(client)
    if client.role != "municipality":
        raise Denied(403, "This client may only read.")
    return client


def scope_for(client: Client) -> Scope:
    if client.role == "operator":
        return Scope(everything=True)
    if client.role == "municipality" and client.municipality:
        return Scope(municipality=client.municipality)
    return Scope()  # sees nothing


# --------------------------------------------------------------------------------------------
# Audit
# --------------------------------------------------------------------------------------------


def safe_id(value: str) -> str:
    """An id for a log line: the adapter's ids are UUIDs; anything else is not written."""
    return value if UUID.match(value) else "-"


def safe_name(value: str) -> str:
    """A parameter name for a log line or an outcome (never anything that looks like data)."""
    return value if SAFE_NAME.match(value) and not LONG_DIGITS.search(value) else "(unreadable name)"


def search_target(rtype: str, names: Iterable[str]) -> str:
    seen: list[str] = []
    for n in names:
        n = safe_name(n)
        if n not in seen:
            seen.append(n)
    return (f"{rtype}?" + ",".join(seen))[:200]


def record(engine: Engine, at: dt.datetime, client: Client | None, action: str, target: str | None,
           outcome: int | str, detail: str | None = None) -> None:
    """One audit row, in its own transaction (a refused or failed request is logged too)."""
    with engine.begin() as conn:
        record_in(conn, at, client, action, target, outcome, detail)


def record_in(conn: Connection, at: dt.datetime, client: Client | None, action: str, target: str | None,
              outcome: int | str, detail: str | None = None) -> None:
    """One audit row in the caller's transaction (an update and its audit row commit together)."""
    conn.execute(insert(audit).values(
        at=at, client=client.name if client else None, role=client.role if client else None,
        action=action, target=target[:200] if target else None, outcome=str(outcome),
        detail=detail[:500] if detail else None))
