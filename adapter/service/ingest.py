"""Receiving one MedCom message: store it, deduplicate it the MedCom way, process it,
and answer with the receipt — all in one database transaction.

- The message is read, checked and converted before its transaction (that touches nothing);
  the transaction then writes the raw bytes with everything made from them, and nothing the
  sender has been told "received" is ever lost, because the receipt only leaves after the
  transaction committed.
- Duplicates (same sender, envelope id and letter id, same bytes) get the byte-identical
  receipt they got the first time and create nothing new; concurrent duplicates race on
  the ``message_keys`` primary key, and the loser answers as a duplicate.
- A letter id reused for different content is refused (``GGOP-E321``); a corrected letter
  (``rettetbrev``) supersedes the earlier version, whose resources keep their history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy import String, and_, bindparam, cast, insert, literal_column, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from adapter import metrics
from adapter.danish_time import local_datetime
from adapter.errors import AdapterError, Issue, MappingError, issue
from adapter.fhir.bundle import patient_id
from adapter.logs import record_correlation
from adapter.medcom.identifiers import normalise_municipality_code
from adapter.medcom.model import CorrespondenceMessage, GgopMessage, ReceiptMessage
from adapter.medcom.receipt_writer import ReceiptAddress, build_receipt, salvage_address
from adapter.pipeline import Conversion, Validation
from adapter.routing.outbox import enqueue
from adapter.store.resources import current_shared, save_bundle, withdraw_access
from adapter.store.schema import audit, message_keys, messages


class _Stored(Protocol):
    """What a message's transaction answers with: at least the message's row id."""

    message_id: int


M = TypeVar("M", bound=_Stored)

if TYPE_CHECKING:
    from adapter.runtime import Runtime

ACCEPTED, REFUSED, DUPLICATE, SUPERSEDED = "accepted", "refused", "duplicate", "superseded"


def written_at(msg: GgopMessage | CorrespondenceMessage) -> dt.datetime | None:
    """When the sender wrote the letter (its authorisation time): of two messages about one
    citizen, the later written one's Patient wins, whichever arrives first."""
    when = local_datetime(msg.letter.authorisation_date.value if msg.letter.authorisation_date else None,
                          msg.letter.authorisation_time.value if msg.letter.authorisation_time else None)
    return when.astimezone(dt.UTC) if when is not None else None


@dataclass
class IngestResult:
    message_id: int
    state: str
    http_status: int
    receipt: bytes | None
    receipt_positive: bool
    issues: list[Issue] = field(default_factory=list)
    bundle: dict | None = None


@dataclass(frozen=True)
class Identity:
    kind: str | None
    sender_ean: str | None
    receiver_ean: str | None
    envelope_id: str | None
    letter_id: str | None
    letter_status: str | None
    municipality: str | None

    @property
    def complete(self) -> bool:
        return bool(self.sender_ean and self.envelope_id and self.letter_id)

    def receipt_address(self, version_code: str | None = None) -> ReceiptAddress | None:
        """Where a receipt for this message goes: None unless the identity is complete and names the receiver."""
        if not (self.sender_ean and self.envelope_id and self.letter_id and self.receiver_ean):
            return None
        return ReceiptAddress(self.envelope_id[:14], self.letter_id[:14], version_code, self.sender_ean,
                              self.receiver_ean)


def identity_of(msg) -> Identity:
    if msg is None:
        return Identity(None, None, None, None, None, None, None)
    kind = "ggop" if isinstance(msg, GgopMessage) else "xdis91" if isinstance(msg, CorrespondenceMessage) else "xctl"
    if isinstance(msg, ReceiptMessage):
        return Identity(kind, msg.sender_ean.value if msg.sender_ean else None,
                        msg.receiver_ean.value if msg.receiver_ean else None,
                        msg.envelope.identifier.value if msg.envelope.identifier else None,
                        msg.letter.identifier.value if msg.letter.identifier else None, None, None)
    sender = msg.sender.ean.value if msg.sender and msg.sender.ean else None
    receiver = msg.receiver
    municipality = None
    if receiver is not None and receiver.identifier is not None and receiver.identifier_code is not None \
            and receiver.identifier_code.value.lower() == "kommunenummer":
        municipality = normalise_municipality_code(receiver.identifier.value)
    return Identity(
        kind, sender, receiver.ean.value if receiver and receiver.ean else None,
        msg.envelope.identifier.value[:35] if msg.envelope.identifier else None,
        msg.letter.identifier.value[:35] if msg.letter.identifier else None,
        msg.letter.status_code.value if msg.letter.status_code else None,
        municipality)


