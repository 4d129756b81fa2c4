"""Patient from the MedCom Patient element (and relatives as contacts)."""

from __future__ import annotations

import re

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import (
    CPR_SYSTEM,
    GLN_SYSTEM,
    XECPR_SYSTEM,
    YDERNUMMER_SYSTEM,
    address,
    compact,
    email,
    human_name,
    party_identifiers,
    prune,
    required,
    telecom,
    v,
)
from adapter.medcom.identifiers import cpr_birth_date, cpr_sex
from adapter.medcom.model import Party, Patient, Relative

DK_CORE_PATIENT = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-patient"


# DK-core's formats for national replacement CPR numbers (eCPR): DDMMYY, a digit
# (1/7 for X-eCPR, 0/5/6 for D-eCPR), two capital letters and a digit.
X_ECPR = re.compile(r"^[0-3][0-9][01][0-9][0-9]{2}[17][A-Z]{2}[0-9]$")


def patient_identifier(p: Patient, ctx: MapContext) -> dict:
    if p.cpr is not None:
        return {"system": CPR_SYSTEM, "value": p.cpr.value}
    alt = required(p.alternative_identifier, "patient identifier").value  # no CPR number: GGOP-E303 otherwise
    if X_ECPR.match(alt):
        return {"system": XECPR_SYSTEM, "value": alt}
    return {"type": {"text": ctx.text("alternative-identifier")}, "value": alt}


def contact_from_relative(r: Relative, ctx: MapContext) -> dict:
    rel = ctx.tables.translate("relation-code", v(r.relation_code))
    relationship = prune({
        "coding": [{"system": rel.system, "code": rel.code, "display": rel.display}] if rel else None,
        "text": v(r.relation_code),
    })
    return compact({
        "relationship": [relationship] if relationship else None,
        "name": human_name(r.given_name, r.surname, use=None),
        "telecom": telecom(r.telephones, ctx) + email(r.email),
        "address": address(r.address),
    })


def gp_reference(gp: Party | None, ctx: MapContext) -> dict | None:
    """A logical reference to the GP by ydernummer (or GLN).

    DK-core only admits an Organization with a SOR identifier as generalPractitioner,
    and G-GOP names the practice by ydernummer and GLN; the GP's Organization is in
    the Bundle all the same."""
    if gp is None:
        return None
    for ident in party_identifiers(gp, ctx):
        if ident.get("system") in (YDERNUMMER_SYSTEM, GLN_SYSTEM):
            return prune({"identifier": ident, "display": v(gp.organisation_name)})
    return None


def patient_resource(p: Patient, relatives: list[Relative], ctx: MapContext,
                     gp: Party | None = None, deceased: bool | None = None) -> dict:
    cpr = v(p.cpr)
    birth = cpr_birth_date(cpr) if cpr else None
    name = human_name(p.given_name, p.surname)
    gp_ref = gp_reference(gp, ctx)
    addresses = [address(p.address)]
    if p.co_address is not None:
        prefix = f"{ctx.text('co-address')} {p.co_address_name.value}" if p.co_address_name else None
        co = address(p.co_address, line_prefix=prefix)
        if co is not None:
            co["use"] = "temp"
            addresses.append(co)
    return compact({  # the nested parts are built without empty values
        "resourceType": "Patient",
        "id": ctx.id("patient"),
        "meta": {"profile": [DK_CORE_PATIENT]},
        "identifier": [patient_identifier(p, ctx)],
        "name": [name] if name else None,
        "telecom": telecom(p.telephones, ctx) + email(p.email),
        "gender": cpr_sex(cpr) if cpr else None,
        "birthDate": birth.isoformat() if birth else None,
        "deceasedBoolean": deceased,
        "address": [a for a in addresses if a],
        # a relative with nothing to map is left out
        "contact": [c for c in (contact_from_relative(r, ctx) for r in relatives) if c],
        "generalPractitioner": [gp_ref] if gp_ref else None,
    })
