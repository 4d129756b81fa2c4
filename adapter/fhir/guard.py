"""The runtime check of what the adapter emits: a compiled JSON Schema of FHIR R4.

Every resource of every Bundle passes through it before it leaves the core. It catches what
a mapping defect could produce: an element FHIR does not define (or a misspelt one), a value of
the wrong JSON type (a number for a string, an object for a list, a list for a single value),
a primitive that breaks its FHIR pattern (id, code, uri, date, dateTime, instant, …), an empty
string, and a missing required element (``Task.status``, ``Reference`` inside a list, …). A
failure is a :class:`~adapter.errors.MappingError` (``GGOP-E401``) naming the FHIR path and the
rule, as the full model check (:func:`adapter.fhir.bundle.check_with_models`) does.

The schema is data (``adapter/schemas/fhir-r4-emitted.schema.json``), made from the same
fhir.resources models that the full check parses with (``python -m adapter.fhir.guard`` writes
it again; a test keeps it in step with the models), for the resource types the adapter
writes. It is compiled once per process with jsonschema-rs (a validator in Rust); checking a
Bundle costs about a tenth of a millisecond, against milliseconds for parsing it with the
pydantic models. The full model check stays in the test suite, behind
``ggop-adapter convert --strict`` and behind ``ADAPTER_CHECK_MODELS=1``.

Not checked here (the full model check does): the calendar validity of a date that matches the
pattern (a date the mapping writes comes from a Python date), and that at most one of a choice
element's types (``value[x]``) is present.
"""

from __future__ import annotations

import json
import sys
import typing
from functools import cache
from pathlib import Path

import jsonschema_rs

from adapter.data import SCHEMAS_DIR
from adapter.errors import ConfigError, MappingError, issue

SCHEMA_FILE = SCHEMAS_DIR / "fhir-r4-emitted.schema.json"

# The resource types the mappings write (adapter/fhir/*.py); any other type is a defect.
EMITTED_TYPES = (
    "CarePlan", "Communication", "Condition", "Consent", "DocumentReference", "Encounter", "Organization",
    "Patient", "Practitioner", "PractitionerRole", "Provenance", "ServiceRequest", "Task",
)


# --- checking ----------------------------------------------------------------------------------

@cache
def _validator(path: Path = SCHEMA_FILE) -> jsonschema_rs.Draft7Validator:
    """The compiled schema (built once per process): an object of one property, named by the
    resource type, whose value is the resource."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(issue("GGOP-E501", None, f"adapter/schemas/{path.name}", type(exc).__name__)) from None
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": document["definitions"],
              "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
              "properties": {t: {"$ref": f"#/definitions/{t}"} for t in document["resourceTypes"]}}
    return jsonschema_rs.Draft7Validator(schema)


def preload() -> None:
    """Compile the schema now (at a process start), not on the first message."""
    _validator()


def _rule(error: jsonschema_rs.ValidationError) -> str:
    keyword = next((str(p) for p in reversed(list(error.schema_path)) if isinstance(p, str)), "schema")
    return keyword if not keyword[:1].isupper() else "schema"


def check_resources(bundle: dict) -> None:
    """Check every entry's resource against the schema of its type; raise MappingError naming
    each defect: the FHIR path and the JSON Schema keyword that failed (``type``, ``pattern``,
    ``required``, ``additionalProperties``, …), never the value."""
    validator = _validator()
    problems = []
    for i, entry in enumerate(bundle["entry"]):
        res = entry.get("resource")
        rtype = res.get("resourceType") if isinstance(res, dict) else None
        wrapped = {rtype if isinstance(rtype, str) else "?": res}
        if validator.is_valid(wrapped):
            continue
        for error in validator.iter_errors(wrapped):
            rest = ".".join(str(p) for p in list(error.instance_path)[1:])
            problems.append(issue("GGOP-E401", fhir_path=f"Bundle.entry[{i}].resource" + (f".{rest}" if rest else ""),
                                  detail=_rule(error)))
    if problems:
        raise MappingError(problems)


# --- making the schema from the fhir.resources models -----------------------------------------

# JSON Schema of each FHIR primitive, by the fhir_core metadata class that marks it. Patterns are
# those fhir_core checks with (the FHIR specification's, anchored; its uri and markdown patterns
# match any string).
_DATE = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|([+\-])((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
PRIMITIVES: dict[str, dict] = {
    "String": {"type": "string", "pattern": r"[ \r\n\t\S]+"},
    "Markdown": {"type": "string"},
    "Xhtml": {"type": "string", "minLength": 1},
    "Code": {"type": "string", "pattern": r"^[^\s]+(\s[^\s]+)*$"},
    "Id": {"type": "string", "pattern": r"^[A-Za-z0-9\-.]+$", "minLength": 1, "maxLength": 255},
    "Uri": {"type": "string"},
    "Url": {"type": "string"},
    "Canonical": {"type": "string"},
    "Oid": {"type": "string", "pattern": r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$"},
    "UuidVersion": {"type": "string", "pattern": r"^urn:uuid:[0-9a-fA-F-]{36}$"},
    # the adapter's base64Binary values come from the standard library's encoder (a message's
    # copy in its DocumentReference, kilobytes long): their alphabet is not scanned again
    "Base64Binary": {"type": "string"},
    "Date": {"type": "string", "pattern": rf"^{_DATE}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$"},
    "DateTime": {"type": "string",
                 "pattern": rf"^{_DATE}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{_TIME}{_ZONE})?)?)?$"},
    "Instant": {"type": "string",
                "pattern": rf"^{_DATE}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{_TIME}{_ZONE}$"},
    "Time": {"type": "string", "pattern": rf"^{_TIME}$"},
    "Decimal": {"type": "number"},
    "Integer": {"type": "integer", "minimum": -2147483648, "maximum": 2147483647},
    "Integer64": {"type": "integer"},
    "PositiveInt": {"type": "integer", "minimum": 1, "maximum": 2147483647},
    "UnsignedInt": {"type": "integer", "minimum": 0, "maximum": 2147483647},
}


def _primitive(annotation) -> dict | None:
    if annotation is bool:
        return {"type": "boolean"}
    for meta in getattr(annotation, "__metadata__", ()):
        found = PRIMITIVES.get(type(meta).__name__)
        if found is not None:
            return found
    return None


def _unwrap(annotation) -> tuple[object, bool]:
    """(the element type, whether it is a list) of a field's annotation."""
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            if len(args) > 1 and any(a is str for a in args):  # Union[AnyUrl, str]: a URL string
                return str, is_list
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - what the models' annotations use
            is_list, annotation = True, args[0]
        else:
            return annotation, is_list


