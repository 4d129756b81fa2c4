"""``POST /medcom``: hospital EHRs push G-GOP and XDIS91 XML and get the MedCom receipt.

200 + XCTL03 when accepted; 422 + XCTL02 when refused (400 when not well-formed, 413 when
too large, 415 for a wrong content type). ``Accept: application/fhir+json`` gives an
OperationOutcome instead of the XML receipt. A resent duplicate gets the byte-identical
answer it got the first time.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
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
    raw = request.get_data(cache=False)
    limit = svc.settings.max_bytes
    if len(raw) > limit:
        return outcome_response([outcome_issue(issue("GGOP-E003", None, "/", f"limit {limit} bytes"))], 413)
    result = ingest(svc.runtime, raw, received_at=svc.clock(), client=client.name if client else None,
                    allowed_senders=client.sender_eans if client else ())
    headers = {"X-Message-Id": str(result.message_id), "X-Message-State": result.state}
    if _wants_fhir() or result.receipt is None:
        return outcome_response(operation_outcome(result.issues)["issue"], result.http_status, headers)
    return Response(result.receipt, status=result.http_status, mimetype="application/xml", headers=headers)
