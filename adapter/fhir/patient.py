"""Patient from the MedCom Patient element (and relatives as contacts)."""

from __future__ import annotations

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import (
    CPR_SYSTEM, DECPR_SYSTEM, XECPR_SYSTEM, address, email, human_name, prune, telecom, v,
)
from adapter.medcom.identifiers import cpr_birth_date, cpr_sex
from adapter.medcom.model import Patient, Relative

DK_CORE_PATIENT = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-patient"


def patient_identifier(p: Patient, ctx: MapContext) -> dict:
    if p.cpr is not None:
        return {"system": CPR_SYSTEM, "value": p.cpr.value}
    alt = p.alternative_identifier.value
    system = XECPR_SYSTEM if len(alt) > 6 and alt[6] in "17" else DECPR_SYSTEM
    return {"type": {"text": ctx.text("alternative-identifier")}, "system": system, "value": alt}


def contact_from_relative(r: Relative, ctx: MapContext) -> dict:
    rel = ctx.tables.translate("relation-code", v(r.relation_code))
    relationship = prune({
        "coding": [{"system": rel.system, "code": rel.code, "display": rel.display}] if rel else None,
        "text": v(r.relation_code),
    })
    return prune({
        "relationship": [relationship] if relationship else None,
        "name": human_name(r.given_name, r.surname, use=None),
        "telecom": telecom(r.telephones, ctx) + email(r.email),
        "address": address(r.address),
    })


def patient_resource(p: Patient, relatives: list[Relative], ctx: MapContext,
                     gp_role: str | None = None, deceased: bool | None = None) -> dict:
    cpr = v(p.cpr)
    birth = cpr_birth_date(cpr) if cpr else None
    addresses = [address(p.address)]
    if p.co_address is not None:
        prefix = f"{ctx.text('co-address')} {p.co_address_name.value}" if p.co_address_name else None
        co = address(p.co_address, line_prefix=prefix)
        if co is not None:
            co["use"] = "temp"
            addresses.append(co)
    return prune({
        "resourceType": "Patient",
        "id": ctx.id("patient"),
        "meta": {"profile": [DK_CORE_PATIENT]},
        "identifier": [patient_identifier(p, ctx)],
        "name": [human_name(p.given_name, p.surname)],
        "telecom": telecom(p.telephones, ctx) + email(p.email),
        "gender": cpr_sex(cpr) if cpr else None,
        "birthDate": birth.isoformat() if birth else None,
        "deceasedBoolean": deceased,
        "address": addresses,
        "contact": [contact_from_relative(r, ctx) for r in relatives],
        "generalPractitioner": [ctx.ref(gp_role)] if gp_role else None,
    })
