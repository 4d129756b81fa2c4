"""Receiving one MedCom CareCommunication message (FHIR XML or JSON): store it, deduplicate it
by MedCom's FHIR reliable-messaging rules, convert it into the letter's resources and Tasks,
route it, and answer with an Acknowledgement, all in one database transaction.

Reliable messaging (MedCom messaging: the receiver checks Bundle.id and MessageHeader.id, per
sender, against what it has received):

========================================  =========================================================
Bundle.id × MessageHeader.id              what happens
========================================  =========================================================
both new                                  a new message: checked, processed, acknowledged
both known (one earlier message)          the same message again (its answer was lost): the stored
                                          Acknowledgement, byte for byte; nothing is processed
MessageHeader.id known, Bundle.id new     a resend in a new envelope: the same content gets the
                                          original's Acknowledgement and is not processed again;
                                          other content is refused (``GGOP-E611``); a message
                                          refused before may be sent again corrected
Bundle.id known, MessageHeader.id new     an error, Bundle.ids are never reused (``GGOP-E610``)
========================================  =========================================================

"The same content" is the message without Bundle.id, timestamp and meta
(:func:`adapter.medcom_fhir.receive.content_key`), so an XML and a JSON copy are the same.
The raw bytes are the first row written, the Acknowledgement leaves only after the commit;
concurrent copies race on ``message_keys`` (one claim per Bundle.id and one per
MessageHeader.id) and the loser answers as the duplicate. Acknowledgements are stored as
canonical FHIR JSON and rendered in the format the caller asks for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from adapter.errors import Issue, MappingError, issue
from adapter.fhir.bundle import patient_id
from adapter.medcom_fhir.acknowledgement import FATAL, OK, TRANSIENT, acknowledge
from adapter.medcom_fhir.receive import KIND, Checked, check_message, content_key, convert_message, store_key
from adapter.medcom_fhir.sor import SorDirectory, load_sor_directory
from adapter.medcom_fhir.wire import dumps
from adapter.routing.outbox import enqueue
from adapter.service.ingest import ACCEPTED, DUPLICATE, REFUSED, stored_first, written_at
from adapter.store.resources import current_shared, save_bundle
from adapter.store.schema import audit, message_keys, messages

if TYPE_CHECKING:
    from adapter.runtime import Runtime


@dataclass
class FhirIngestResult:
    message_id: int
    state: str
    http_status: int
    acknowledgement: bytes | None  # canonical FHIR JSON of the Acknowledgement
    response_code: str | None  # ok | transient-error | fatal-error
    fmt: str | None  # the format the message came in
    issues: list[Issue] = field(default_factory=list)
    bundle: dict | None = None


def sor_directory(runtime: Runtime) -> SorDirectory:
    return load_sor_directory(runtime.mappings_dir)


def check(runtime: Runtime, raw: bytes, media_type: str | None = None) -> Checked:
    """Read and check a message with the runtime's limits, code tables, SOR directory and
    routing table (a receiver with a route is served)."""
    table = runtime.routes().load()
    return check_message(raw, limits=runtime.limits, municipalities=runtime.tables.municipalities,
                         sor=sor_directory(runtime), media_type=media_type,
                         routable=lambda keys: any(k in table.routes for k in keys))


def transient_acknowledgement(runtime: Runtime, raw: bytes, at: dt.datetime, media_type: str | None = None,
                              ) -> bytes | None:
    """The ``transient-error`` Acknowledgement for a message that could not be processed now
    (the store unavailable, a defect of ours): nothing of it was kept, so a resend is new."""
    checked = check(runtime, raw, media_type)
    if checked.message is None:
        return None
    ack = acknowledge(checked.message, TRANSIENT, at, sor_directory(runtime), [issue("GGOP-E616")])
    return dumps(ack) if ack is not None else None


def receive(runtime: Runtime, raw: bytes, *, received_at: dt.datetime, client: str | None = None,
            allowed_senders: tuple[str, ...] = (), media_type: str | None = None,
            correlation_id: str | None = None) -> FhirIngestResult:
    """Store, deduplicate, process and acknowledge one CareCommunication message. Safe to call
    concurrently. Raises MappingError (a defect of ours: the message is kept as failed) and the
    store's errors (nothing kept). ``correlation_id``: the request's, recorded with the message
    in the same transaction."""
    def keep_failed(conn: Connection, exc: MappingError) -> None:
        conn.execute(insert(messages).values(
            received_at=received_at, sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), raw=raw,
            kind=KIND, state="failed", client=client, http_status=500, issue_codes=_codes(exc.issues)))
        _audit(conn, received_at, client, "message", "failed", ",".join(sorted({i.code for i in exc.issues})))

    return stored_first(runtime.engine,
                        lambda conn: _receive(conn, runtime, raw, received_at, client, allowed_senders, media_type),
                        keep_failed, (received_at, correlation_id))


def _codes(issues: list[Issue]) -> list[dict]:
    """Codes and locations only, in the shape XML messages' rows have, plus the FHIR path."""
    return [{"code": i.code, "line": i.location.line, "xpath": i.location.xpath, "fhirPath": i.location.fhir_path}
            for i in issues]


