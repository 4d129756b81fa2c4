"""Synthetic XDIS91 correspondence letters (ClinicalEmail, VersionCode XD9134L) from a
hospital department to a municipality, in MedCom's 2006/07/01 namespace.

The element order follows MedCom's ClinicalEmail.xsd (2006/07/01); every letter validates
against that schema set's EMessage.xsd. About a fifth of the letters concern a child with a
permanent disability and carry the fixed heading from the regional children's pathway. That
heading is longer than ``Subject`` allows (70 characters), so it is written in full as the
first line of ``Text01`` and in a shortened form as ``Subject``.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # no hints in lxml; lxml-stubs mistypes it

from . import catalog
from .catalog import Department
from .common import (
    Context,
    GeneratedMessage,
    age_on,
    birth_date_for_age,
    check_len,
    danish_date,
    fill_formatted,
    hhmm,
    iso_minutes,
    make_address,
    make_person,
    opt,
    org_phone,
    pick_day,
    serialise,
    staff_person,
    sub,
)
from .ids import org_gln

NS = "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2006/07/01/"
SUBJECT_MAX = 70


def generate(rng: random.Random, ctx: Context, number: int, *,
             children_heading: bool | None = None) -> GeneratedMessage:
    """One XDIS91 letter. ``children_heading`` forces (True) or forbids (False) the fixed
    children's heading; None leaves it to chance (about 20 %)."""
    if children_heading is None:
        children_heading = rng.random() < 0.2
    return _LetterBuilder(rng, ctx, number, children_heading).build()


def _pick_department(rng: random.Random, groups: tuple[str, ...], region: str) -> Department:
    cands = [d for d in catalog.DEPARTMENTS if set(groups) & set(d.groups)]
    local = [d for d in cands if d.region == region]
    if local and rng.random() < 0.9:
        cands = local
    return rng.choice(cands)


