"""Lineage: which element of the MedCom XML each FHIR element of a converted Bundle came from.

The table is data, ``adapter/mappings/lineage.yaml`` (its header says how to read it); this
module applies it to one message and its Bundle::

    rows = lineage(raw, bundle, trace)
    # [{"resource": "ServiceRequest/25c9…", "element": "ServiceRequest.extension[0].valueDate",
    #   "xpath": "/Emessage/RehabilitationPlan/CurrentHospitalContact/ExpectedEnd/Date", "line": 61,
    #   "how": "date", "rule": null}, …]

Rows carry paths, lines, rule ids and how a value was made, never the value itself (the
console shows values only to roles allowed to see patient data). Rule output names its rule:
a Task's rule id, or the stratification rules that decided the proposed level with the
XPaths of their evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lxml import etree  # type: ignore[import-untyped]

from adapter.config_files import read_yaml
from adapter.data import MAPPINGS_DIR
from adapter.errors import ConfigError, issue
from adapter.medcom.nodes import formatted_text, local

LINEAGE_FILE = MAPPINGS_DIR / "lineage.yaml"
HOWS = ("copy", "split", "text", "contains", "date", "number", "code", "derived", "rule")
RULE_FROM = ("task", "stratification")
_SEGMENT = re.compile(r"([A-Za-z][A-Za-z0-9]*)(?:\[([^\]]+)\])?")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Entry:
    element: str
    how: str
    sources: tuple[str, ...]
    rule_from: str | None = None

    @property
    def resource_type(self) -> str:
        return self.element.split(".", 1)[0]


def _segments(path: str) -> list[tuple[str, str | None]]:
    """``extension[url$=X].valueDate`` → [("extension", "url$=X"), ("valueDate", None)]; a
    filter may itself contain dots, so the path is split outside brackets only."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(path + "."):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "." and depth == 0:
            m = _SEGMENT.fullmatch(path[start:i])
            if m is None:
                raise ValueError(path[start:i])
            out.append((m.group(1), m.group(2)))
            start = i + 1
    return out


def load_lineage(path: Path = LINEAGE_FILE) -> list[Entry]:
    """The table, checked: a broken entry is a located ``GGOP-E501``."""
    return list(_load(str(path)))


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[Entry, ...]:
    top, _at = read_yaml(Path(path))
    data = top.get("entries")
    if not isinstance(data, list):
        raise ConfigError(issue("GGOP-E501", None, f"{path}#entries", "expected a list of lineage entries"))
    out = []
    for i, raw in enumerate(data):
        at = f"{path}#[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("element"), str):
            raise ConfigError(issue("GGOP-E501", None, at, "expected a mapping with element"))
        how = raw.get("how")
        if how not in HOWS:
            raise ConfigError(issue("GGOP-E501", None, f"{at}.how", "one of " + ", ".join(HOWS)))
        sources = raw.get("sources")
        if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
            raise ConfigError(issue("GGOP-E501", None, f"{at}.sources", "a list of XPath patterns"))
        rule_from = raw.get("rule_from")
        if rule_from is not None and rule_from not in RULE_FROM:
            raise ConfigError(issue("GGOP-E501", None, f"{at}.rule_from", "one of " + ", ".join(RULE_FROM)))
        try:
            _segments(raw["element"])
        except ValueError:
            raise ConfigError(issue("GGOP-E501", None, f"{at}.element", "a dotted element path")) from None
        out.append(Entry(raw["element"], how, tuple(sources), rule_from))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# FHIR side
# --------------------------------------------------------------------------------------------


def _get(obj, dotted: str):
    for part in dotted.split("."):
        if isinstance(obj, list):
            obj = obj[0] if obj else None
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj[0] if isinstance(obj, list) and obj else obj


def _keep(item, flt: str) -> bool:
    if "$=" in flt:
        key, value = flt.split("$=", 1)
        got = _get(item, key)
        return isinstance(got, str) and got.endswith(value)
    key, value = flt.split("=", 1)
    return _get(item, key) == value


def element_values(resource: dict, element: str) -> list[tuple[str, object]]:
    """The values at ``element`` (its first segment the resource type), each with its concrete
    path (``Patient.name[0].given[1]``)."""
    segs = _segments(element)
    found: list[tuple[str, object]] = [(segs[0][0], resource)]
    for name, flt in segs[1:]:
        nxt: list[tuple[str, object]] = []
        for path, node in found:
            if not isinstance(node, dict) or name not in node:
                continue
            value = node[name]
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if flt is None or (flt.isdigit() and int(flt) == i) or (not flt.isdigit() and _keep(item, flt)):
                        nxt.append((f"{path}.{name}[{i}]", item))
            elif flt is None or flt == "0":
                nxt.append((f"{path}.{name}", value))
        found = nxt
    return [(p, v) for p, v in found if isinstance(v, (str, bool, int, float))]


# --------------------------------------------------------------------------------------------
# XML side
# --------------------------------------------------------------------------------------------


@dataclass
class _XmlNode:
    chain: tuple[str, ...]
    xpath: str
    line: int | None
    el: etree._Element

    @property
    def text(self) -> str:
        return _WS.sub(" ", "".join(self.el.itertext())).strip()

    @property
    def formatted(self) -> str:
        return formatted_text(self.el)


