"""Validation against the project's own XSDs (``adapter/schemas/``).

The schemas describe the expected shape precisely; a real message that deviates
is not refused for that alone (the G-GOP schema is a reconstruction, and MedCom's
own examples deviate): every finding becomes a located warning, and the business
rules decide what refuses a message. Findings name elements and facets only,
never the value that failed.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]  # no hints in lxml; lxml-stubs mistypes it

from adapter.data import SCHEMAS_DIR
from adapter.errors import ConfigError, Issue, issue
from adapter.medcom.nodes import local

SCHEMA_DIR = SCHEMAS_DIR

_ELEMENT = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")
_EXPECTED = re.compile(r"Expected is(?: one of)? \( ([^)]*) \)")
_QNAME = re.compile(r"\{([^}]*)\}([A-Za-z0-9_.-]+)|([A-Za-z0-9_.-]+)")


@cache
def catalog(schema_dir: Path = SCHEMA_DIR) -> dict:
    path = schema_dir / "catalog.json"
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(issue("GGOP-E501", None, str(path), type(exc).__name__)) from None


@cache
def load_schema(key: str, schema_dir: Path = SCHEMA_DIR) -> etree.XMLSchema:
    entry = catalog(schema_dir).get(key)
    if entry is None:
        raise ConfigError(issue("GGOP-E501", None, f"adapter/schemas/catalog.json#{key}"))
    path = schema_dir / entry["xsd"]
    try:
        return etree.XMLSchema(etree.parse(str(path)))
    except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise ConfigError(issue("GGOP-E501", None, str(path.relative_to(schema_dir.parent)),
                                type(exc).__name__)) from None


def preload_schemas(schema_dir: Path = SCHEMA_DIR) -> None:
    """Compile every schema of the catalog now (a process start), not on the first message."""
    for key in catalog(schema_dir):
        load_schema(key, schema_dir)


def _xpath_index(root: etree._Element) -> dict[int, str]:
    """First element starting on each line → its XPath of local names."""
    index: dict[int, str] = {}

    def walk(el: etree._Element, path: str) -> None:
        if el.sourceline is not None and el.sourceline not in index:
            index[el.sourceline] = path
        counts: dict[str, int] = {}
        kids = [c for c in el if isinstance(c.tag, str)]
        for c in kids:
            counts[local(c)] = counts.get(local(c), 0) + 1
        seen: dict[str, int] = {}
        for c in kids:
            name = local(c)
            seen[name] = seen.get(name, 0) + 1
            suffix = f"[{seen[name]}]" if counts[name] > 1 else ""
            walk(c, f"{path}/{name}{suffix}")

    walk(root, "/" + local(root))
    return index


def _expected_names(message: str) -> list[tuple[str | None, str]]:
    m = _EXPECTED.search(message)
    if not m:
        return []
    names = []
    for part in m.group(1).split(","):
        q = _QNAME.search(part.strip())
        if q:
            names.append((q.group(1), q.group(2)) if q.group(2) else (None, q.group(3)))
    return names


def _classify(entry) -> tuple[str, str]:
    msg = entry.message or ""
    el = _ELEMENT.search(msg)
    name = el.group(1) if el else "?"
    expected = _expected_names(msg)
    if "This element is not expected" in msg:
        if expected and any(n == name for _, n in expected):
            return "GGOP-W205", f"{name} (expected in namespace {expected[0][0]})"
        exp = ", ".join(n for _, n in expected[:6])
        return "GGOP-W201", f"{name}" + (f"; expected: {exp}" if exp else "")
    if "Missing child element" in msg:
        exp = ", ".join(n for _, n in expected[:6])
        return "GGOP-W202", f"in {name}" + (f": {exp}" if exp else "")
    if "facet" in msg or "is not a valid value" in msg or "atomic type" in msg:
        facet = re.search(r"\[facet '([^']+)'\]", msg)
        return "GGOP-W203", f"{name}" + (f" ({facet.group(1)})" if facet else "")
    return "GGOP-W204", f"{name} ({entry.type_name})"


MAX_FINDINGS = 100  # one by one; more are counted in one GGOP-W206


def schema_findings(root: etree._Element, key: str, schema_dir: Path = SCHEMA_DIR) -> list[Issue]:
    schema = load_schema(key, schema_dir)
    if schema.validate(root):
        return []
    index = _xpath_index(root)
    findings = []
    log = schema.error_log
    for entry in log[:MAX_FINDINGS]:
        code, detail = _classify(entry)
        findings.append(issue(code, entry.line, index.get(entry.line), detail))
    if len(log) > MAX_FINDINGS:
        findings.append(issue("GGOP-W206", None, "/", f"{len(log) - MAX_FINDINGS} more"))
    return findings