class _LetterBuilder:
    def __init__(self, rng: random.Random, ctx: Context, number: int, children: bool) -> None:
        self.rng = rng
        self.ctx = ctx
        self.number = number
        self.children = children

    def build(self) -> GeneratedMessage:
        rng, ctx = self.rng, self.ctx
        muni = rng.choice(ctx.municipalities)
        day = pick_day(rng, ctx, special_share=0.05)
        hour = rng.choices((rng.randint(8, 15), rng.randint(16, 22)), (85, 15))[0]
        sent = datetime.combine(day, time(hour, rng.randrange(60)))
        authorised = sent - timedelta(minutes=rng.randint(1, 90))

        discharge: date | None = None
        diagnoses: list[str] = []
        if self.children:
            dept = _pick_department(rng, ("child_disability",), muni.region_code)
            age = rng.randint(1, 17)
            dx_code, dx_text = rng.choice(catalog.CHILD_DISABILITY_DIAGNOSES)
            diagnoses = [dx_code]
            status = rng.choice(("ambulant", "ambulant", "inaktiv"))
            subject = catalog.CHILD_HEADING_SUBJECT
            heading = catalog.CHILD_HEADING
        else:
            dx = rng.choices(catalog.PRIMARY_DIAGNOSES,
                             [d.weight for d in catalog.PRIMARY_DIAGNOSES])[0]
            dept = _pick_department(rng, (dx.group,), muni.region_code)
            age = rng.randint(max(18, dx.age[0]), dx.age[1])
            subject, body_lines, status = rng.choice(catalog.ADULT_LETTER_SUBJECTS)
            heading = subject
            if rng.random() < 0.5:
                diagnoses = [dx.code]
        check_len(subject, SUBJECT_MAX, "Subject")

        male = rng.random() < 0.5
        birth = birth_date_for_age(rng, day, age)
        patient = make_person(rng, birth, male)
        address = make_address(rng, muni)
        side = rng.choice(catalog.SIDES)
        aid = rng.choice(catalog.AIDS[:4])

        # the text
        signer = staff_person(rng)
        title = rng.choice(("Overlæge", "Afdelingslæge", "Fysioterapeut", "Ergoterapeut",
                            "Sygeplejerske"))
        lines: list[str] = []
        reply_by: date | None = None
        if self.children:
            pronoun = "Han" if male else "Hun"
            visit = day - timedelta(days=rng.randint(0, 14))
            slots = {
                "name": patient.given.split()[0], "birth": birth.strftime("%d.%m.%Y"),
                "visit": danish_date(visit, "dotted"), "dx_text": dx_text, "dx_code": dx_code,
                "pronoun": pronoun, "grade": str(max(0, min(10, age - 6))),
            }
            lines = [t.format(**slots) for t in catalog.CHILD_LETTER_BODY]
            if rng.random() < 0.6:
                lines.insert(3, rng.choice(catalog.CHILD_LETTER_EXTRA).format(**slots))
            if rng.random() < 0.6:
                reply_by = day + timedelta(days=rng.randint(10, 28))
                lines.append(catalog.REPLY_REQUESTS[0].format(date=danish_date(reply_by),
                                                              whom="barnet"))
                lines.append(f"Svar sendes til {dept.department}, {dept.organisation}, "
                             f"lokationsnummer {org_gln('sygehus:' + dept.key)}.")
        else:
            if "{discharge_date}" in " ".join(body_lines):
                if status == "indlagt":
                    discharge = day + timedelta(days=rng.randint(1, 6))
                else:
                    discharge = day - timedelta(days=rng.randint(1, 30))
            slots = {
                "discharge_date": danish_date(discharge, "dotted") if discharge else "",
                "event_date": danish_date(day - timedelta(days=rng.randint(0, 3)), "dotted"),
                "side": side, "aid": aid,
            }
            lines = [t.format(**slots) for t in body_lines]
            if diagnoses:
                lines.insert(0, f"Diagnose: {dx.code} {dx.text}.")
            if rng.random() < 0.3:
                reply_by = day + timedelta(days=rng.randint(3, 14))
                template = rng.choice(catalog.REPLY_REQUESTS)
                lines.append(template.format(date=danish_date(reply_by), whom="patienten"))

        text: list = []
        if self.children:
            text += [heading, ("Break",), ("Break",)]
        for line in lines:
            text += [line, ("Break",)]
        text += [("Break",), "Med venlig hilsen", ("Break",), f"{title} {signer.full_name}",
                 ("Break",), f"{dept.department}, {dept.organisation}", ("Break",),
                 danish_date(sent.date(), "dotted"), ("Break",)]

        # the XML, in ClinicalEmail.xsd order
        root = etree.Element(f"{{{NS}}}Emessage", nsmap={None: NS})
        env = sub(root, NS, "Envelope")
        s = sub(env, NS, "Sent")
        sub(s, NS, "Date", sent.date().isoformat())
        sub(s, NS, "Time", hhmm(sent))
        envelope_id = ctx.ids.digits(rng)
        sub(env, NS, "Identifier", envelope_id)
        sub(env, NS, "AcknowledgementCode",
            "pluspositivkvitt" if rng.random() < 0.7 else "minuspositivkvitt")

        mail = sub(root, NS, "ClinicalEmail")
        letter = sub(mail, NS, "Letter")
        letter_id = ctx.ids.digits(rng)
        sub(letter, NS, "Identifier", letter_id)
        sub(letter, NS, "VersionCode", "XD9134L")
        sub(letter, NS, "StatisticalCode", "XDIS91")
        auth = sub(letter, NS, "Authorisation")
        sub(auth, NS, "Date", authorised.date().isoformat())
        sub(auth, NS, "Time", hhmm(authorised))
        sub(letter, NS, "TypeCode", "XDIS91")
        sub(letter, NS, "StatusCode", "nytbrev")
        if rng.random() < 0.3:
            sub(letter, NS, "EpisodeOfCareIdentifier", f"{rng.getrandbits(128):032x}")

        sender = sub(mail, NS, "Sender")
        sender_gln = org_gln(f"sygehus:{dept.key}")
        sub(sender, NS, "EANIdentifier", sender_gln)
        sub(sender, NS, "Identifier", dept.identifier)
        sub(sender, NS, "IdentifierCode", dept.id_kind)
        sub(sender, NS, "OrganisationName", check_len(dept.organisation, 35, "OrganisationName"))
        sub(sender, NS, "DepartmentName", check_len(dept.department, 35, "DepartmentName"))
        if dept.unit and rng.random() < 0.5:
            sub(sender, NS, "UnitName", dept.unit)
        if dept.street and rng.random() < 0.7:
            sub(sender, NS, "StreetName", dept.street)
        sub(sender, NS, "DistrictName", dept.district)
        sub(sender, NS, "PostCodeIdentifier", dept.postcode)
        if rng.random() < 0.7:
            sub(sender, NS, "TelephoneSubscriberIdentifier", org_phone(dept.key))
        if rng.random() < 0.7:
            sub(sender, NS, "MedicalSpecialityCode", dept.speciality)

        receiver = sub(mail, NS, "Receiver")
        receiver_gln = muni.gln
        sub(receiver, NS, "EANIdentifier", receiver_gln)
        receiver_identifier = muni.code.lstrip("0") if rng.random() < 0.6 else muni.code
        sub(receiver, NS, "Identifier", receiver_identifier)
        sub(receiver, NS, "IdentifierCode", "kommunenummer")
        sub(receiver, NS, "OrganisationName", check_len(muni.organisation_name, 35,
                                                        "OrganisationName"))
        if rng.random() < 0.6:
            sub(receiver, NS, "DepartmentName",
                "Børn og Familie" if self.children and rng.random() < 0.5
                else rng.choice(catalog.MUNICIPAL_DEPARTMENTS))

        pat = sub(mail, NS, "Patient")
        sub(pat, NS, "CivilRegistrationNumber", patient.cpr)
        sub(pat, NS, "PersonSurnameName", patient.surname)
        sub(pat, NS, "PersonGivenName", patient.given)
        sub(pat, NS, "StreetName", address.street)
        if address.suburb:
            sub(pat, NS, "SuburbName", address.suburb)
        sub(pat, NS, "DistrictName", address.district)
        opt(pat, NS, "PostCodeIdentifier", address.postcode)
        sub(pat, NS, "EpisodeOfCareStatusCode", status)

        info = sub(mail, NS, "AdditionalInformation")
        priority = None
        if rng.random() < 0.9:
            priority = "høj_prioritet" if rng.random() < 0.15 else "rutine"
            sub(info, NS, "Priority", priority)
        sub(info, NS, "Subject", subject)

        clinical = sub(mail, NS, "ClinicalInformation")
        text01 = sub(clinical, NS, "Text01")
        fill_formatted(text01, text, NS)

        if rng.random() < 0.08:
            ref = sub(mail, NS, "Reference")
            desc, url = rng.choice(catalog.REFERENCES)
            sub(ref, NS, "RefDescription", desc)
            sub(ref, NS, "URL", url)

        facts: dict[str, Any] = {
            "plan_type": None,
            "consent": None,
            "gp_deselected": None,
            "deadline_text": None,
            "child": age_on(birth, day) < 18,
            "age": age_on(birth, day),
            "cpr": patient.cpr,
            "birth_date": birth.isoformat(),
            "municipality_code": muni.code,
            "receiver_identifier": receiver_identifier,
            "region_code": muni.region_code,
            "diagnoses": diagnoses,
            # letters name the day only
            "discharge": discharge.isoformat() if discharge else None,
            "sent": iso_minutes(sent),
            "letter_id": letter_id,
            "envelope_id": envelope_id,
            "sender_gln": sender_gln,
            "sender_identifier": dept.identifier,
            "sender_identifier_code": dept.id_kind,
            "receiver_gln": receiver_gln,
            "heading": heading,
            "subject": subject,
            "children_heading": self.children,
            "priority": priority,
            "episode_status": status,
            "reply_requested": reply_by is not None,
            "reply_by": reply_by.isoformat() if reply_by else None,
            "invalid_glns": [],
        }
        return GeneratedMessage(filename=f"xdis91-{self.number:04d}.xml", kind="xdis91",
                                xml=serialise(root), facts=facts)
