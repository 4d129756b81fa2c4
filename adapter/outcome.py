"""One renderer for issues: FHIR OperationOutcome (API, --json) and CLI lines."""

from __future__ import annotations

from adapter.errors import Issue
from adapter.fhir.context import ADAPTER_BASE

ISSUE_CODE_SYSTEM = f"{ADAPTER_BASE}/CodeSystem/issue-codes"
LINE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"


def outcome_issue(i: Issue) -> dict:
    out: dict = {
        "severity": i.severity,
        "code": i.info.issue_type,
        "details": {"coding": [{"system": ISSUE_CODE_SYSTEM, "code": i.code, "display": i.info.title}],
                    "text": i.message},
    }
    if i.location.line is not None:
        out["extension"] = [{"url": LINE_EXTENSION, "valueInteger": i.location.line}]
    if i.location.xpath:
        out["location"] = [i.location.xpath]
    if i.location.fhir_path:
        out["expression"] = [i.location.fhir_path]
    return out


def operation_outcome(issues: list[Issue], source: str | None = None) -> dict:
    oo: dict = {"resourceType": "OperationOutcome"}
    if source:
        oo["meta"] = {"source": source}
    oo["issue"] = [outcome_issue(i) for i in issues] or [
        {"severity": "information", "code": "informational", "details": {"text": "accepted"}}]
    return oo
