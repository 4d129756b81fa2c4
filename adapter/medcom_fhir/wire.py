"""FHIR messages on the wire: FHIR XML (MedCom's format over VANS) or FHIR JSON, read within
the configured limits, and written deterministically in either."""

from __future__ import annotations

import json
import re
from typing import Any

from adapter.errors import InputError, issue
from adapter.medcom_fhir.fhirxml import parse_xml, to_xml
from adapter.pipeline import Limits

XML, JSON = "xml", "json"
FHIR_XML, FHIR_JSON = "application/fhir+xml", "application/fhir+json"
MEDIA_TYPES = {XML: FHIR_XML, JSON: FHIR_JSON}
XML_TYPES = frozenset({FHIR_XML, "application/xml", "text/xml", "application/xml+fhir"})
JSON_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})


def format_of(raw: bytes, media_type: str | None = None) -> str | None:
    """``xml`` or ``json`` by media type, else by the first character; None when neither."""
    media = (media_type or "").split(";", 1)[0].strip().lower()
    if media in XML_TYPES:
        return XML
    if media in JSON_TYPES:
        return JSON
    if raw.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00<", b"<\x00")):  # UTF-16/32: only XML is read so
        return XML
    head = raw[:64].removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if head.startswith(b"<"):
        return XML
    if head.startswith(b"{"):
        return JSON
    return None


def _check_json_shape(data: Any, limits: Limits) -> None:
    """Depth and node count of parsed JSON, without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > limits.max_depth:
            raise InputError(issue("GGOP-E602", None, None, f"nested deeper than {limits.max_depth}"))
        if nodes > limits.max_elements * 4:
            raise InputError(issue("GGOP-E011", None, None, f"limit {limits.max_elements}"))
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def read_message(raw: bytes, limits: Limits | None = None, media_type: str | None = None) -> tuple[dict, str]:
    """(the resource as FHIR JSON, ``xml`` or ``json``); raises :class:`InputError`."""
    limits = limits or Limits()
    if not raw or not raw.strip():
        raise InputError(issue("GGOP-E005", 1, None))
    if len(raw) > limits.max_bytes:
        raise InputError(issue("GGOP-E003", None, None, f"{len(raw)} bytes, limit {limits.max_bytes}"))
    fmt = format_of(raw, media_type)
    if fmt is None:
        raise InputError(issue("GGOP-E601", 1, None))
    if fmt == XML:
        return parse_xml(raw, max_bytes=limits.max_bytes, max_depth=limits.max_depth,
                         max_elements=limits.max_elements, max_attributes=limits.max_attributes), XML
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(issue("GGOP-E602", None, None)) from None
    _check_json_shape(data, limits)
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise InputError(issue("GGOP-E601", None, None, "a FHIR resource is a JSON object with resourceType"))
    return data, JSON


def dumps(resource: dict) -> bytes:
    """Canonical FHIR JSON bytes (UTF-8, compact, key order as built)."""
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def render(resource: dict, fmt: str) -> bytes:
    return to_xml(resource) if fmt == XML else dumps(resource)


_FHIR_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?[A-Z][A-Za-z]+\s[^>]*xmlns(?::[\w.-]+)?\s*=\s*[\"']http://hl7\.org/fhir[\"']")


def is_fhir_message(raw: bytes) -> bool:
    """FHIR JSON, or XML whose root element is in the FHIR namespace (a MedCom OIOXML message
    is not): where a file in the inbox goes."""
    fmt = format_of(raw)
    if fmt == JSON:
        return True
    return fmt == XML and _FHIR_ROOT.search(raw[:4096]) is not None
