"""The outbox: rows written when a message is accepted, and what an operator sees and does.

``enqueue`` runs inside the ingest transaction: one row per recipient (see
:mod:`adapter.routing.recipients`), each with the payload to deliver — the message's
transaction Bundle, plus the Tasks a letter creates (also stored as resources, so a
municipality that pulls sees them too).

States: ``pending`` (due at ``next_attempt_at``), ``unroutable`` (no route yet; re-checked),
``delivered`` (pushed, or ``mode`` pull: served by ``/fhir``), ``dead`` (a permanent refusal
or retries exhausted; ``last_status`` and ``last_error`` say why), ``cancelled``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from adapter.codes import CodeTables
from adapter.danish_time import as_utc
from adapter.routing.recipients import (
    Recipient,
    recipients_of,
)
from adapter.store import pg_arrays
from adapter.store.schema import outbox

PENDING, UNROUTABLE, DELIVERED, DEAD, CANCELLED = "pending", "unroutable", "delivered", "dead", "cancelled"
STATES = (PENDING, UNROUTABLE, DELIVERED, DEAD, CANCELLED)
# A row waits while an earlier row for the same patient and recipient is in one of these.
BLOCKING = (PENDING, UNROUTABLE, DEAD)


def enqueue(conn: Connection, *, message_id: int, conversion, tables: CodeTables,
            at: dt.datetime, municipality: str | None, order_key: str,
            changed_by: str | None) -> list[Recipient]:
    """Write the accepted message's outbox rows in the caller's transaction (a letter's Tasks are
    in its Bundle already: the conversion makes them, and the store saved them with the rest)."""
    at = at.astimezone(dt.UTC)  # SQLite keeps no offset: every outbox time is UTC
    payload = conversion.bundle
    recipients = recipients_of(conversion.message, conversion.trace, tables)
    if recipients and conn.dialect.name == "postgresql":  # one statement of fixed text
        pg_arrays.write_outbox(conn, message_id=message_id, at=at, order_key=order_key, state=PENDING,
                               recipients=[(r.key, r.role, list(r.addresses) or None) for r in recipients],
                               payload=payload)
    elif recipients:
        # The payload is stored once, on the message's first row; the others share it. One
        # statement: RETURNING makes SQLAlchemy send the rows as one ``INSERT … VALUES (…), (…)``
        # (in list order, so the first row gets the lowest id) instead of a statement per row.
        conn.execute(_INSERT_ROWS, [dict(
            message_id=message_id, created_at=at, recipient=r.key, role=r.role,
            addresses=list(r.addresses) or None, order_key=order_key, state=PENDING, attempts=0,
            next_attempt_at=at, payload=payload if i == 0 else None) for i, r in enumerate(recipients)])
    return recipients


_INSERT_ROWS = insert(outbox).returning(outbox.c.id)


def payload_of(conn: Connection, row) -> dict | None:
    """A row's payload: stored once per message, on the message's first row."""
    if row.payload is not None:
        return row.payload
    for payload in conn.execute(select(outbox.c.payload).where(
            outbox.c.message_id == row.message_id).order_by(outbox.c.id)).scalars():
        if payload is not None:
            return payload
    return None


# --------------------------------------------------------------------------------------------
# Operator views
# --------------------------------------------------------------------------------------------


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()
    out = dict.fromkeys(STATES, 0)
    out.update(dict(rows))
    return out


_LIST_COLUMNS = [outbox.c.id, outbox.c.message_id, outbox.c.created_at, outbox.c.recipient, outbox.c.role,
                 outbox.c.order_key, outbox.c.state, outbox.c.attempts, outbox.c.next_attempt_at,
                 outbox.c.last_status, outbox.c.last_error, outbox.c.delivered_at, outbox.c.mode,
                 outbox.c.endpoint, outbox.c.last_attempt_at, outbox.c.failing_since, outbox.c.addresses]


@dataclass
class RowView:
    row: Row[*tuple[Any, ...]]  # an outbox row: the _LIST_COLUMNS (list_rows) or all columns (get_row)
    blocked_by: tuple[int, str] | None = None

    def why(self, now: dt.datetime) -> str:
        """Why a row is where it is, in one line (ids, statuses and times only)."""
        r = self.row
        if r.state == DELIVERED:
            how = "pulled from /fhir (mode pull)" if r.mode == "pull" else f"pushed to {r.endpoint}"
            return f"delivered {utc_text(r.delivered_at)}: {how}"
        if r.state == CANCELLED:
            return "cancelled by an operator" + (f" ({r.last_error})" if r.last_error else "")
        if r.state == DEAD:
            status = f"last status {r.last_status}" if r.last_status else "no HTTP status"
            return f"dead letter after {r.attempts} attempt(s), {status}: {r.last_error or '-'}"
        if r.state == UNROUTABLE:
            return (f"ALERT unroutable: {r.last_error or 'no route for ' + r.recipient}; "
                    f"checked again at {utc_text(r.next_attempt_at)}")
        parts = []
        if self.blocked_by is not None:
            parts.append(f"waits for outbox #{self.blocked_by[0]} ({self.blocked_by[1]}): same patient and "
                         "recipient, delivered in order")
        due = as_utc(r.next_attempt_at) if r.next_attempt_at else None
        if due is None:
            parts.append("due now")
        elif due <= now:
            parts.append(f"due now (next attempt was set for {utc_text(due)})")
        else:
            parts.append(f"next attempt at {utc_text(due)}")
        if r.attempts:
            last = f"last status {r.last_status}" if r.last_status else "no response"
            parts.append(f"after {r.attempts} attempt(s), {last}: {r.last_error or '-'}")
        return "; ".join(parts)


def utc_text(value: dt.datetime | None) -> str:
    """A stored time for an operator: UTC to the second, ``-`` for none."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def blocker(conn: Connection, row) -> tuple[int, str] | None:
    """The earliest undelivered row for the same patient and recipient before this one."""
    found = conn.execute(select(outbox.c.id, outbox.c.state).where(and_(
        outbox.c.order_key == row.order_key, outbox.c.recipient == row.recipient, outbox.c.id < row.id,
        outbox.c.state.in_(BLOCKING))).order_by(outbox.c.id).limit(1)).first()
    return (found.id, found.state) if found else None