def _issue_codes(issues: list[Issue]) -> list[dict]:
    return [{"code": i.code, "line": i.location.line, "xpath": i.location.xpath} for i in issues]


def _http_status(issues: list[Issue], accepted: bool) -> int:
    if accepted:
        return 200
    first = next((i for i in issues if i.is_error), None)
    return first.info.http_status if first is not None else 422


@metrics.counted_ingest
def ingest(runtime: Runtime, raw: bytes, *, received_at: dt.datetime, client: str | None = None,
           allowed_senders: tuple[str, ...] = (), correlation_id: str | None = None) -> IngestResult:
    """Store, deduplicate, process and answer one message. Safe to call concurrently.

    ``allowed_senders``: when given, the GLNs the pushing client may send as; a message
    from another sender is stored, refused with 403 and gets no receipt. ``correlation_id``:
    the request's, recorded with the message in the same transaction."""
    prepared = prepare(runtime, raw, received_at=received_at, allowed_senders=allowed_senders)

    def keep_failed(conn: Connection, exc: MappingError) -> None:
        keep_failed_message(conn, raw, received_at, client, exc)

    return stored_first(runtime.engine, lambda conn: store_prepared(conn, runtime, prepared, client), keep_failed,
                        (received_at, correlation_id))


def keep_failed_message(conn: Connection, raw: bytes, received_at: dt.datetime, client: str | None,
                        exc: MappingError) -> None:
    """A defect of ours: the processing is rolled back, but the message is kept (state failed,
    no receipt) so an operator can see and replay it; the sender gets a 500."""
    conn.execute(_INSERT_MESSAGE, dict(
        received_at=received_at, sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), raw=raw,
        state="failed", client=client, issue_codes=_issue_codes(exc.issues), http_status=500))
    _audit(conn, received_at, client, "push", "message", "failed", ",".join(sorted({i.code for i in exc.issues})))


@dataclass
class Prepared:
    """A message read, checked and (when it can be accepted) converted: the pure work, done
    before its transaction begins, so the transaction holds its connection only for the
    store's statements. Nothing of it is answered before :func:`store_prepared` committed."""

    raw: bytes
    sha256: str
    received_at: dt.datetime
    validation: Validation
    ident: Identity
    forbidden: bool
    conversion: Conversion | None = None
    error: AdapterError | None = None  # the conversion's refusal, or a defect of ours (MappingError)


def prepare(runtime: Runtime, raw: bytes, *, received_at: dt.datetime,
            allowed_senders: tuple[str, ...] = ()) -> Prepared:
    """Read, check and convert ``raw`` (touches no store; raises nothing the message causes)."""
    validation = runtime.validate(raw)
    ident = identity_of(validation.message)
    prepared = Prepared(raw, hashlib.sha256(raw).hexdigest(), received_at, validation, ident,
                        bool(allowed_senders) and ident.sender_ean not in allowed_senders)
    if prepared.forbidden or not validation.accepted or isinstance(validation.message, ReceiptMessage):
        return prepared
    try:
        with metrics.conversion_timer(ident.kind):
            prepared.conversion = runtime.convert(raw, received_at, validation=validation)
    except AdapterError as exc:  # a refusal, or (MappingError) a defect of ours: raised in the transaction
        prepared.error = exc
    return prepared


def stored_first(engine: Engine, work: Callable[[Connection], M],
                 keep_failed: Callable[[Connection, MappingError], None],
                 correlation: tuple[dt.datetime, str | None] | None = None) -> M:
    """``work`` in one transaction, so nothing is answered before it is stored; with
    ``correlation`` (when, the request's correlation id), the id is recorded for the message in
    the same transaction. A concurrent copy that commits first makes ours fail on the
    deduplication keys: we run again and answer as its duplicate. A defect of ours
    (MappingError) rolls back, then ``keep_failed`` keeps the raw message as failed in a
    transaction of its own, and the error goes on."""
    def attempt() -> M:
        with engine.begin() as conn:
            result = work(conn)
            if correlation is not None and correlation[1] is not None:
                record_correlation(conn, correlation[0], result.message_id, correlation[1])
            return result

    for _attempt in range(3):
        try:
            return attempt()
        except IntegrityError:
            continue  # a concurrent copy committed first: answer as its duplicate
        except OperationalError as exc:
            if not _rolled_back_by_server(exc):
                raise
            continue  # a deadlock or serialization failure the server resolved by ending ours: again
        except MappingError as exc:
            with engine.begin() as conn:
                keep_failed(conn, exc)
            raise
    return attempt()  # pragma: no cover - only under pathological contention


