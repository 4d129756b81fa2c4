"""``POST /fhir/$process-message``: hospitals (and other MedCom FHIR senders) push a MedCom
CareCommunication message in FHIR XML (MedCom's wire format) or FHIR JSON and get a MedCom
Acknowledgement message back, in the format they ask for (``Accept``), else the one they sent.

- 200 + Acknowledgement ``ok``: accepted (stored, converted, routed); a resend gets the same
  bytes, in the same format.
- 4xx + Acknowledgement ``fatal-error`` with a MedCom OperationOutcome: refused (the status as
  for ``/medcom``: 422 for content, 400 for syntax); do not send it again unchanged.
- 503 (``Retry-After``) or 500 + Acknowledgement ``transient-error``: nothing was kept (the
  store is unavailable) or a defect of ours kept the message for an operator; send it again.
- An OperationOutcome (JSON, or XML when asked) instead of an Acknowledgement when the message
  cannot be addressed (unreadable, no sender or receiver), and for 401, 403, 413, 408, 415.

The hospital token (or an operator's) is required as for ``/medcom``; the body is read with
the same size and time limits.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, g, request
from sqlalchemy.exc import DBAPIError, IntegrityError

from adapter.api.context import current_client, services
from adapter.api.medcom import BodyTooLarge, BodyTooSlow, read_body
from adapter.api.responses import outcome_response
from adapter.errors import MappingError, issue
from adapter.medcom_fhir.fhirxml import to_xml
from adapter.medcom_fhir.wire import FHIR_JSON, FHIR_XML, JSON, JSON_TYPES, MEDIA_TYPES, XML, XML_TYPES, format_of
from adapter.outcome import operation_outcome, outcome_issue
from adapter.service.process_message import receive, transient_acknowledgement

log = logging.getLogger("ggop.api")
blueprint = Blueprint("process_message", __name__)
PATH = "/fhir/$process-message"
RETRY_AFTER_SECONDS = 30


def wanted_format(received: str | None) -> str:
    """``xml`` or ``json``: the better of the two ``Accept`` names, else the received format."""
    best, best_q = None, 0.0
    for media, q in request.accept_mimetypes:
        fmt = XML if media in XML_TYPES else JSON if media in JSON_TYPES else None
        if fmt is not None and q > best_q:
            best, best_q = fmt, q
    return best or received or JSON


def _answer(ack: bytes, fmt: str, status: int, headers: dict[str, str] | None = None) -> Response:
    body = ack if fmt == JSON else to_xml(json.loads(ack))
    resp = Response(body, status=status, headers=headers or {})
    resp.headers["Content-Type"] = f"{MEDIA_TYPES[fmt]}; charset=utf-8"
    return resp


def _outcome(issues: list[dict], status: int, fmt: str, headers: dict[str, str] | None = None) -> Response:
    if fmt == XML:
        resp = Response(to_xml(operation_outcome(issues)), status=status, headers=headers or {})
        resp.headers["Content-Type"] = f"{FHIR_XML}; charset=utf-8"
        return resp
    return outcome_response(issues, status, headers)


@blueprint.post(PATH)
def process_message() -> Response:
    svc = services()
    client = current_client()
    fmt = wanted_format(None)
    if not svc.clients.empty and (client is None or client.role not in ("hospital", "operator")):
        status = 401 if client is None else 403
        code = "GGOP-E901" if status == 401 else "GGOP-E902"
        return _outcome([outcome_issue(issue(code, None, PATH))], status, fmt)
    mimetype = (request.mimetype or "").lower()
    if mimetype not in XML_TYPES | JSON_TYPES:
        return _outcome([outcome_issue(issue("GGOP-E010", None, "/", f"got {mimetype or 'none'}; send "
                                             f"{FHIR_XML} or {FHIR_JSON}"))], 415, fmt)
    limit = svc.settings.max_bytes
    try:
        raw = read_body(limit, svc.settings.body_timeout)
    except BodyTooLarge:
        return _outcome([outcome_issue(issue("GGOP-E003", None, "/", f"limit {limit} bytes"))], 413, fmt,
                        {"Connection": "close"})
    except BodyTooSlow:
        return _outcome([outcome_issue(issue("GGOP-E905", None, "/", f"limit {svc.settings.body_timeout} seconds"))],
                        408, fmt, {"Connection": "close"})
    received = format_of(raw, mimetype)
    fmt = wanted_format(received)
    now = svc.clock()
    try:
        result = receive(svc.runtime, raw, received_at=now, client=client.name if client else None,
                         allowed_senders=client.sender_eans if client else (), media_type=mimetype,
                         correlation_id=g.get("correlation_id"))
    except (DBAPIError, MappingError) as exc:
        unavailable = isinstance(exc, DBAPIError)
        if unavailable and not isinstance(exc, IntegrityError):
            svc.store_failed_at = now
        log.error("$process-message: %s", type(exc).__name__ if unavailable else
                  ",".join(i.code for i in exc.issues) if isinstance(exc, MappingError) else "")
        status = 503 if unavailable else 500
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if unavailable else {}
        ack = transient_acknowledgement(svc.runtime, raw, now, mimetype)
        if ack is None:
            return _outcome([outcome_issue(issue("GGOP-E904" if unavailable else "GGOP-E900", None, PATH))],
                            status, fmt, headers)
        return _answer(ack, fmt, status, headers)
    headers = {"X-Message-Id": str(result.message_id), "X-Message-State": result.state}
    if result.acknowledgement is None:
        return _outcome(operation_outcome(result.issues)["issue"], result.http_status, fmt, headers)
    return _answer(result.acknowledgement, fmt, result.http_status, headers)