def _receive(conn: Connection, runtime: Runtime, raw: bytes, at: dt.datetime, client: str | None,
             allowed_senders: tuple[str, ...], media_type: str | None) -> FhirIngestResult:
    inserted = conn.execute(insert(messages).values(
        received_at=at, sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), raw=raw, kind=KIND,
        state="received", client=client)).inserted_primary_key
    assert inserted is not None, "a single-row INSERT always reports its primary key"
    message_id = inserted[0]
    checked = check(runtime, raw, media_type)
    msg = checked.message
    sor = sor_directory(runtime)
    if msg is None or not msg.addressable:
        # nothing to address an Acknowledgement to: an OperationOutcome only
        issues = checked.issues or [issue("GGOP-E605")]
        status = _status(issues)
        conn.execute(update(messages).where(messages.c.id == message_id).values(
            state=REFUSED, issue_codes=_codes(issues), http_status=status, receipt_positive=False))
        _audit(conn, at, client, f"message/{message_id}", REFUSED, ",".join(sorted({i.code for i in issues})))
        return FhirIngestResult(message_id, REFUSED, status, None, None, checked.fmt, issues)

    sender = str(msg.sender_gln)
    bundle_key, header_key = store_key(str(msg.bundle_id)), store_key(str(msg.header_id))
    conn.execute(update(messages).where(messages.c.id == message_id).values(
        sender_ean=sender, receiver_ean=msg.receiver_gln, envelope_id=bundle_key, letter_id=header_key,
        letter_status="nytbrev", municipality=checked.municipality))
    if allowed_senders and sender not in allowed_senders:
        forbidden = [issue("GGOP-E902", None, None, "this client may not send as this sender",
                           fhir_path=f"{msg.sender.path}.identifier" if msg.sender else None)]
        conn.execute(update(messages).where(messages.c.id == message_id).values(
            state=REFUSED, issue_codes=_codes(forbidden), http_status=403, receipt_positive=False))
        _audit(conn, at, client, f"message/{message_id}", "403", "sender not allowed for client")
        return FhirIngestResult(message_id, REFUSED, 403, None, None, checked.fmt, forbidden)

    earlier = conn.execute(select(messages.c.id).where(and_(
        messages.c.kind == KIND, messages.c.sender_ean == sender, messages.c.sha256 == hashlib.sha256(raw).hexdigest(),
        messages.c.state == REFUSED, messages.c.receipt.is_not(None), messages.c.id != message_id))
        .order_by(messages.c.id).limit(1)).scalar()
    if earlier is not None:  # the same bytes were refused before: the same answer
        return _duplicate(conn, message_id, earlier, client, checked.fmt)
    content = content_key(msg.bundle)
    by_bundle = _claim_of(conn, sender, bundle_key, "")
    by_header = _claim_of(conn, sender, "", header_key)
    if by_header is not None and by_header.sha256 != content and _state(conn, by_header.message_id) == REFUSED \
            and by_bundle is None:
        # a refused message, corrected and sent again under its MessageHeader.id
        conn.execute(message_keys.delete().where(and_(
            message_keys.c.sender_ean == sender, message_keys.c.envelope_id == "",
            message_keys.c.letter_id == header_key)))
        by_header = None
    if by_bundle is not None and by_header is not None and by_bundle.message_id == by_header.message_id:
        if by_bundle.sha256 == content:
            return _duplicate(conn, message_id, by_bundle.message_id, client, checked.fmt)
        return _refuse(conn, runtime, message_id, checked, at, client, sor, [issue(
            "GGOP-E611", fhir_path=f"{msg.header.path}.id" if msg.header else None)], claim=False)
    if by_bundle is not None:
        return _refuse(conn, runtime, message_id, checked, at, client, sor,
                       [issue("GGOP-E610", fhir_path="Bundle.id")], claim=False)
    if by_header is not None:
        if by_header.sha256 != content:
            return _refuse(conn, runtime, message_id, checked, at, client, sor, [issue(
                "GGOP-E611", fhir_path=f"{msg.header.path}.id" if msg.header else None)], claim=False)
        # the same message in a new envelope: its Bundle.id is claimed for the message it repeats,
        # so this envelope sent once more is "both ids known"
        conn.execute(insert(message_keys).values(sender_ean=sender, envelope_id=bundle_key, letter_id="",
                                                 message_id=by_header.message_id, sha256=content))
        return _duplicate(conn, message_id, by_header.message_id, client, checked.fmt)

    if not checked.accepted:
        return _refuse(conn, runtime, message_id, checked, at, client, sor, checked.issues, claim=True)

    conversion = convert_message(checked, raw, at, tables=runtime.tables, sor=sor, id_key=runtime.id_key,
                                 letter_terms=runtime.letter_terms, check_models=runtime.settings.check_models)
    stored = save_bundle(conn, conversion.bundle, now=at, municipality=checked.municipality,
                         message_id=message_id, changed_by=client, as_of=written_at(conversion.message))
    ack = acknowledge(msg, OK, at, sor)
    assert ack is not None, "an addressable message is acknowledged"
    answer = dumps(ack)
    _claim(conn, sender, bundle_key, header_key, message_id, content)
    conn.execute(update(messages).where(messages.c.id == message_id).values(
        state=ACCEPTED, issue_codes=_codes(conversion.issues), receipt=answer, receipt_positive=True,
        http_status=200))
    patient = patient_id(conversion.bundle)
    outgoing = dataclasses.replace(conversion, bundle=current_shared(conversion.bundle, stored))
    enqueue(conn, message_id=message_id, conversion=outgoing, tables=runtime.tables,
            at=at, municipality=checked.municipality,
            order_key=patient or str(message_id), changed_by=client)
    _audit(conn, at, client, f"message/{message_id}", ACCEPTED, f"{KIND} {OK}")
    return FhirIngestResult(message_id, ACCEPTED, 200, answer, OK, checked.fmt, conversion.issues,
                            conversion.bundle)