def _rolled_back_by_server(exc: OperationalError) -> bool:
    """PostgreSQL ended the transaction to resolve a conflict (SQLSTATE class 40: a deadlock, a
    serialization failure); running it again is the prescribed answer."""
    return str(getattr(exc.orig, "sqlstate", "") or "").startswith("40")


def store_prepared(conn: Connection, runtime: Runtime, prepared: Prepared, client: str | None, *,
                   count: bool = True, locked: set[tuple[str, str]] | None = None) -> IngestResult:
    """The transaction's work for one prepared message; counts it once it is decided (unless
    ``count`` is false: the caller counts it after its commit). ``locked``: the shared resources
    a transaction of several messages locked up front (:func:`adapter.store.resources.lock_shared_of`)."""
    try:
        out = _store(conn, runtime, prepared, client, locked)
    except MappingError:
        if count:
            metrics.observe_message(None, "failed", [])
        raise
    if count:
        metrics.observe_message(prepared.ident.kind, out.state, out.issues)
    return out


def _store(conn: Connection, runtime: Runtime, p: Prepared, client: str | None,
           locked: set[tuple[str, str]] | None = None) -> IngestResult:
    # Every path writes the message row once, in its final state, with the identity read from
    # it; nothing of it is acknowledged before the commit.
    raw, sha, received_at, ident, validation = p.raw, p.sha256, p.received_at, p.ident, p.validation
    row = dict(received_at=received_at, sha256=sha, size=len(raw), raw=raw, client=client, kind=ident.kind,
               sender_ean=ident.sender_ean, receiver_ean=ident.receiver_ean, envelope_id=ident.envelope_id,
               letter_id=ident.letter_id, letter_status=ident.letter_status, municipality=ident.municipality)

    if p.forbidden:
        forbidden = [issue("GGOP-E902", None, "/Emessage", "this client may not send as this sender")]
        message_id = _insert_message(conn, row, state=REFUSED, issue_codes=_issue_codes(forbidden), http_status=403,
                                     receipt_positive=False)
        _audit(conn, received_at, client, "push", f"message/{message_id}", "403", "sender not allowed for client")
        return IngestResult(message_id, REFUSED, 403, None, False, forbidden)

    earlier_id: int | None = None
    if ident.complete:
        # one query: the identity key (with its message's state) and the letter's latest
        # accepted version
        keys = {"s": ident.sender_ean, "e": ident.envelope_id, "l": ident.letter_id}
        found = conn.execute(_LOOKUP, keys).one()
        existing = (found.key_message, found.key_sha) if found.key_message is not None else None
        if existing is not None and existing[1] != sha and found.key_state == REFUSED:
            # a refused message, corrected and resent under the same ids
            conn.execute(_DELETE_KEY, keys)
            existing = None
        if existing is not None:
            if existing[1] == sha:
                return _duplicate(conn, row, existing[0], client)
            return _refuse(conn, row, raw, received_at, client,
                           [issue("GGOP-E321", None, "/Emessage/Envelope/Identifier",
                                  "the envelope and letter id were used before for other content")], ident)
        earlier_id = found.earlier_id
        if earlier_id is not None and found.earlier_sha == sha:
            # the same bytes committed by a concurrent copy (under other envelope ids)
            return _duplicate(conn, row, earlier_id, client)
        if earlier_id is not None and ident.letter_status not in ("rettetbrev", "annulleretbrev"):
            return _refuse(conn, row, raw, received_at, client,
                           [issue("GGOP-E321", None, "/Emessage", "the letter id was used before; a change must be "
                                  "sent as rettetbrev")], ident)

    if isinstance(validation.message, ReceiptMessage):
        return _receipt_message(conn, row, client)
    if not validation.accepted:
        return _refuse(conn, row, raw, received_at, client, validation.issues, ident)
    if isinstance(p.error, MappingError):
        raise p.error  # a defect of ours: roll back, answer 500, nothing half-stored
    if p.error is not None:
        return _refuse(conn, row, raw, received_at, client, p.error.issues, ident)
    conversion = p.conversion
    assert conversion is not None, "an accepted message is converted before its transaction"

    msg = validation.message
    addr = ident.receipt_address(msg.letter.version_code.value if msg.letter.version_code else None)
    assert addr is not None, "an accepted message has envelope and letter ids and sender and receiver EANs"
    receipt = build_receipt(addr, received_at)
    final = dict(state=ACCEPTED, issue_codes=_issue_codes(conversion.issues), receipt=receipt, receipt_positive=True,
                 http_status=200, supersedes=earlier_id)
    detail = (f"{ident.kind} {ident.letter_status or 'nytbrev'}"
              + (f" supersedes message/{earlier_id}" if earlier_id is not None else ""))
    merged = conn.dialect.name == "postgresql"
    if merged:
        # message row, identity key and audit row in one statement (a concurrent copy still
        # fails on the key's primary key, and the whole statement with it)
        message_id = conn.execute(_ACCEPT, {**row, **final, "audit_at": received_at, "action": "push",
                                            "outcome": ACCEPTED, "detail": detail}).scalar_one()
    else:
        message_id = _insert_message(conn, row, **final)
        conn.execute(_INSERT_KEY, dict(sender_ean=ident.sender_ean, envelope_id=ident.envelope_id,
                                       letter_id=ident.letter_id, message_id=message_id, sha256=sha))
    stored = save_bundle(conn, conversion.bundle, now=received_at, municipality=ident.municipality,
                         message_id=message_id, changed_by=client, as_of=written_at(conversion.message),
                         locked=locked)
    if earlier_id is not None:
        conn.execute(_SUPERSEDE, {"earlier": earlier_id})
    # One outbox row per recipient (home municipality, consented GP copy, training hospital,
    # copy receivers, the region), each with its payload; a letter's Tasks are stored too.
    patient = patient_id(conversion.bundle)
    if ident.letter_status == "annulleretbrev" and ident.municipality and patient:
        withdraw_access(conn, ident.municipality, patient)
    outgoing = dataclasses.replace(conversion, bundle=current_shared(conversion.bundle, stored))
    enqueue(conn, message_id=message_id, conversion=outgoing, tables=runtime.tables, at=received_at,
            municipality=ident.municipality, order_key=patient or str(message_id), changed_by=client)
    metrics.observe_rules(conversion.trace)
    if not merged:
        _audit(conn, received_at, client, "push", f"message/{message_id}", ACCEPTED, detail)
    return IngestResult(message_id, ACCEPTED, 200, receipt, True, conversion.issues, conversion.bundle)


