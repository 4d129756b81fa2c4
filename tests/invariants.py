"""Invariants every emitted Bundle must satisfy (used over goldens, MedCom's examples
and generated messages)."""

from __future__ import annotations

import json
import re
from collections import Counter
from urllib.parse import unquote

from lxml import etree

from adapter.fhir.bundle import entry_id
from adapter.fhir.identity import SHARED_TYPES
from adapter.fhir.models import model_class
from adapter.medcom.nodes import formatted_text

UUID = re.compile(r"^(urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2}|Z))?$")
URI = re.compile(r"^(https?://|urn:)")
# Codes FHIR itself requires (element values of the R4 structure, not content).
STRUCTURAL = {
    "transaction", "PUT", "active", "plan", "official", "phone", "email", "temp", "current",
    "scheduled", "Appointment", "source", "revoked", "unknown", "in-progress", "finished",
    "permit", "deny", "application/xml", "male", "female", "OTH", "IMP", "AMB",
    "encounter-diagnosis", "patient-privacy", "59284-0", "other", "mobile", "home", "work",
    "requested", "cancelled", "order",
}
SKIP_KEYS = {"id", "fullUrl", "reference", "data", "hash", "resourceType", "url"}


def walk_strings(obj, key=None, path="Bundle"):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk_strings(v, k, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk_strings(v, key, f"{path}[{i}]")
    elif isinstance(obj, str):
        yield path, key, obj


def json_nodes(obj, path="Bundle"):
    """Every value in ``obj`` (JSON), with its path: an object or array before what it holds."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_nodes(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from json_nodes(v, f"{path}[{i}]")


def empty_values(obj, path="Bundle"):
    """Paths of the values FHIR does not allow to be empty: None, "", [] and {} (JSON null, an
    empty string, array or object), anywhere in ``obj``."""
    return [p for p, v in json_nodes(obj, path) if v is None or (isinstance(v, (str, list, dict)) and not v)]


def input_tokens(raw: bytes) -> set[str]:
    from adapter.medcom.xmlsafe import read_xml
    root = read_xml(raw).root
    tokens: set[str] = set()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        for text in (formatted_text(el), el.text or ""):
            tokens.update(text.split())
    return tokens


def _bare(token: str) -> str:
    """A token without the punctuation a sentence puts around it."""
    return token.strip(",.;:()\"'")


def rule_strings() -> set[str]:
    """Every string in the rule files of adapter/mappings/ (reasons, legal bases, rule ids)."""
    import yaml

    from conftest import REPO

    out: set[str] = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                out.add(str(k))
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif x is not None:
            out.add(str(x))

    for f in sorted((REPO / "adapter" / "mappings").glob("*.yaml")):
        walk(yaml.safe_load(f.read_text("utf-8")))
    return out


def check_bundle(bundle: dict, raw: bytes, table_strings: set[str]) -> list[str]:
    problems: list[str] = []
    entries = bundle["entry"]
    kinds = Counter(e["resource"]["resourceType"] for e in entries)
    if kinds["Patient"] != 1:
        problems.append(f"expected one Patient, found {kinds['Patient']}")
    ids = [entry_id(e) for e in entries]
    if len(set(ids)) != len(ids):
        problems.append("resource ids are not unique")
    full = {e["fullUrl"] for e in entries}
    if len(full) != len(entries):
        problems.append("fullUrls are not unique")
    for e in entries:
        res, url = e["resource"], e["request"]["url"]
        if "id" in res:
            if e["fullUrl"] != f"urn:uuid:{res['id']}" or url != f"{res['resourceType']}/{res['id']}":
                problems.append(f"entry {e['fullUrl']} does not match its resource id")
            continue
        # a conditional update: on one of the resource's own identifiers, of a shared type
        tokens = {f"{i.get('system')}|{i.get('value')}" for i in res.get("identifier", [])}
        rtype, _, query = url.partition("?identifier=")
        if rtype != res["resourceType"] or unquote(query) not in tokens or rtype not in SHARED_TYPES \
                or not UUID.match(e["fullUrl"].removeprefix("urn:uuid:")):
            problems.append(f"conditional entry {e['fullUrl']} does not match its resource")
    digits = {t for t in input_tokens(raw) if t.isdigit() and len(t) >= 6}
    if any(d in e["fullUrl"] or d in e["request"]["url"].partition("?")[0] for e in entries for d in digits):
        problems.append("a resource id carries a number from the message")
    problems += [f"an empty value at {path}" for path in empty_values(bundle)]
    for path, key, value in walk_strings(bundle):
        if key == "reference" and value not in full:
            problems.append(f"unresolved reference at {path}")
    tokens = {_bare(t) for t in input_tokens(raw)}
    table_tokens = {_bare(t) for s in table_strings | rule_strings() for t in s.split()}
    for path, key, value in walk_strings(bundle):
        if key in SKIP_KEYS or UUID.match(value) or DATE.match(value) or URI.match(value) or value in STRUCTURAL:
            continue
        for token in map(_bare, value.split()):
            if token in tokens or token in table_tokens or token.lstrip("0") in {t.lstrip("0") for t in tokens if t.isdigit()}:
                continue
            if DATE.match(token):  # a date the rules computed, in a note built from a table's template
                continue
            problems.append(f"string at {path} has a token from neither the input nor a mapping table")
            break
    for e in entries:
        res = e["resource"]
        model = model_class(res["resourceType"]).model_validate(res)
        if json.loads(model.model_dump_json(by_alias=True, exclude_none=True)) != res:
            problems.append(f"{res['resourceType']}/{entry_id(e)} does not round-trip through the models")
    return problems


def independent_r4_check(bundle: dict) -> list[str]:
    import fhirkit

    problems = [str(i) for i in fhirkit.validate(bundle) if i.severity == "error"]
    for e in bundle["entry"]:
        problems += [str(i) for i in fhirkit.validate(e["resource"]) if i.severity == "error"]
    return problems


def xml_is_wellformed(data: bytes) -> bool:
    try:
        etree.fromstring(data)
    except etree.XMLSyntaxError:
        return False
    return True
