"""FHIR R4 XML ⇄ FHIR JSON, for MedCom's wire format (FHIR XML over VANS).

The element structure (which names repeat, which are primitives of which JSON type, where a
resource or XHTML stands) is read from the fhir.resources R4B model classes, which are
structure-identical to R4 for the resources MedCom messages carry. Reading goes through the
project's hardened XML reader (:func:`adapter.medcom.xmlsafe.read_xml`): no DTD, no entity,
nothing from disk or network, size, depth, element and attribute limits. Every problem is an
issue with a stable code (``GGOP-E6xx``) and a FHIR path; no value is ever echoed.

Writing orders every element as the R4 definitions do, ``id`` and ``url`` of data types and
extensions as attributes, primitives as ``value`` attributes with their ``id``/``extension``
beside them, and serialises deterministically (the same JSON gives the same bytes).
"""

from __future__ import annotations

import decimal
import re
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from adapter.errors import InputError, Issue, issue
from adapter.fhir.models import model_class
from adapter.medcom.xmlsafe import read_xml

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_INTEGER = re.compile(r"^[-+]?[0-9]{1,10}$")
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?([eE][-+]?[0-9]{1,3})?$")
MAX_ISSUES = 20


@dataclass(frozen=True)
class Slot:
    """One element of a FHIR type: repeats or not, and what it holds."""

    name: str
    repeats: bool
    kind: str  # complex | resource | xhtml | boolean | integer | decimal | string
    cls: Any = None  # the model class of a complex element


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    """(repeats, the element's own type) from a model field annotation."""
    repeats = False
    t = annotation
    while True:
        origin = typing.get_origin(t)
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(t) if a is not type(None)]
            t = args[0]
            continue
        if origin in (list, typing.List):  # noqa: UP006 - the models' annotations use typing.List
            repeats = True
            t = typing.get_args(t)[0]
            continue
        return repeats, t


def _kind(t: Any) -> tuple[str, Any]:
    if typing.get_origin(t) is typing.Annotated:
        base, *meta = typing.get_args(t)
        if any(type(m).__name__ == "Xhtml" for m in meta):
            return "xhtml", None
        t = base
    if t is bool:
        return "boolean", None
    if t is int:
        return "integer", None
    if t is decimal.Decimal or t is float:
        return "decimal", None
    getter = getattr(t, "get_model_klass", None)
    if getter is not None:
        klass = getter()
        if klass.__name__ == "Resource":
            return "resource", None
        return "complex", klass
    return "string", None


@cache
def slots(cls: Any) -> dict[str, Slot]:
    """The elements of a model class by name (``_name`` primitive extensions left out)."""
    out: dict[str, Slot] = {}
    for name, field in cls.model_fields.items():
        alias = field.alias or name
        if alias.startswith("_") or alias == "fhir_comments" or name.endswith("__ext"):
            continue
        repeats, t = _unwrap(field.annotation)
        kind, klass = _kind(t)
        out[alias] = Slot(alias, repeats, kind, klass)
    return out


@cache
def _order(cls: Any) -> tuple[str, ...]:
    return tuple(cls.elements_sequence())


@cache
def _is_resource(cls: Any) -> bool:
    return any(base.__name__ == "Resource" for base in cls.__mro__)


def _local(el: Any) -> tuple[str | None, str]:
    q = etree.QName(el)
    return q.namespace, q.localname


def _resource_class(name: str) -> Any | None:
    if not re.fullmatch(r"[A-Z][A-Za-z]{1,40}", name):
        return None
    try:
        cls = model_class(name)
    except (ImportError, AttributeError):
        return None
    return cls if _is_resource(cls) else None


