"""FHIR JSON responses: a resource or Bundle, and an OperationOutcome with its status."""

from __future__ import annotations

import json
from typing import Any

import orjson
from flask import Response, request

from adapter.outcome import operation_outcome, plain_issue

FHIR_JSON = "application/fhir+json"


class FhirError(Exception):
    """An answer other than success: status, OperationOutcome issues and extra headers."""

    def __init__(self, status: int, code: str, text: str, expression: list[str] | None = None,
                 headers: dict[str, str] | None = None, catalogue: str | None = None,
                 issues: list[dict] | None = None):
        super().__init__(text)
        self.status = status
        self.headers = headers or {}
        self.issues = issues or [plain_issue("error", code, text, expression, catalogue)]


class StoredJson:
    """A resource as the store holds it, JSON text: written into the answer as it is, without
    decoding and re-encoding it (a page of 100 Tasks is some 14,000 JSON values)."""

    __slots__ = ("text",)

    def __init__(self, text: str | bytes):
        self.text = text

    def value(self) -> Any:
        return orjson.loads(self.text)


def _as_is(obj: Any) -> Any:
    if isinstance(obj, StoredJson):
        return orjson.Fragment(obj.text)
    raise TypeError(type(obj).__name__)


def _decoded(obj: Any) -> Any:
    if isinstance(obj, StoredJson):
        return obj.value()
    raise TypeError(type(obj).__name__)


def _encode(body: Any, pretty: bool) -> bytes:
    """UTF-8 JSON, compact or indented by two: orjson (a page of 100 Tasks in a fraction of the
    time), the standard library for what orjson does not take (an integer beyond 64 bits).
    :class:`StoredJson` goes in as stored, or decoded when the answer is indented."""
    try:
        if pretty:
            return orjson.dumps(body, default=_decoded, option=orjson.OPT_INDENT_2)
        return orjson.dumps(body, default=_as_is)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, indent=2 if pretty else None, default=_decoded,
                          separators=None if pretty else (",", ":")).encode("utf-8")


def fhir_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    pretty = request.args.get("_pretty") == "true"
    resp = Response(_encode(body, pretty), status=status, mimetype=FHIR_JSON)
    resp.headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def outcome_response(issues: list[dict], status: int, headers: dict[str, str] | None = None) -> Response:
    return fhir_json(operation_outcome(issues), status, headers)