def _located(el: etree._Element) -> str:
    parts = []
    while el is not None:
        name = local(el)
        parent = el.getparent()
        if parent is not None:
            same = [c for c in parent if isinstance(c.tag, str) and local(c) == name]
            parts.append(f"{name}[{same.index(el) + 1}]" if len(same) > 1 else name)
        else:
            parts.append(name)
        el = parent
    return "/" + "/".join(reversed(parts))


def _nodes(root: etree._Element) -> list[_XmlNode]:
    out = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        chain = tuple(local(a) for a in reversed(list(el.iterancestors()))) + (local(el),)
        out.append(_XmlNode(chain, _located(el), el.sourceline, el))
    return out


def _under(nodes: list[_XmlNode], pattern: str) -> Iterator[_XmlNode]:
    parts = tuple(pattern.strip("/").split("/"))
    n = len(parts)
    for node in nodes:
        if node.chain[-n:] == parts:
            yield node


def _matches(how: str, value: object, node: _XmlNode) -> bool:
    text = node.text
    if not text:
        return False
    if how == "copy":
        return value == text
    if how == "split":
        return isinstance(value, str) and value in text.split()
    if how == "text":
        return value == node.formatted or value == text
    if how == "contains":
        return isinstance(value, str) and (text in value or node.formatted in value)
    if how == "date":
        return isinstance(value, str) and value[:10] == text[:10]
    if how == "number":
        return isinstance(value, str) and (value == text or (value.isdigit() and text.isdigit()
                                                              and value.lstrip("0") == text.lstrip("0")))
    return True  # code, derived, rule: the element is the source whatever its value


# --------------------------------------------------------------------------------------------
# Putting both together
# --------------------------------------------------------------------------------------------


def _rule_of(entry: Entry, resource: dict, trace: dict | None) -> tuple[str | None, list[str]]:
    if entry.rule_from == "task":
        for i in resource.get("input", []):
            if _get(i, "type.coding.code") == "rule-id":
                return i.get("valueString"), []
    if entry.rule_from == "stratification" and trace:
        strat = trace.get("stratification") or {}
        decided = list(strat.get("decidedBy") or [])
        evidence = [e["xpath"] for f in strat.get("fired", []) if f.get("rule") in decided
                    for e in f.get("evidence", []) if e.get("xpath")]
        return (", ".join(decided) or None), evidence
    return None, []


def resource_label(entry: dict) -> str:
    r = entry["resource"]
    rid = r.get("id") or str(entry.get("fullUrl", "")).removeprefix("urn:uuid:")
    return f"{r['resourceType']}/{rid}"


def lineage(root: etree._Element, bundle: dict, trace: dict | None = None,
            entries: list[Entry] | None = None) -> list[dict]:
    """One row per FHIR value that the table traces to the message whose parsed root is
    ``root`` (read it with :func:`adapter.medcom.xmlsafe.read_xml`)."""
    entries = entries if entries is not None else load_lineage()
    nodes = _nodes(root)
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for bundle_entry in bundle.get("entry", []):
        resource = bundle_entry.get("resource") or {}
        label = resource_label(bundle_entry)
        for entry in entries:
            if entry.resource_type != resource.get("resourceType"):
                continue
            for path, value in element_values(resource, entry.element):
                if (label, path) in seen:
                    continue
                source = _source(entry, value, nodes)
                if source is None:
                    continue
                seen.add((label, path))
                rule, evidence = _rule_of(entry, resource, trace)
                row: dict[str, object] = {"resource": label, "element": path, "xpath": source.xpath,
                                          "line": source.line, "how": entry.how, "rule": rule}
                if evidence:
                    row["evidence"] = evidence
                rows.append(row)
    return rows


def _source(entry: Entry, value: object, nodes: list[_XmlNode]) -> _XmlNode | None:
    for pattern in entry.sources:
        for node in _under(nodes, pattern):
            if _matches(entry.how, value, node):
                return node
    return None


def untraced(root: etree._Element, bundle: dict, entries: list[Entry] | None = None) -> list[tuple[str, str]]:
    """(resource label, concrete path) of every value of a listed element that the table
    cannot trace to the message (the lineage test wants none for value-comparing entries)."""
    entries = entries if entries is not None else load_lineage()
    nodes = _nodes(root)
    traced = {(r["resource"], r["element"]) for r in lineage(root, bundle, None, entries)}
    out = []
    for bundle_entry in bundle.get("entry", []):
        resource = bundle_entry.get("resource") or {}
        label = resource_label(bundle_entry)
        for entry in entries:
            if entry.resource_type != resource.get("resourceType") or entry.how in ("code", "derived", "rule"):
                continue
            for path, _value in element_values(resource, entry.element):
                if (label, path) not in traced and _present(entry, nodes):
                    out.append((label, path))
    return sorted(set(out))


def _present(entry: Entry, nodes: list[_XmlNode]) -> bool:
    return any(True for pattern in entry.sources for _ in _under(nodes, pattern))
