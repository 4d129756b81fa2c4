"""``POST /medcom``: hospital EHRs push G-GOP and XDIS91 XML and get the MedCom receipt.

200 + XCTL03 when accepted; 422 + XCTL02 when refused (400 when not well-formed, 413 when
too large, also when sent chunked, 415 for a wrong content type, 408 when the body does not
arrive within the body timeout). ``Accept: application/fhir+json`` gives an OperationOutcome
instead of the XML receipt. A resent duplicate gets the byte-identical answer it got the
first time.

The body is read here, from the server's input stream, never more than the size limit and
never for longer than ``body_timeout`` seconds in all: a client that stalls or trickles
bytes holds a server thread for that long at most.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, g, request
from sqlalchemy import insert

from adapter.api.auth import Client
from adapter.api.context import Services, current_client, services
from adapter.api.responses import FHIR_JSON, outcome_response
from adapter.errors import issue
from adapter.outcome import operation_outcome, outcome_issue
from adapter.service.ingest import ingest
from adapter.store.schema import audit

blueprint = Blueprint("medcom", __name__)

XML_TYPES = ("application/xml", "text/xml", "application/octet-stream")
_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


def read_body(limit: int, timeout: float) -> bytes:
    """The request body: at most ``limit`` bytes (BodyTooLarge beyond, chunked or not), within
    ``timeout`` seconds in all (BodyTooSlow)."""
    env = request.environ
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge()
    stream = env.get("wsgi.input")
    if stream is None or (length is None and not env.get("wsgi.input_terminated")):
        return b""  # no length and a server that does not end the stream: nothing can be read safely
    sock = env.get("gunicorn.socket")
    before = sock.gettimeout() if sock is not None else None
    deadline = time.monotonic() + timeout
    want = length if length is not None else limit + 1
    chunks, total = [], 0
    try:
        while total < want:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BodyTooSlow()
            if sock is not None:
                sock.settimeout(left)
            chunk = stream.read(min(_CHUNK, want - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except TimeoutError:
        raise BodyTooSlow() from None
    finally:
        if sock is not None:
            sock.settimeout(before)
    if total > limit:
        raise BodyTooLarge()
    return b"".join(chunks)


def _wants_fhir() -> bool:
    """Only an explicit ``Accept: application/fhir+json`` (or application/json) turns the
    answer into an OperationOutcome; ``*/*`` gets the MedCom receipt."""
    explicit = {m: q for m, q in request.accept_mimetypes if m in (FHIR_JSON, "application/json")}
    if not explicit:
        return False
    xml_q = max((q for m, q in request.accept_mimetypes if m in ("application/xml", "text/xml")), default=0)
    return max(explicit.values()) > xml_q


def _audit_refusal(svc: Services, client: Client | None, status: int) -> None:
    with svc.engine.begin() as conn:
        conn.execute(insert(audit).values(at=svc.clock(), client=client.name if client else None,
                                          role=client.role if client else None, action="push",
                                          target="/medcom", outcome=str(status), detail=None))


@blueprint.post("/medcom")
def push() -> Response:
    svc = services()
    client = current_client()
    if not svc.clients.empty and (client is None or client.role not in ("hospital", "operator")):
        status = 401 if client is None else 403
        _audit_refusal(svc, client, status)
        code = "GGOP-E901" if status == 401 else "GGOP-E902"
        return outcome_response([outcome_issue(issue(code, None, "/medcom"))], status)
    mimetype = (request.mimetype or "").lower()
    if mimetype not in XML_TYPES:
        return outcome_response([outcome_issue(issue("GGOP-E010", None, "/", f"got {mimetype or 'none'}; "
                                                     "send application/xml"))], 415)
    limit = svc.settings.max_bytes
    try:
        raw = read_body(limit, svc.settings.body_timeout)
    except BodyTooLarge:
        return outcome_response([outcome_issue(issue("GGOP-E003", None, "/", f"limit {limit} bytes"))], 413,
                                {"Connection": "close"})
    except BodyTooSlow:
        return outcome_response([outcome_issue(issue("GGOP-E905", None, "/",
                                                     f"limit {svc.settings.body_timeout} seconds"))], 408,
                                {"Connection": "close"})
    result = ingest(svc.runtime, raw, received_at=svc.clock(), client=client.name if client else None,
                    allowed_senders=client.sender_eans if client else (), correlation_id=g.get("correlation_id"))
    headers = {"X-Message-Id": str(result.message_id), "X-Message-State": result.state}
    if _wants_fhir() or result.receipt is None:
        return outcome_response(operation_outcome(result.issues)["issue"], result.http_status, headers)
    return Response(result.receipt, status=result.http_status, mimetype="application/xml", headers=headers)
