"""``POST /medcom``: hospital EHRs push G-GOP and XDIS91 XML and get the MedCom receipt.

200 + XCTL03 when accepted; 422 + XCTL02 when refused (400 when not well-formed, 413 when
too large, 415 for a wrong content type). ``Accept: application/fhir+json`` gives an
OperationOutcome instead of the XML receipt. A resent duplicate gets the byte-identical
answer it got the first time.
"""

from __future__ import annotations

from flask import Blueprint, Response, json, request
from werkzeug.exceptions import RequestEntityTooLarge

from adapter.api.app import current_client, services
from adapter.errors import MappingError, issue
from adapter.outcome import operation_outcome
from adapter.pipeline import Limits
from adapter.service.ingest import ingest

blueprint = Blueprint("medcom", __name__)

XML_TYPES = ("application/xml", "text/xml", "application/octet-stream")
FHIR_JSON = "application/fhir+json"


def _wants_fhir() -> bool:
    """Only an explicit ``Accept: application/fhir+json`` (or application/json) turns the
    answer into an OperationOutcome; ``*/*`` gets the MedCom receipt."""
    explicit = {m: q for m, q in request.accept_mimetypes if m in (FHIR_JSON, "application/json")}
    if not explicit:
        return False
    xml_q = max((q for m, q in request.accept_mimetypes if m in ("application/xml", "text/xml")), default=0)
    return max(explicit.values()) > xml_q


def _outcome(issues, status: int) -> Response:
    return Response(json.dumps(operation_outcome(issues), ensure_ascii=False), status=status,
                    mimetype=FHIR_JSON)


@blueprint.errorhandler(RequestEntityTooLarge)
def _too_large(_exc):
    limit = services().settings.max_bytes
    return _outcome([issue("GGOP-E003", None, "/", f"limit {limit} bytes")], 413)


def _audit_refusal(svc, client, status: int, detail: str | None = None) -> None:
    from sqlalchemy import insert

    from adapter.store.schema import audit

    with svc.engine.begin() as conn:
        conn.execute(insert(audit).values(at=svc.clock(), client=client.name if client else None,
                                          role=client.role if client else None, action="push",
                                          target="/medcom", outcome=str(status), detail=detail))


@blueprint.post("/medcom")
def push():
    svc = services()
    client = current_client()
    if not svc.clients.empty and (client is None or client.role not in ("hospital", "operator")):
        status = 401 if client is None else 403
        _audit_refusal(svc, client, status)
        return _outcome([issue("GGOP-E901" if status == 401 else "GGOP-E902", None, "/medcom")], status)
    mimetype = (request.mimetype or "").lower()
    if mimetype not in XML_TYPES:
        return _outcome([issue("GGOP-E010", None, "/", f"got {mimetype or 'none'}; send application/xml")], 415)
    raw = request.get_data(cache=False)
    if len(raw) > svc.settings.max_bytes:
        return _outcome([issue("GGOP-E003", None, "/", f"limit {svc.settings.max_bytes} bytes")], 413)
    limits = Limits(svc.settings.max_bytes, svc.settings.max_depth)
    try:
        result = ingest(svc.engine, raw, received_at=svc.clock(), tables=svc.tables, rules=svc.rules,
                        limits=limits, client=client.name if client else None,
                        check_models=svc.settings.check_models,
                        allowed_senders=client.sender_eans if client else ())
    except MappingError as exc:
        return _outcome(exc.issues, 500)
    headers = {"X-Message-Id": str(result.message_id), "X-Message-State": result.state}
    if _wants_fhir() or result.receipt is None:
        return Response(json.dumps(operation_outcome(result.issues), ensure_ascii=False),
                        status=result.http_status, mimetype=FHIR_JSON, headers=headers)
    return Response(result.receipt, status=result.http_status, mimetype="application/xml", headers=headers)
