"""Practitioner + PractitionerRole for a named health professional."""

from __future__ import annotations

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import compact, human_name, phone, prune, v
from adapter.medcom.model import Person

DK_CORE_PRACTITIONER = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-practitioner"


def practitioner_resources(person: Person, ctx: MapContext, organization_role: str) -> list[dict]:
    role = person.role
    identifier = None
    if person.identifier is not None:
        identifier = [prune({"type": {"text": v(person.identifier_code)}, "value": person.identifier.value})]
    name = human_name(person.given_name, person.surname, use=None)
    practitioner = compact({
        "resourceType": "Practitioner",
        "id": ctx.id(f"practitioner:{role}"),
        "meta": {"profile": [DK_CORE_PRACTITIONER]},
        "identifier": identifier,
        "name": [name] if name else None,
        "telecom": phone(person.telephone),
    })
    practitioner_role = compact({
        "resourceType": "PractitionerRole",
        "id": ctx.id(f"practitionerrole:{role}"),
        "practitioner": ctx.ref(f"practitioner:{role}"),
        "organization": ctx.ref(organization_role),
        "code": [{"text": v(person.title)}] if person.title else None,
        "specialty": [{"text": v(person.department_name)}] if person.department_name else None,
        "telecom": phone(person.telephone),
    })
    return [practitioner, practitioner_role]
