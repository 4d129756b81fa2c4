"""Builders for FHIR datatypes from MedCom values (plain dicts, R4 JSON shape)."""

from __future__ import annotations

from typing import TypeVar

from adapter.fhir.context import MapContext
from adapter.fhir.systems import (  # noqa: F401 (the mapping modules import them from here)
    CPR_SYSTEM,
    ENVELOPE_ID_SYSTEM,
    GLN_SYSTEM,
    LETTER_ID_SYSTEM,
    REGION_SYSTEM,
    URI_SYSTEM,
    XECPR_SYSTEM,
    YDERNUMMER_SYSTEM,
)
from adapter.medcom.identifiers import gln_is_valid, normalise_municipality_code
from adapter.medcom.model import Address, Party, Telephone
from adapter.medcom.nodes import Val

T = TypeVar("T")


def v(val: Val | None) -> str | None:
    return val.value if val is not None else None


def required(value: T | None, what: str) -> T:
    """``value``, which the checks guarantee in an accepted message (or the code tables hold).

    None is a defect of ours: it raises the AttributeError that using the None would, which the
    pipeline reports as GGOP-E401.
    """
    if value is None:
        raise AttributeError(f"{what} is missing")
    return value


def _pruned_dict(obj: dict) -> dict:
    out = {}
    for k, x in obj.items():
        t = x.__class__
        if t is str:
            if x:
                out[k] = x
        elif t is dict:
            x = _pruned_dict(x)
            if x:
                out[k] = x
        elif t is list:
            x = _pruned_list(x)
            if x:
                out[k] = x
        elif x is not None:
            x = _pruned_other(x)
            if x is not _DROP:
                out[k] = x
    return out


def _pruned_list(obj: list) -> list:
    out = []
    for x in obj:
        t = x.__class__
        if t is str:
            if x:
                out.append(x)
        elif t is dict:
            x = _pruned_dict(x)
            if x:
                out.append(x)
        elif t is list:
            x = _pruned_list(x)
            if x:
                out.append(x)
        elif x is not None:
            x = _pruned_other(x)
            if x is not _DROP:
                out.append(x)
    return out


_DROP = object()


def _pruned_other(x):
    """A value of another type than exactly str, dict or list (a number, a subclass)."""
    if isinstance(x, dict):
        x = _pruned_dict(x)
    elif isinstance(x, list):
        x = _pruned_list(x)
    elif x == "":
        return _DROP
    return x if x or not isinstance(x, (dict, list)) else _DROP


def prune(obj):
    """Drop None, empty strings, empty lists and empty dicts, recursively."""
    if isinstance(obj, dict):
        return _pruned_dict(obj)
    if isinstance(obj, list):
        return _pruned_list(obj)
    return obj


def compact(obj: dict) -> dict:
    """``obj`` without the empty values :func:`prune` drops (None, "", [], {}), at its top level
    only: for a resource whose nested parts are built without empty values, where walking the
    whole of it again would cost more than building it did."""
    return {k: x for k, x in obj.items() if x or x is False or x == 0}


def coding(system: str | None, code: str | None, display: str | None = None) -> dict:
    """A Coding with only the parts that are there."""
    out = {"system": system} if system else {}
    if code:
        out["code"] = code
    if display:
        out["display"] = display
    return out


def medcom_identifier(kind: str, value: str, ctx: MapContext) -> dict:
    """A MedCom letter (``letter-id``) or envelope (``envelope-id``) id, assigned by the sender."""
    system = LETTER_ID_SYSTEM if kind == "letter-id" else ENVELOPE_ID_SYSTEM
    return {"type": {"text": ctx.text(kind)}, "system": system, "value": value,
            "assigner": {"identifier": {"system": GLN_SYSTEM, "value": ctx.sender_ean}}}


def human_name(given: Val | None, surname: Val | None, use: str | None = "official") -> dict | None:
    if given is None and surname is None:
        return None
    return compact({"use": use, "family": v(surname), "given": given.value.split() if given else None})


def address(a: Address | None, line_prefix: str | None = None) -> dict | None:
    if a is None or not any((a.street_name, a.suburb_name, a.district_name, a.post_code)):
        return None
    lines = [line_prefix] if line_prefix else []
    lines += [x for x in (v(a.street_name), v(a.suburb_name)) if x]
    return compact({"line": lines, "city": v(a.district_name), "postalCode": v(a.post_code)})


def party_address(p: Party) -> dict | None:
    return address(Address(p.street_name, p.suburb_name, p.district_name, p.post_code))


def telecom(phones: list[Telephone], ctx: MapContext) -> list[dict]:
    out = []
    for t in phones:
        use = ctx.tables.translate("telephone-use", v(t.use))
        out.append(compact({"system": "phone", "value": t.number.value, "use": use.code if use else None}))
    return out


def phone(val: Val | None) -> list[dict]:
    return [{"system": "phone", "value": val.value}] if val is not None else []


def email(val: Val | None) -> list[dict]:
    return [{"system": "email", "value": val.value}] if val is not None else []


def party_identifiers(p: Party, ctx: MapContext) -> list[dict]:
    """GLN (when valid) plus the identifier its IdentifierCode names."""
    ids: list[dict] = []
    if p.ean is not None:
        if gln_is_valid(p.ean.value):
            ids.append({"system": GLN_SYSTEM, "value": p.ean.value})
        else:
            ids.append({"type": {"text": ctx.text("invalid-gln")}, "value": p.ean.value})
    if p.identifier is not None:
        code = (v(p.identifier_code) or "").lower()
        value = p.identifier.value
        target = ctx.tables.translate("identifier-code-to-system", code)
        if code == "kommunenummer":
            norm = normalise_municipality_code(value)
            if norm is not None:
                value = norm
            else:
                target = None
        if code == "lokationsnummer" and (not gln_is_valid(value) or any(i.get("value") == value for i in ids)):
            return ids
        if code == "region":  # MedCom's region number (1081…1085) as DK-core's ISO 3166-2 code
            iso = ctx.tables.translate("region-code-to-iso", value)
            if iso is not None:
                ids.append({"system": REGION_SYSTEM, "value": iso.code})
                return ids
        if target is not None:
            ids.append({"system": target.code, "value": value})
        else:
            ids.append(prune({"type": {"text": v(p.identifier_code)}, "value": value}))
    return ids