class _Reader:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def fail(self, code: str, path: str, detail: str | None = None) -> None:
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(issue(code, None, None, detail, fhir_path=path))

    def resource(self, el: Any, path: str) -> dict | None:
        ns, name = _local(el)
        cls = _resource_class(name) if ns == FHIR_NS else None
        if cls is None:
            self.fail("GGOP-E603", path, "not a FHIR resource element")
            return None
        out: dict[str, Any] = {"resourceType": name}
        out.update(self.element(el, cls, path, resource=True))
        return out

    def element(self, el: Any, cls: Any, path: str, resource: bool = False) -> dict:
        out: dict[str, Any] = {}
        for attr, text in el.attrib.items():
            if attr == "id" and not resource:
                out["id"] = text
            elif attr == "url" and cls.__name__ == "Extension":
                out["url"] = text
            elif attr != "value":
                self.fail("GGOP-E603", f"{path}.@{etree.QName(attr).localname}", "attribute not allowed here")
        known = slots(cls)
        values: dict[str, list[Any]] = {}
        extras: dict[str, list[Any]] = {}
        for child in el:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            ns, name = _local(child)
            slot = known.get(name)
            if slot is None or ns != (XHTML_NS if slot.kind == "xhtml" else FHIR_NS) \
                    or (not resource and (name == "id" or (name == "url" and cls.__name__ == "Extension"))):
                self.fail("GGOP-E603", f"{path}.{name}", "element not known at this place")
                continue
            here = f"{path}.{name}"
            value: Any = None
            extra: dict[str, Any] | None = None
            if slot.kind == "xhtml":
                value = etree.tostring(child, encoding="unicode", with_tail=False)
            elif slot.kind == "resource":
                inner = [c for c in child if isinstance(c.tag, str)]
                if len(inner) != 1:
                    self.fail("GGOP-E603", here, "holds one resource")
                    continue
                value = self.resource(inner[0], here)
                if value is None:
                    continue
            elif slot.kind == "complex":
                value = self.element(child, slot.cls, here)
            else:
                raw = child.get("value")
                value = None if raw is None else self.primitive(raw, slot.kind, here)
                ext = self.element(child, _primitive_extension(), here) if len(child) or child.get("id") else None
                if ext:
                    extra = ext
                if value is None and extra is None:
                    self.fail("GGOP-E603", here, "a primitive element without value or extension")
                    continue
            if slot.repeats:
                values.setdefault(name, []).append(value)
                extras.setdefault(name, []).append(extra)
            elif name in values:
                self.fail("GGOP-E603", here, "element repeated where it may appear once")
            else:
                values[name] = [value]
                extras[name] = [extra]
        for name, vals in values.items():
            slot = known[name]
            exts = extras[name]
            if slot.repeats:
                if any(v is not None for v in vals):
                    out[name] = vals
                if any(e is not None for e in exts):
                    out["_" + name] = exts
            else:
                if vals[0] is not None:
                    out[name] = vals[0]
                if exts[0] is not None:
                    out["_" + name] = exts[0]
        return out

    def primitive(self, raw: str, kind: str, path: str) -> Any:
        if kind == "boolean":
            if raw not in ("true", "false"):
                self.fail("GGOP-E604", path, "boolean")
                return None
            return raw == "true"
        if kind == "integer":
            if not _INTEGER.match(raw):
                self.fail("GGOP-E604", path, "integer")
                return None
            return int(raw)
        if kind == "decimal":
            if not _DECIMAL.match(raw):
                self.fail("GGOP-E604", path, "decimal")
                return None
            number = decimal.Decimal(raw)
            return int(number) if number == number.to_integral_value() and "." not in raw else float(number)
        return raw


@cache
def _primitive_extension() -> Any:
    """The model of what a primitive carries besides its value: ``id`` and ``extension``."""
    from fhir.resources.R4B.fhirprimitiveextension import FHIRPrimitiveExtension

    return FHIRPrimitiveExtension


def parse_xml(raw: bytes, *, max_bytes: int, max_depth: int, max_elements: int, max_attributes: int) -> dict:
    """A FHIR resource read from FHIR XML bytes, as FHIR JSON; raises :class:`InputError`."""
    doc = read_xml(raw, max_bytes=max_bytes, max_depth=max_depth, max_elements=max_elements,
                   max_attributes=max_attributes)
    reader = _Reader()
    _ns, name = _local(doc.root)
    result = reader.resource(doc.root, name)
    if reader.issues or result is None:
        raise InputError(reader.issues or [issue("GGOP-E603", None, None, fhir_path=name)])
    return result


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _q(name: str) -> str:
    return f"{{{FHIR_NS}}}{name}"


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


class _Writer:
    def __init__(self) -> None:
        self.narratives: list[tuple[Any, str]] = []  # placeholder element, XHTML text

    def resource(self, parent: Any, data: dict) -> Any:
        rtype = data["resourceType"]
        cls = model_class(rtype)
        el = etree.SubElement(parent, _q(rtype)) if parent is not None else \
            etree.Element(_q(rtype), nsmap={None: FHIR_NS})
        self.fill(el, data, cls, resource=True)
        return el

    def fill(self, el: Any, data: dict, cls: Any, resource: bool = False) -> None:
        if not resource and "id" in data:
            el.set("id", str(data["id"]))
        if cls.__name__ == "Extension" and "url" in data:
            el.set("url", str(data["url"]))
        known = slots(cls)
        for name in _order(cls):
            if name in ("id", "url") and not resource and (name == "id" or cls.__name__ == "Extension"):
                continue
            if name not in data and "_" + name not in data:
                continue
            slot = known[name]
            vals = data.get(name)
            exts = data.get("_" + name)
            if slot.repeats:
                vals = vals if isinstance(vals, list) else []
                exts = exts if isinstance(exts, list) else []
                for i in range(max(len(vals), len(exts))):
                    self.one(el, slot, vals[i] if i < len(vals) else None, exts[i] if i < len(exts) else None)
            else:
                self.one(el, slot, vals, exts)

    def one(self, parent: Any, slot: Slot, value: Any, ext: Any) -> None:
        if value is None and not ext:
            return
        if slot.kind == "xhtml":  # put in after indenting, so its whitespace stays as it is
            self.narratives.append((etree.SubElement(parent, _q("div")), str(value)))
            return
        child = etree.SubElement(parent, _q(slot.name))
        if slot.kind == "resource":
            self.resource(child, value)
        elif slot.kind == "complex":
            self.fill(child, value, slot.cls)
        else:
            if ext:
                self.fill(child, ext, _primitive_extension())
            if value is not None:
                child.set("value", _text(value))


def to_xml(resource: dict) -> bytes:
    """FHIR XML bytes for a FHIR JSON resource (UTF-8, with declaration, two-space indents)."""
    writer = _Writer()
    root = writer.resource(None, resource)
    etree.indent(root, space="  ")
    for placeholder, text in writer.narratives:
        div = read_xml(text.encode("utf-8"), max_depth=32).root
        div.tail = placeholder.tail
        placeholder.getparent().replace(placeholder, div)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
