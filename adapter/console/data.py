"""What the console reads from the store: the message log, one message with everything that
came of it, the outbox per recipient, the audit trail. Every query takes the viewer's scope:
an operator sees everything, a municipality's tester only messages addressed to it (and
their outbox rows)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from adapter.api.auth import Client
from adapter.danish_time import DANISH_TIME, as_utc
from adapter.errors import CATALOGUE
from adapter.routing import outbox as box
from adapter.store.schema import audit, messages, outbox, resource_history, resources

PAGE = 50
RESULTS = ("accepted", "refused", "duplicate", "superseded", "failed", "received")
LOG_COLUMNS = [messages.c.id, messages.c.received_at, messages.c.kind, messages.c.sender_ean,
               messages.c.receiver_ean, messages.c.envelope_id, messages.c.letter_id, messages.c.letter_status,
               messages.c.municipality, messages.c.state, messages.c.http_status, messages.c.issue_codes,
               messages.c.client, messages.c.receipt_positive, messages.c.receipt.is_not(None).label("has_receipt")]


@dataclass(frozen=True)
class Scope:
    municipality: str | None  # None: everything (operator)

    @classmethod
    def of(cls, client: Client) -> Scope:
        return cls(None if client.role == "operator" else client.municipality or "----")

    def messages(self):
        return messages.c.municipality == self.municipality if self.municipality is not None else None


@dataclass
class LogQuery:
    letter_id: str | None = None
    day_from: dt.date | None = None
    day_to: dt.date | None = None
    result: str | None = None
    kind: str | None = None
    before: int | None = None  # keyset paging: message ids below this


def local_day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), DANISH_TIME).astimezone(dt.UTC)


def message_log(conn: Connection, scope: Scope, q: LogQuery) -> list[Any]:
    stmt = select(*LOG_COLUMNS).order_by(messages.c.id.desc()).limit(PAGE + 1)
    where = scope.messages()
    if where is not None:
        stmt = stmt.where(where)
    if q.letter_id:
        stmt = stmt.where(or_(messages.c.letter_id == q.letter_id, messages.c.envelope_id == q.letter_id))
    if q.day_from:
        stmt = stmt.where(messages.c.received_at >= local_day_start(q.day_from))
    if q.day_to:
        stmt = stmt.where(messages.c.received_at < local_day_start(q.day_to + dt.timedelta(days=1)))
    if q.result:
        stmt = stmt.where(messages.c.state == q.result)
    if q.kind:
        stmt = stmt.where(messages.c.kind == q.kind)
    if q.before:
        stmt = stmt.where(messages.c.id < q.before)
    return list(conn.execute(stmt))


def recipients_of(conn: Connection, message_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    if not message_ids:
        return out
    for r in conn.execute(select(outbox.c.message_id, outbox.c.recipient, outbox.c.state)
                          .where(outbox.c.message_id.in_(message_ids)).order_by(outbox.c.id)):
        out.setdefault(r.message_id, []).append((r.recipient, r.state))
    return out


def get_message(conn: Connection, scope: Scope, message_id: int):
    stmt = select(messages).where(messages.c.id == message_id)
    where = scope.messages()
    if where is not None:
        stmt = stmt.where(where)
    return conn.execute(stmt).first()


@dataclass
class IssueView:
    code: str
    line: int | None
    xpath: str | None
    severity: str
    title: str


def issues_of(row) -> list[IssueView]:
    out = []
    for i in row.issue_codes or []:
        info = CATALOGUE.get(i.get("code", ""))
        out.append(IssueView(i.get("code", "?"), i.get("line"), i.get("xpath"),
                             info.severity if info else "error", info.title if info else "unknown code"))
    return sorted(out, key=lambda x: (x.severity != "error", x.line or 0))


def produced(conn: Connection, message_id: int) -> list[Any]:
    """The resource versions this message wrote (a shared resource the message only confirmed
    keeps the version of the message that wrote it)."""
    return list(conn.execute(select(resource_history.c.type, resource_history.c.id, resource_history.c.version_id,
                                    resource_history.c.last_updated, resource_history.c.content)
                             .where(resource_history.c.message_id == message_id)
                             .order_by(resource_history.c.type, resource_history.c.id, resource_history.c.version_id)))


def current_versions(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    ids = sorted({k[1] for k in keys})
    if not ids:
        return out
    for r in conn.execute(select(resources.c.type, resources.c.id, resources.c.version_id)
                          .where(resources.c.id.in_(ids))):
        out[(r.type, r.id)] = r.version_id
    return out


def outbox_rows(conn: Connection, scope: Scope, *, message_id: int | None = None, recipient: str | None = None,
                states: tuple[str, ...] = (), limit: int = 200) -> list[box.RowView]:
    """Outbox rows with why each is where it is; a municipality's tester sees the rows of the
    messages addressed to it only."""
    if scope.municipality is None:
        return box.list_rows(conn, states=states, recipient=recipient, message_id=message_id, limit=limit)
    stmt = select(outbox).where(outbox.c.message_id.in_(
        select(messages.c.id).where(messages.c.municipality == scope.municipality)))
    if message_id is not None:
        stmt = stmt.where(outbox.c.message_id == message_id)
    if recipient:
        stmt = stmt.where(outbox.c.recipient == recipient)
    if states:
        stmt = stmt.where(outbox.c.state.in_(states))
    return [box.RowView(r, box.blocker(conn, r) if r.state == box.PENDING else None)
            for r in conn.execute(stmt.order_by(outbox.c.id).limit(limit))]


@dataclass
class RecipientSummary:
    recipient: str
    counts: dict[str, int] = field(default_factory=dict)
    oldest_waiting: dt.datetime | None = None
    next_attempt: dt.datetime | None = None
    last_error: str | None = None
    last_status: int | None = None
    last_attempt: dt.datetime | None = None

    @property
    def waiting(self) -> int:
        return sum(self.counts.get(s, 0) for s in (box.PENDING, box.UNROUTABLE, box.DEAD))


def recipient_summaries(conn: Connection, scope: Scope) -> list[RecipientSummary]:
    base = []
    if scope.municipality is not None:
        base.append(outbox.c.message_id.in_(select(messages.c.id).where(messages.c.municipality == scope.municipality)))
    out: dict[str, RecipientSummary] = {}
    for r in conn.execute(select(outbox.c.recipient, outbox.c.state, func.count()).where(*base)
                          .group_by(outbox.c.recipient, outbox.c.state)):
        out.setdefault(r[0], RecipientSummary(r[0])).counts[r[1]] = int(r[2])
    waiting = (box.PENDING, box.UNROUTABLE, box.DEAD)
    for r in conn.execute(select(outbox.c.recipient, func.min(outbox.c.created_at),
                                 func.min(case_pending_next())).where(outbox.c.state.in_(waiting), *base)
                          .group_by(outbox.c.recipient)):
        s = out.get(r[0])
        if s is not None:
            s.oldest_waiting = as_utc(r[1]) if r[1] else None
            s.next_attempt = as_utc(r[2]) if r[2] else None
    latest = select(outbox.c.recipient, func.max(outbox.c.last_attempt_at).label("at")).where(
        outbox.c.last_error.is_not(None), *base).group_by(outbox.c.recipient).subquery()
    joined = and_(latest.c.recipient == outbox.c.recipient, latest.c.at == outbox.c.last_attempt_at)
    for r in conn.execute(select(outbox.c.recipient, outbox.c.last_error, outbox.c.last_status,
                                 outbox.c.last_attempt_at).join(latest, joined)):
        s = out.get(r.recipient)
        if s is not None:
            s.last_error, s.last_status = r.last_error, r.last_status
            s.last_attempt = as_utc(r.last_attempt_at) if r.last_attempt_at else None
    return sorted(out.values(), key=lambda s: (-s.waiting, s.recipient))


def case_pending_next():
    from sqlalchemy import case

    return case((outbox.c.state.in_((box.PENDING, box.UNROUTABLE)), outbox.c.next_attempt_at), else_=None)


def audit_rows(conn: Connection, targets: list[str], limit: int = 100) -> list[Any]:
    if not targets:
        return []
    return list(conn.execute(select(audit.c.at, audit.c.client, audit.c.role, audit.c.action, audit.c.target,
                                    audit.c.outcome, audit.c.detail)
                             .where(audit.c.target.in_(targets)).order_by(audit.c.id).limit(limit)))


def message_of_outbox(conn: Connection, row_ids: list[int]) -> dict[int, tuple[int, str | None]]:
    """outbox id → (message id, message municipality)."""
    return {r.id: (r.message_id, r.municipality) for r in conn.execute(
        select(outbox.c.id, outbox.c.message_id, messages.c.municipality)
        .join(messages, messages.c.id == outbox.c.message_id).where(outbox.c.id.in_(row_ids)))}