def list_rows(conn: Connection, *, states: tuple[str, ...] = (), recipient: str | None = None,
              message_id: int | None = None, limit: int = 100) -> list[RowView]:
    q = select(*_LIST_COLUMNS).order_by(outbox.c.id).limit(limit)
    if states:
        q = q.where(outbox.c.state.in_(states))
    if recipient:
        q = q.where(outbox.c.recipient == recipient)
    if message_id is not None:
        q = q.where(outbox.c.message_id == message_id)
    out = []
    for row in conn.execute(q):
        out.append(RowView(row, blocker(conn, row) if row.state == PENDING else None))
    return out


def get_row(conn: Connection, row_id: int):
    return conn.execute(select(outbox).where(outbox.c.id == row_id)).first()


def replay(conn: Connection, *, ids: tuple[int, ...] = (), recipient: str | None = None,
           include_delivered: bool = False, now: dt.datetime) -> list[int]:
    """Send rows again from now: dead letters (and cancelled or unroutable rows) by id, or
    everything dead for a recipient after an outage; ``include_delivered`` also resends what
    was delivered (entries are PUTs with fixed ids, so the receiver only gets new versions)."""
    states = [DEAD, CANCELLED, UNROUTABLE, PENDING] + ([DELIVERED] if include_delivered else [])
    if not ids:
        states = [DEAD] + ([DELIVERED] if include_delivered else [])
    q = select(outbox.c.id).where(outbox.c.state.in_(states))
    if ids:
        q = q.where(outbox.c.id.in_(ids))
    if recipient:
        q = q.where(outbox.c.recipient == recipient)
    chosen = [r.id for r in conn.execute(q.order_by(outbox.c.id))]
    if chosen:
        conn.execute(update(outbox).where(outbox.c.id.in_(chosen)).values(
            state=PENDING, attempts=0, next_attempt_at=now, failing_since=None, delivered_at=None))
    return chosen


def cancel(conn: Connection, ids: tuple[int, ...], *, reason: str | None = None) -> list[int]:
    """Stop delivering rows that are not delivered yet."""
    q = select(outbox.c.id).where(and_(outbox.c.id.in_(ids), outbox.c.state.in_((PENDING, UNROUTABLE, DEAD))))
    chosen = [r.id for r in conn.execute(q)]
    if chosen:
        conn.execute(update(outbox).where(outbox.c.id.in_(chosen)).values(
            state=CANCELLED, next_attempt_at=None, last_error=(reason or "cancelled")[:200]))
    return chosen