# Statements built once (SQLAlchemy caches their compiled form): parameters by name.
_INSERT_MESSAGE = insert(messages)
_INSERT_KEY = insert(message_keys)
_INSERT_AUDIT = insert(audit)
_SUPERSEDE = update(messages).where(messages.c.id == bindparam("earlier")).values(state=SUPERSEDED)
_ORIGINAL = select(messages.c.received_at, messages.c.receipt, messages.c.receipt_positive,
                   messages.c.http_status).where(messages.c.id == bindparam("original"))
_KEY_WHERE = and_(message_keys.c.sender_ean == bindparam("s"), message_keys.c.envelope_id == bindparam("e"),
                  message_keys.c.letter_id == bindparam("l"))
_DELETE_KEY = message_keys.delete().where(_KEY_WHERE)
_EARLIER = select(messages.c.id).where(
    messages.c.sender_ean == bindparam("s"), messages.c.letter_id == bindparam("l"),
    messages.c.state == ACCEPTED).order_by(messages.c.id.desc()).limit(1)
_LOOKUP = select(
    select(message_keys.c.message_id).where(_KEY_WHERE).scalar_subquery().label("key_message"),
    select(message_keys.c.sha256).where(_KEY_WHERE).scalar_subquery().label("key_sha"),
    select(messages.c.state).where(messages.c.id == select(message_keys.c.message_id).where(
        _KEY_WHERE).scalar_subquery()).scalar_subquery().label("key_state"),
    _EARLIER.scalar_subquery().label("earlier_id"),
    _EARLIER.with_only_columns(messages.c.sha256).scalar_subquery().label("earlier_sha"))

