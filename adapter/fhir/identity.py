"""Who a resource is: one Patient per citizen, one Organization per organisation, one
Practitioner per health professional, whichever message or sender names them.

The identity is a business identifier read from the resource itself:

* Patient: the CPR number; without one, MedCom's alternative identifier (an X-eCPR, or a
  local one), never mixed with a CPR number since the system is part of the identity;
* Organization: the municipality code, region code, GLN, SOR code, ydernummer or SHAK
  number, first of these it has (a municipality is one Organization whatever department
  writes);
* Practitioner: an authorisation id (``https://autregweb.sst.dk``) when there is one,
  otherwise the name within the identity of the organisation the person works for;
* PractitionerRole: the practitioner within the organisation.

The resource id is ``HMAC-SHA256(key, type | identity)`` shaped as a UUID: the same for the
same identifier across messages, senders and restarts, and, with the key a deployment secret,
no way back to the CPR number (a plain hash of a 10-digit number is reversed by trying all of
them). Resources without an identity keep the message-scoped id the mapping gave them.

Where one identifier names the resource, its transaction entry is a conditional update
(``PUT Patient?identifier=urn:oid:1.2.208.176.1.2|…``) without an id, so a receiving server
that knows the citizen under its own id updates that one; references inside the Bundle
point to the entry's ``urn:uuid`` fullUrl, which the server resolves.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import orjson

from adapter.fhir.context import uuid_text
from adapter.fhir.systems import (
    AUTHORISATION_SYSTEM,
    CPR_SYSTEM,
    GLN_SYSTEM,
    MUNICIPALITY_SYSTEM,
    REGION_KEY_SYSTEM,
    REGION_SYSTEM,
    SHAK_SYSTEM,
    SOR_SYSTEM,
    XECPR_SYSTEM,
    YDERNUMMER_SYSTEM,
)

PATIENT_SYSTEMS = (CPR_SYSTEM, XECPR_SYSTEM)
ORGANIZATION_SYSTEMS = (MUNICIPALITY_SYSTEM, REGION_SYSTEM, GLN_SYSTEM, SOR_SYSTEM, YDERNUMMER_SYSTEM, SHAK_SYSTEM,
                        REGION_KEY_SYSTEM)

# The types one resource stands for across messages (and, in the store, across municipalities).
SHARED_TYPES = ("Patient", "Organization", "Practitioner", "PractitionerRole")


@dataclass(frozen=True)
class Identity:
    """What a resource's id is derived from; ``system``/``value`` when one identifier names it."""

    rtype: str
    key: str
    system: str | None = None
    value: str | None = None

    def resource_id(self, secret: bytes) -> str:
        if self.rtype == "Patient":  # a citizen's number is not kept beyond the message
            return _hmac_id(secret, self.rtype, self.key)
        return _keyed_id(secret, self.rtype, self.key)

    @property
    def conditional_url(self) -> str | None:
        """``Type?identifier=system|value`` for a conditional update, when one identifier names it."""
        if self.system is None or self.value is None:
            return None
        return f"{self.rtype}?identifier={quote(self.system + '|' + self.value, safe=':/|')}"


def _hmac_id(secret: bytes, rtype: str, key: str) -> str:
    return uuid_text(hmac.digest(secret, f"{rtype}|{key}".encode(), "sha256"), 4)


# the organisations and professionals of a stream recur message after message
_keyed_id = lru_cache(maxsize=16_384)(_hmac_id)


def _first(identifiers: Iterable[dict], systems: tuple[str, ...]) -> tuple[str, str] | None:
    by_system = {}
    for ident in identifiers:
        system, value = ident.get("system"), ident.get("value")
        if isinstance(system, str) and isinstance(value, str) and value and system not in by_system:
            by_system[system] = value
    for system in systems:
        if system in by_system:
            return system, by_system[system]
    return None


def _named(rtype: str, found: tuple[str, str] | None) -> Identity | None:
    if found is None:
        return None
    system, value = found
    return Identity(rtype, f"{system}|{value}", system, value)


def patient_identity(patient: dict) -> Identity | None:
    identifiers = patient.get("identifier") or []
    named = _named("Patient", _first(identifiers, PATIENT_SYSTEMS))
    if named is not None:
        return named
    local = next((i.get("value") for i in identifiers if not i.get("system") and i.get("value")), None)
    # a local alternative identifier has no system: it names the resource, but a receiver
    # cannot be asked for it by identifier
    return Identity("Patient", f"alternative|{local}") if local else None


def organization_identity(organization: dict) -> Identity | None:
    return _named("Organization", _first(organization.get("identifier") or [], ORGANIZATION_SYSTEMS))


def _name_key(resource: dict) -> str | None:
    parts = []
    for name in resource.get("name") or []:
        words = [*(name.get("given") or []), name.get("family") or "", name.get("text") or ""]
        parts.append(" ".join(" ".join(words).split()).casefold())
    key = "|".join(p for p in parts if p)
    return key or None


def practitioner_identity(practitioner: dict, organization: Identity | None) -> Identity | None:
    named = _named("Practitioner", _first(practitioner.get("identifier") or [], (AUTHORISATION_SYSTEM,)))
    if named is not None:
        return named
    name = _name_key(practitioner)
    if organization is None or name is None:
        return None
    return Identity("Practitioner", f"organization:{organization.key}|name:{name}")