def _claim_of(conn: Connection, sender: str, envelope: str, letter: str):
    return conn.execute(select(message_keys).where(and_(
        message_keys.c.sender_ean == sender, message_keys.c.envelope_id == envelope,
        message_keys.c.letter_id == letter))).first()


def _claim(conn: Connection, sender: str, bundle_key: str, header_key: str, message_id: int, content: str) -> None:
    """Claim the Bundle.id and the MessageHeader.id for this message (a concurrent copy that
    claimed either first makes this fail, and this copy answers as its duplicate)."""
    conn.execute(insert(message_keys), [
        dict(sender_ean=sender, envelope_id=bundle_key, letter_id="", message_id=message_id, sha256=content),
        dict(sender_ean=sender, envelope_id="", letter_id=header_key, message_id=message_id, sha256=content)])


def _state(conn: Connection, message_id: int) -> str:
    return conn.execute(select(messages.c.state).where(messages.c.id == message_id)).scalar_one()


def _status(issues: list[Issue]) -> int:
    first = next((i for i in issues if i.is_error), None)
    return first.info.http_status if first is not None else 422


def _duplicate(conn: Connection, message_id: int, original_id: int, client: str | None,
               fmt: str | None) -> FhirIngestResult:
    original = conn.execute(select(messages).where(messages.c.id == original_id)).one()
    conn.execute(update(messages).where(messages.c.id == message_id).values(
        state=DUPLICATE, duplicate_of=original_id, receipt=original.receipt,
        receipt_positive=original.receipt_positive, http_status=original.http_status))
    _audit(conn, original.received_at, client, f"message/{message_id}", DUPLICATE,
           f"duplicate of message/{original_id}")
    code = OK if original.receipt_positive else FATAL
    return FhirIngestResult(message_id, DUPLICATE, original.http_status or 200,
                            bytes(original.receipt) if original.receipt is not None else None, code, fmt)