# An accepted message on PostgreSQL: its row, its identity key and its audit row in one
# statement (data-modifying CTEs), parameters by name as for the three statements it replaces.
_ACCEPTED_COLUMNS = ("received_at", "sha256", "size", "raw", "client", "kind", "sender_ean", "receiver_ean",
                     "envelope_id", "letter_id", "letter_status", "municipality", "state", "issue_codes", "receipt",
                     "receipt_positive", "http_status", "supersedes")
_BIND = {c: bindparam(c, type_=messages.c[c].type) for c in _ACCEPTED_COLUMNS}
_ACCEPTED_ROW = insert(messages).values(_BIND).returning(messages.c.id).cte("accepted_row")
_ACCEPTED_KEY = insert(message_keys).from_select(
    ["sender_ean", "envelope_id", "letter_id", "message_id", "sha256"],
    select(_BIND["sender_ean"], _BIND["envelope_id"], _BIND["letter_id"], _ACCEPTED_ROW.c.id, _BIND["sha256"]),
).cte("accepted_key")
_ACCEPTED_AUDIT = insert(audit).from_select(
    ["at", "client", "action", "target", "outcome", "detail"],
    select(bindparam("audit_at", type_=audit.c.at.type), _BIND["client"], bindparam("action", type_=String),
           literal_column("'message/'", String) + cast(_ACCEPTED_ROW.c.id, String),
           bindparam("outcome", type_=String), bindparam("detail", type_=String)),
).cte("accepted_audit")
_ACCEPT = select(_ACCEPTED_ROW.c.id).add_cte(_ACCEPTED_KEY, _ACCEPTED_AUDIT)


def _insert_message(conn: Connection, row: dict, **final) -> int:
    inserted = conn.execute(_INSERT_MESSAGE, {**row, **final}).inserted_primary_key
    assert inserted is not None, "a single-row INSERT always reports its primary key"
    return inserted[0]


def _duplicate(conn: Connection, row: dict, original_id: int, client: str | None) -> IngestResult:
    original = conn.execute(_ORIGINAL, {"original": original_id}).one()
    message_id = _insert_message(conn, row, state=DUPLICATE, duplicate_of=original_id, receipt=original.receipt,
                                 receipt_positive=original.receipt_positive, http_status=original.http_status)
    _audit(conn, original.received_at, client, "push", f"message/{message_id}", DUPLICATE,
           f"duplicate of message/{original_id}")
    return IngestResult(message_id, DUPLICATE, original.http_status or 200, original.receipt,
                        bool(original.receipt_positive))


def _refuse(conn: Connection, row: dict, raw: bytes, received_at: dt.datetime, client: str | None,
            issues: list[Issue], ident: Identity) -> IngestResult:
    errors = [i for i in issues if i.is_error] or issues
    addr = ident.receipt_address()
    if addr is None:
        addr = salvage_address(raw)
    receipt = build_receipt(addr, received_at, errors, errors[0].info.refuse_code) if addr else None
    status = _http_status(errors, False)
    message_id = _insert_message(conn, row, state=REFUSED, issue_codes=_issue_codes(issues), receipt=receipt,
                                 receipt_positive=False, http_status=status)
    # A refused message keeps its identity key, so its resend gets the identical refusal.
    if ident.complete and not any(i.code == "GGOP-E321" for i in errors):
        conn.execute(_INSERT_KEY, dict(sender_ean=ident.sender_ean, envelope_id=ident.envelope_id,
                                       letter_id=ident.letter_id, message_id=message_id, sha256=row["sha256"]))
    _audit(conn, received_at, client, "push", f"message/{message_id}", REFUSED,
           ",".join(sorted({i.code for i in errors})))
    return IngestResult(message_id, REFUSED, status, receipt, False, issues)


def _receipt_message(conn: Connection, row: dict, client: str | None) -> IngestResult:
    """A receipt sent to us (for a message we sent): stored and logged, never answered."""
    message_id = _insert_message(conn, row, state=ACCEPTED, http_status=200, receipt_positive=None)
    _audit(conn, row["received_at"], client, "push", f"message/{message_id}", ACCEPTED, "receipt")
    return IngestResult(message_id, ACCEPTED, 200, None, False)


def _audit(conn: Connection, at: dt.datetime, client: str | None, action: str, target: str, outcome: str,
           detail: str | None = None) -> None:
    conn.execute(_INSERT_AUDIT, dict(at=at, client=client, action=action, target=target, outcome=outcome,
                                     detail=detail))