def role_identity(practitioner: Identity | None, organization: Identity | None) -> Identity | None:
    if practitioner is None:
        return None
    where = f"|organization:{organization.key}" if organization is not None else ""
    return Identity("PractitionerRole", f"practitioner:{practitioner.key}{where}")


def identities(resources: list[dict], target: Callable[[Any], str | None]) -> dict[str, Identity]:
    """The identity of every resource that has one, by its current id.

    ``target`` turns a reference (``{"reference": ...}``) into the id it points to within
    ``resources`` (``urn:uuid:<id>`` in a Bundle, ``Type/<id>`` in the store)."""
    by_id = {r["id"]: r for r in resources}
    out: dict[str, Identity] = {}
    for r in resources:
        found = None
        if r["resourceType"] == "Patient":
            found = patient_identity(r)
        elif r["resourceType"] == "Organization":
            found = organization_identity(r)
        if found is not None:
            out[r["id"]] = found
    roles = [r for r in resources if r["resourceType"] == "PractitionerRole"]
    for role in roles:
        practitioner_id, organization_id = target(role.get("practitioner")), target(role.get("organization"))
        organization = out.get(organization_id) if organization_id else None
        practitioner = by_id.get(practitioner_id) if practitioner_id else None
        if practitioner is None or practitioner.get("resourceType") != "Practitioner":
            continue
        if practitioner_id is not None and practitioner_id not in out:
            found = practitioner_identity(practitioner, organization)
            if found is not None:
                out[practitioner_id] = found
        found = role_identity(out.get(practitioner_id) if practitioner_id else None, organization)
        if found is not None:
            out[role["id"]] = found
    return out


def _bundle_target(ref: Any) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"].startswith("urn:uuid:"):
        return ref["reference"][len("urn:uuid:"):]
    return None


def _dedup_targets(resource: dict) -> dict:
    """A Provenance naming one resource twice (two roles that are one Organization) names it once."""
    if resource["resourceType"] != "Provenance":
        return resource
    seen: set[str] = set()
    targets = []
    for t in resource.get("target", []):
        if t.get("reference") not in seen:
            seen.add(t.get("reference"))
            targets.append(t)
    return {**resource, "target": targets}


def _rewritten(resources: list[dict], new_ids: dict[str, str]) -> list[dict]:
    """``resources`` with each old id replaced where it stands as a whole JSON string: the
    resource's id and every urn:uuid reference, in one pass over the serialised resources."""
    data = orjson.dumps(resources)
    for old, new in new_ids.items():
        if old == new:
            continue
        data = data.replace(b'"' + old.encode() + b'"', b'"' + new.encode() + b'"')
        data = data.replace(b'"urn:uuid:' + old.encode() + b'"', b'"urn:uuid:' + new.encode() + b'"')
    return orjson.loads(data)


def assign_identities(resources: list[dict], secret: bytes) -> tuple[dict[str, str], dict[str, Identity]]:
    """Give the resources with an identity their keyed ids now (in place, with the references
    among them), as :func:`identify` would; returns the new ids by old id, and the identities
    by new id.

    ``resources`` must hold every Patient, Organization, Practitioner and PractitionerRole the
    mapping will make; a mapping that calls this before it makes the rest (and renames the
    roles in its :class:`~adapter.fhir.context.MapContext`) refers to the keyed ids from the
    start, and :func:`identify`, given those identities, has nothing left to compute."""
    found = identities(resources, _bundle_target)
    new_ids = {rid: ident.resource_id(secret) for rid, ident in found.items()}
    renamed = {f"urn:uuid:{old}": f"urn:uuid:{new}" for old, new in new_ids.items() if old != new}
    if renamed:  # the resources the mapping has just made, changed where they are
        for r in resources:
            r["id"] = new_ids.get(r["id"], r["id"])
            _rename_references(r, renamed)
    return new_ids, {new_ids[old]: ident for old, ident in found.items()}


def _rename_references(resource: dict, renamed: dict[str, str]) -> None:
    """The references of a shared resource (its own elements, or lists of them: a
    PractitionerRole's practitioner and organization) to a renamed resource, in place."""
    for value in resource.values():
        if type(value) is dict:
            ref = value.get("reference")
            if ref in renamed:
                value["reference"] = renamed[ref]
        elif type(value) is list:
            for item in value:
                if type(item) is dict and item.get("reference") in renamed:
                    item["reference"] = renamed[item["reference"]]


def identify(resources: list[dict], secret: bytes,
             assigned: dict[str, Identity] | None = None) -> tuple[list[dict], dict[str, Identity]]:
    """The mapped resources with keyed ids for those with an identity, and those identities by
    new id. References (``urn:uuid:<id>``) follow; two entries that turn out to be one
    resource (the sender is also a copy receiver) keep the first. ``assigned``: the identities
    :func:`assign_identities` found for these resources (their ids are already the keyed ones)."""
    if assigned is not None:
        found, new_ids = assigned, {rid: rid for rid in assigned}
    else:
        found = identities(resources, _bundle_target)
        new_ids = {rid: ident.resource_id(secret) for rid, ident in found.items()}
        if any(old != new for old, new in new_ids.items()):
            resources = _rewritten(resources, new_ids)
    out, seen = [], set()
    for r in resources:
        if (r["resourceType"], r["id"]) in seen:
            continue
        seen.add((r["resourceType"], r["id"]))
        out.append(_dedup_targets(r))
    return out, {new_ids[old]: ident for old, ident in found.items()}