def _refuse(conn: Connection, runtime: Runtime, message_id: int, checked: Checked, at: dt.datetime,
            client: str | None, sor: SorDirectory, issues: list[Issue], *, claim: bool) -> FhirIngestResult:
    """A ``fatal-error`` Acknowledgement. ``claim``: the message keeps its ids, so a resend
    gets the identical refusal (not for a refusal of reused ids, which belong to another)."""
    msg = checked.message
    assert msg is not None
    errors = [i for i in issues if i.is_error] or issues
    ack = acknowledge(msg, FATAL, at, sor, errors)
    answer = dumps(ack) if ack is not None else None
    status = _status(errors)
    conn.execute(update(messages).where(messages.c.id == message_id).values(
        state=REFUSED, issue_codes=_codes(issues), receipt=answer, receipt_positive=False, http_status=status))
    if claim:
        _claim(conn, str(msg.sender_gln), store_key(str(msg.bundle_id)), store_key(str(msg.header_id)),
               message_id, content_key(msg.bundle))
    _audit(conn, at, client, f"message/{message_id}", REFUSED, ",".join(sorted({i.code for i in errors})))
    return FhirIngestResult(message_id, REFUSED, status, answer, FATAL, checked.fmt, issues)


def _audit(conn: Connection, at: dt.datetime, client: str | None, target: str, outcome: str,
           detail: str | None = None) -> None:
    conn.execute(insert(audit).values(at=at, client=client, action="push", target=target, outcome=outcome,
                                      detail=detail))


def receive_file(runtime: Runtime, raw: bytes, *, received_at: dt.datetime,
                 client: str) -> tuple[str, bool, str, bytes]:
    """What the inbox does with a FHIR file: (state, whether it goes to ``done/``, the
    companion's suffix, its bytes): the Acknowledgement in the file's own format
    (``.acknowledgement.xml``/``.json``), else an OperationOutcome (``.outcome.json``)."""
    from adapter.medcom_fhir.wire import render
    from adapter.outcome import operation_outcome

    result = receive(runtime, raw, received_at=received_at, client=client)
    ok = result.state in (ACCEPTED, DUPLICATE) and result.http_status == 200
    if result.acknowledgement is None:
        return result.state, ok, ".outcome.json", dumps(operation_outcome(result.issues))
    fmt = result.fmt or "json"
    body = result.acknowledgement if fmt == "json" else render(json.loads(result.acknowledgement), fmt)
    return result.state, ok, f".acknowledgement.{fmt}", body
