"""Condition per G-GOP diagnosis (primary and secondary SKS codes, or free text)."""

from __future__ import annotations

from adapter.fhir.context import MapContext
from adapter.fhir.datatypes import coding, compact, v
from adapter.medcom.model import Diagnosis
from adapter.medcom.nodes import Val

DK_CORE_CONDITION = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-condition"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def condition_role(index: int, d: Diagnosis) -> str:
    return f"condition:{'primary' if d.primary else 'secondary'}:{index}"


def condition_resource(d: Diagnosis, index: int, ctx: MapContext) -> dict:
    target = ctx.tables.translate("diagnosis-type-to-system", v(d.type_code) or "icd10kode", casefold=True)
    codings = None
    if d.code is not None and target is not None:
        codings = [coding(target.code, d.code.value, v(d.text))]
    return _condition(ctx.id(condition_role(index, d)), codings, v(d.text), ctx)


def free_text_condition(text: Val, ctx: MapContext) -> dict:
    return _condition(ctx.id("condition:text"), None, text.value, ctx)


def _condition(rid: str, codings, text, ctx: MapContext) -> dict:
    return compact({
        "resourceType": "Condition",
        "id": rid,
        "meta": {"profile": [DK_CORE_CONDITION]},
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "category": [{"coding": [{"system": CATEGORY, "code": "encounter-diagnosis"}]}],
        "code": compact({"coding": codings, "text": text}),
        "subject": ctx.ref("patient"),
    })
