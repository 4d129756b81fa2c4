"""Organization for a MedCom party (sender, receiver, GP, copy receivers, contacts)."""

from __future__ import annotations

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import compact, party_address, party_identifiers, phone, v
from adapter.medcom.model import Party

DK_CORE_ORGANIZATION = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-organization"
# DK-core requires at least one SOR, KOMBIT-ORG or CVR identifier (invariant
# dk-core-organization-mandatory-identifier); MedCom letters mostly carry only a GLN
# and a department, practice or municipality number, so the profile is claimed only
# when the party is identified by SOR.
PROFILE_QUALIFYING_SYSTEMS = {"urn:oid:1.2.208.176.1.1"}


def organization_resource(p: Party, ctx: MapContext, role: str | None = None) -> dict:
    names = [v(p.organisation_name), v(p.department_name), v(p.unit_name)]
    name = next((n for n in names if n), None)
    alias = [n for n in names if n and n != name]
    identifiers = party_identifiers(p, ctx)
    address = party_address(p)
    return compact({  # identifiers, telecom and address are built without empty values
        "resourceType": "Organization",
        "id": ctx.id(role or p.role),
        "meta": {"profile": [DK_CORE_ORGANIZATION]}
        if any(i.get("system") in PROFILE_QUALIFYING_SYSTEMS for i in identifiers) else None,
        "identifier": identifiers,
        "active": True,
        "name": name,
        "alias": alias,
        "telecom": phone(p.telephone),
        "address": [address] if address else None,
    })
