"""One renderer for issues: FHIR OperationOutcome (API, --json) and CLI lines.

An issue is either a catalogued :class:`~adapter.errors.Issue` (a code with its line and
XPath) or a plain one made by :func:`plain_issue` (the API's answers about requests:
parameters, elements, access), both rendered here into the same shape.
"""

from __future__ import annotations

from typing import Any

from adapter.errors import CATALOGUE, Issue
from adapter.fhir.context import ADAPTER_BASE

ISSUE_CODE_SYSTEM = f"{ADAPTER_BASE}/CodeSystem/issue-codes"
LINE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"


def outcome_issue(i: Issue, issue_type: str | None = None) -> dict:
    out: dict[str, Any] = {
        "severity": i.severity,
        "code": issue_type or i.info.issue_type,
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


def plain_issue(severity: str, code: str, text: str, expression: list[str] | None = None,
                catalogue: str | None = None) -> dict:
    """An OperationOutcome issue about a request, optionally tagged with a catalogue code."""
    details: dict[str, Any] = {"text": text}
    if catalogue:
        details["coding"] = [{"system": ISSUE_CODE_SYSTEM, "code": catalogue, "display": CATALOGUE[catalogue].title}]
    out: dict[str, Any] = {"severity": severity, "code": code, "details": details}
    if expression:
        out["expression"] = expression
    return out


def operation_outcome(issues: list[Issue] | list[dict], source: str | None = None) -> dict:
    oo: dict[str, Any] = {"resourceType": "OperationOutcome"}
    if source:
        oo["meta"] = {"source": source}
    oo["issue"] = [i if isinstance(i, dict) else outcome_issue(i) for i in issues] or [
        {"severity": "information", "code": "informational", "details": {"text": "accepted"}}]
    return oo
