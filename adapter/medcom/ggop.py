"""Reader for G-GOP (Den Gode Genoptræningsplan, GGOP100).

Elements are matched on local name within the two G-GOP namespaces: which of the
two an element is in varies from place to place and between senders, and the
schema check reports the exact namespace deviations as warnings.
"""

from __future__ import annotations

from adapter.medcom.letter_parts import (
    read_envelope,
    read_letter,
    read_party,
    read_patient,
    read_person,
    read_relative,
    where,
)
from adapter.medcom.model import (
    NS_M100,
    NS_M104,
    Coded,
    DateTimeVal,
    Diagnosis,
    Envelope,
    GgopMessage,
    IcfClassification,
    JournalExcerpt,
    Letter,
    Reference,
    Where,
)
from adapter.medcom.nodes import Node

NAMESPACES = frozenset({NS_M100, NS_M104})

# Formatted-text sections of the plan: (GgopMessage attribute, element name).
FORMATTED_SECTIONS = (
    ("information_for_patient", "InformationForPatientAndRelatives"),
    ("practical_information", "PracticalInformation"),
    ("patient_safety", "PatientSafetyAspects"),
    ("rehabilitation_deadline", "RehabilitationDeadline"),
    ("health_summary", "PatientHealthSummary"),
    ("ability_summary", "AbilityAtDischargeSummary"),
    ("ability_extended", "AbilityAtDischargeExtended"),
    ("need_and_potential", "RehabilitationNeedAndPotential"),
)


_CODED = frozenset({"Code", "TypeCode", "Text"})


def _coded(node: Node | None, cls=Coded, **extra):
    if node is None:
        return None
    t = node.texts(_CODED)
    return cls(where=where(node), code=t.get("Code"), type_code=t.get("TypeCode"), text=t.get("Text"), **extra)


def _datetime(node: Node | None, text_node: Node | None = None) -> DateTimeVal | None:
    base = node if node is not None else text_node
    if base is None:
        return None
    return DateTimeVal(
        where=where(base),
        date=node.text("Date") if node is not None else None,
        time=node.text("Time") if node is not None else None,
        text=text_node.text() if text_node is not None else None,
    )


def read_ggop(root: Node) -> GgopMessage:
    root = Node(root.el, root.xpath, NAMESPACES)
    env_node = root.child("Envelope")
    plan = root.child("RehabilitationPlan")
    assert plan is not None  # detection guarantees it
    envelope = read_envelope(env_node) if env_node is not None else Envelope(Where(root.line, root.xpath + "/Envelope"))
    letter_node = plan.child("Letter")
    letter = read_letter(letter_node) if letter_node is not None else Letter(Where(plan.line, plan.xpath + "/Letter"))

    sender_node = plan.child("Sender")
    receiver_node = plan.child("Receiver")
    msg = GgopMessage(
        envelope=envelope,
        letter=letter,
        sender=read_party(sender_node, "sender") if sender_node is not None else None,
        receiver=read_party(receiver_node, "receiver") if receiver_node is not None else None,
    )
    if sender_node is not None:
        s = sender_node.child("SignedBy")
        c = sender_node.child("CoWriter")
        msg.signed_by = read_person(s, "signer") if s is not None else None
        msg.co_writer = read_person(c, "co-writer") if c is not None else None

    gp = plan.child("GPCCReceiver")
    if gp is not None:
        cc = gp.child("CCReceiver")
        if cc is not None:
            msg.gp = read_party(cc, "gp")
        deselected = gp.child("Deselected")
        if deselected is not None:
            msg.gp_deselected = where(deselected)
    msg.cc_receivers = [read_party(n, f"cc{i}") for i, n in enumerate(plan.children("CCReceiver"), 1)]

    p = plan.child("Patient")
    msg.patient = read_patient(p) if p is not None else None
    rel = plan.child("Relatives")
    if rel is not None:
        msg.relatives = [read_relative(n) for n in rel.children("Relative")]

    msg.plan_type = plan.text("TypeOfRehabilitationPlan")
    msg.consent = plan.text("ConsentInformed")
    for attr, element in FORMATTED_SECTIONS:
        setattr(msg, attr, plan.formatted(element))

    contact = plan.child("CurrentHospitalContact")
    if contact is not None:
        msg.contact_start = _datetime(contact.child("Start"))
        msg.contact_end = _datetime(contact.child("ExpectedEnd"), contact.child("ExpectedEndText"))
    control = plan.child("HospitalAmbulatoryControl")
    if control is not None:
        msg.ambulatory_start = _datetime(control.child("ExpectedStart"), control.child("ExpectedStartText"))
        loc = control.child("Location")
        msg.ambulatory_location = read_party(loc, "ambulatory-location") if loc is not None else None

    diags = plan.child("ICD10Diagnoses")
    if diags is not None:
        for d in diags.children("ICD10Diagnose"):
            for prim in d.children("PrimaryDiagnosis"):
                msg.diagnoses.append(_coded(prim, Diagnosis, primary=True))
            for sec in d.children("SecondaryDiagnosis"):
                msg.diagnoses.append(_coded(sec, Diagnosis, primary=False))
        msg.diagnosis_text = diags.formatted("Text")

    icf = plan.child("ICFClassifications")
    if icf is not None:
        for c in icf.children("ICFClassification"):
            msg.icf.append(IcfClassification(where=where(c), code=_coded(c.child("ICFCode")),
                                             gradient=_coded(c.child("ICFGradient"))))

    for j in plan.children("JournalExcerpt"):
        signer = j.child("Signer")
        signed_by = signer.child("SignedBy") if signer is not None else None
        msg.journal_excerpts.append(JournalExcerpt(
            where=where(j),
            type_of_excerpt=j.text("TypeOfExcerpt"),
            signer=read_person(signed_by, "journal-signer") if signed_by is not None else None,
            date=signer.text("Date") if signer is not None else None,
            comment=j.formatted("Comment"),
        ))

    cc_node = plan.child("ContactCounty")
    msg.contact_county = read_party(cc_node, "contact-region") if cc_node is not None else None
    cm_node = plan.child("ContactMunicipality")
    msg.contact_municipality = read_party(cm_node, "contact-municipality") if cm_node is not None else None
    team = plan.child("HealthCareTeam")
    if team is not None:
        msg.team = [read_person(m, f"team{i}") for i, m in enumerate(team.children("Member"), 1)]
    final = plan.child("FinalResult")
    if final is not None:
        msg.result_receivers = [read_party(r, f"result-receiver{i}")
                                for i, r in enumerate(final.children("ResultReceiver"), 1)]
    for r in plan.children("Reference"):
        msg.references.append(Reference(where=where(r), description=r.text("RefDescription"), url=r.text("URL")))
    return msg