def _extra(field) -> dict:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def build_schema(resource_types: tuple[str, ...] = EMITTED_TYPES) -> dict:
    """The JSON Schema document for ``resource_types`` and every datatype they reach."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource as resource_class

    definitions: dict[str, dict] = {}

    def define(model) -> str:
        name = model.__name__
        if name in definitions:
            return name
        definitions[name] = {}  # placeholder first: datatypes are recursive (Extension)
        properties: dict[str, dict] = {}
        required: set[str] = {f for f, _ext in model.get_required_fields(None)}
        choices: dict[str, list[str]] = {}
        for field_name, field in model.model_fields.items():
            alias = field.alias or field_name
            if alias == "fhir_comments":
                continue
            extra = _extra(field)
            if extra.get("one_of_many") and extra.get("one_of_many_required"):
                choices.setdefault(extra["one_of_many"], []).append(alias)
            if extra.get("element_required") or field.is_required():
                required.add(alias)
            if alias.startswith("_"):  # the extension of a primitive (id, extension): not written
                properties[alias] = {"type": ["object", "array"]}
                continue
            element, is_list = _unwrap(field.annotation)
            schema = _element_schema(element, define, get_fhir_model_class)
            properties[alias] = {"type": "array", "items": schema} if is_list else schema
        if issubclass(model, resource_class):
            properties["resourceType"] = {"const": name}
        definition: dict = {"type": "object", "additionalProperties": False, "properties": properties}
        if "resourceType" in properties:
            required.add("resourceType")
        required_aliases = sorted(model.model_fields[r].alias or r if r in model.model_fields else r
                                  for r in required)
        if required_aliases:
            definition["required"] = required_aliases
        if choices:  # a required choice (value[x]): some property is one of its names
            definition["allOf"] = [{"not": {"propertyNames": {"not": {"enum": sorted(names)}}}}
                                   for _group, names in sorted(choices.items())]
        definitions[name] = definition
        return name

    for rtype in resource_types:
        define(get_fhir_model_class(rtype))
    return {"comment": "Made by `python -m adapter.fhir.guard` from the fhir.resources R4B models; "
                       "do not edit by hand.",
            "resourceTypes": list(resource_types), "definitions": dict(sorted(definitions.items()))}


def _element_schema(element, define, get_class) -> dict:
    primitive = _primitive(element)
    if primitive is not None:
        return dict(primitive)
    if element is str:
        return {"type": "string"}
    name = getattr(element, "__name__", "")
    if name == "ResourceType":  # contained / Bundle.entry.resource: any resource, checked on its own
        return {"type": "object", "required": ["resourceType"]}
    if name == "FHIRPrimitiveExtensionType":
        return {"type": "object"}
    if name.endswith("Type"):
        return {"$ref": f"#/definitions/{define(get_class(name[:-len('Type')]))}"}
    raise TypeError(f"unexpected annotation {element!r}")


def main(argv: list[str] | None = None) -> int:
    """Write the schema file (``--check``: exit 1 when the file differs from the models)."""
    argv = sys.argv[1:] if argv is None else argv
    text = json.dumps(build_schema(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if "--check" in argv:
        same = SCHEMA_FILE.exists() and SCHEMA_FILE.read_text("utf-8") == text
        print("up to date" if same else f"{SCHEMA_FILE} differs from the models: run python -m adapter.fhir.guard")
        return 0 if same else 1
    SCHEMA_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_FILE} ({len(text)} characters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
