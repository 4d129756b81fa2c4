"""Synthetic G-GOP (Den Gode Genoptræningsplan, GGOP100) rehabilitation plans.

The element order and the namespace of every element follow MedCom's own example message:
the root ``Emessage`` has ``urn:oio:medcom:municipality:1.0.4`` as its default namespace and
declares the prefix ``mm100`` for ``urn:oio:medcom:municipality:1.0.0``; ``Envelope``
redeclares the 1.0.0 namespace as its default; ``AbilityAtDischargeExtended`` is written as
``mm104:AbilityAtDischargeExtended`` with 1.0.0 as the default namespace of its content.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # no hints in lxml; lxml-stubs mistypes it

from . import catalog
from .catalog import Department, Diagnosis
from .common import (
    Address,
    Context,
    GeneratedMessage,
    Municipality,
    Person,
    age_on,
    birth_date_for_age,
    check_len,
    clamp_time,
    danish_date,
    email_for,
    fill_formatted,
    given_name,
    hhmm,
    iso_minutes,
    lines_to_formatted,
    make_address,
    make_person,
    opt,
    org_phone,
    phone,
    pick_day,
    pick_discharge_time,
    serialise,
    staff_person,
    sub,
    surname,
)
from .ids import corrupt_gln, gln_is_valid, make_gln, org_gln

M104 = "urn:oio:medcom:municipality:1.0.4"
M100 = "urn:oio:medcom:municipality:1.0.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

A = M104  # plan-specific elements
B = M100  # envelope and shared leaves

PLAN_TYPES = ("almen", "specialiseret", "rehabilitering")
STATISTICAL_CODES = {"almen": "GGOP1", "specialiseret": "GGOP2", "rehabilitering": "GGOP3"}
BAD_GLN_SHARE = 0.05


# ---------------------------------------------------------------------------------------------
# Deadlines
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    text: str | None  # None: RehabilitationDeadline is left out
    kind: str  # sooner | later | standard | none | vague | absent
    days: int | None  # days after discharge the text points at
    bound: str | None  # latest | earliest | approx


def _weekdays_ahead(start: date, n: int) -> int:
    """Calendar days until the n-th Monday-Friday after ``start``."""
    d, count = start, 0
    while count < n:
        d += timedelta(days=1)
        if d.weekday() < 5:
            count += 1
    return (d - start).days


def make_deadline(rng: random.Random, discharge: date, *, child: bool = False,
                  kind: str | None = None) -> Deadline:
    """A Danish start deadline (``RehabilitationDeadline``) relative to ``discharge``."""
    if kind is None:
        kind = rng.choices(("sooner", "later", "standard", "none", "vague", "absent"),
                           (30, 27, 8, 12, 9, 14))[0]
    if kind == "absent":
        return Deadline(None, kind, None, None)
    if kind == "sooner":
        form = rng.randrange(6)
        if form == 0:
            n = rng.randint(1, 5)
            return Deadline(f"Genoptræning bør starte inden for {n} dage efter udskrivelse",
                            kind, n, "latest")
        if form == 1:
            n = rng.randint(2, 6)
            return Deadline(f"Opstart senest {n} dage efter udskrivelse", kind, n, "latest")
        if form == 2:
            return Deadline("Genoptræning skal påbegyndes inden for 48 timer", kind, 2, "latest")
        if form == 3:
            return Deadline("Opstart uden ventetid – gerne dagen efter udskrivelse", kind, 1,
                            "latest")
        if form == 4:
            n = rng.randint(2, 5)
            d = discharge + timedelta(days=n)
            return Deadline(f"Genoptræning bør starte senest {catalog.WEEKDAYS[d.weekday()]} "
                            f"den {danish_date(d)}", kind, n, "latest")
        n = rng.randint(2, 4)
        return Deadline(f"Hurtig opstart, senest {n} hverdage efter udskrivelse", kind,
                        _weekdays_ahead(discharge, n), "latest")
    if kind == "later":
        form = rng.randrange(7) if not child else rng.choice((3, 4, 5))
        if form == 0:
            n = rng.choice((10, 14, 14, 21, 28))
            return Deadline(f"senest {n} dage efter udskrivelse", kind, n, "latest")
        if form == 1:
            n = rng.randint(2, 6)
            return Deadline(f"tidligst om {n} uger", kind, 7 * n, "earliest")
        if form == 2:
            n = rng.randint(3, 8)
            return Deadline(f"Genoptræning må tidligst påbegyndes {n} uger efter operationen",
                            kind, 7 * n, "earliest")
        if form == 3:
            n = rng.randint(10, 60)
            d = discharge + timedelta(days=n)
            return Deadline(f"Opstart efter {danish_date(d)}", kind, n, "earliest")
        if form == 4:
            a, b = rng.choice(((2, 4), (3, 6), (4, 6), (2, 3)))
            return Deadline(f"ca. {a}-{b} uger", kind, 7 * a, "approx")
        if form == 5:
            a, b = rng.choice(((2, 4), (3, 5), (4, 8)))
            return Deadline(f"Opstart kan passende ske efter ca. {a} til {b} uger", kind, 7 * a,
                            "approx")
        n = rng.randint(2, 6)
        return Deadline(f"Afventer ambulant kontrol om {n} uger; genoptræning starter derefter",
                        kind, 7 * n, "earliest")
    if kind == "standard":
        text = rng.choice(("Inden for 7 dage efter udskrivelse", "Almindelig frist på 7 dage"))
        return Deadline(text, kind, 7, "latest")
    if kind == "none":
        return Deadline(rng.choice(("Ingen særlig tidsfrist", "Ingen", "Ingen tidsfrist")), kind,
                        None, None)
    return Deadline(rng.choice(("Snarest muligt", "Efter aftale med patienten",
                                "Når såret er helet", "Se praktiske oplysninger",
                                "Hurtig opstart ønskes")), "vague", None, None)


# ---------------------------------------------------------------------------------------------
# Sampling helpers
# ---------------------------------------------------------------------------------------------


def _fmt(template: str, slots: dict[str, str]) -> str:
    """Fill a catalogue template's {side}, {aid}, ... slots."""
    return template.format(**slots)


def _pick_plan_type(rng: random.Random) -> str:
    """A plan type in the national proportions (``catalog.PLAN_TYPE_VOLUMES_2023``)."""
    return rng.choices(PLAN_TYPES, [catalog.PLAN_TYPE_VOLUMES_2023[t] for t in PLAN_TYPES])[0]


def almen_category_weights(child: bool) -> dict[str, float]:
    """Probabilities of the diagnosis categories for an almen plan, so that over all almen
    plans (children included) each counted category has its national share. A category no
    child diagnosis covers (multiple sclerosis, Parkinson's) is drawn for adults only, with its
    probability raised to make up for the children."""
    child_pool = {catalog.diagnosis_category(d.code) for d in catalog.CHILD_DIAGNOSES}
    almen = catalog.PLAN_TYPE_VOLUMES_2023["almen"]
    out: dict[str, float] = {}
    for category, volume in catalog.ALMEN_DIAGNOSIS_VOLUMES_2023.items():
        share = volume / almen
        if category in child_pool:
            out[category] = share
        else:
            out[category] = 0.0 if child else share / (1 - catalog.CHILD_SHARE)
    out["other"] = 1 - sum(out.values())
    return out


def _pick_diagnosis(rng: random.Random, plan_type: str, child: bool) -> Diagnosis:
    if plan_type == "rehabilitering":
        # most often acquired brain injury (S3, "Rehabilitering på specialiseret niveau")
        pool = tuple(d for d in catalog.PRIMARY_DIAGNOSES
                     if catalog.diagnosis_category(d.code) == "abi")
    elif plan_type == "specialiseret":
        pool = catalog.CHILD_DIAGNOSES if child else tuple(
            d for d in catalog.PRIMARY_DIAGNOSES if d.group != "geri")
    else:
        weights = almen_category_weights(child)
        categories = list(weights)
        category = rng.choices(categories, [weights[c] for c in categories])[0]
        pool = tuple(d for d in (catalog.CHILD_DIAGNOSES if child else catalog.PRIMARY_DIAGNOSES)
                     if catalog.diagnosis_category(d.code) == category)
    return rng.choices(pool, [d.weight for d in pool])[0]


def _pick_department(rng: random.Random, group: str, region: str, plan_type: str) -> Department:
    cands = [d for d in catalog.DEPARTMENTS if group in d.groups]
    if plan_type == "rehabilitering":
        cands = [d for d in cands if d.rehab] or cands
    local = [d for d in cands if d.region == region]
    if local and rng.random() < 0.88:
        cands = local
    return rng.choice(cands)


def _pick_municipality(rng: random.Random, ctx: Context, need_suburb: bool = False) -> Municipality:
    pool = ctx.municipalities
    if need_suburb:
        pool = [m for m in pool if any(t[2] for t in m.towns())] or pool
    return rng.choice(pool)


def _sentences(rng: random.Random, lines: list[str]) -> list:
    """Several sentences as formatted text: with line breaks or as one paragraph."""
    if len(lines) > 1 and rng.random() < 0.5:
        return lines_to_formatted(lines)
    return [" ".join(lines)]


def _dept_gln(dept: Department) -> str:
    return org_gln(f"sygehus:{dept.key}")


def _gln_maybe_bad(rng: random.Random, gln: str, bad_share: float = BAD_GLN_SHARE) -> str:
    return corrupt_gln(gln) if rng.random() < bad_share else gln


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


def generate(rng: random.Random, ctx: Context, number: int, *,
             full: bool = False, plan_type: str | None = None) -> GeneratedMessage:
    """One G-GOP message. ``full=True`` fills every optional part MedCom's example has
    (used to compare the shape with that example). ``plan_type`` fixes the plan type instead
    of drawing it in the national proportions."""
    if plan_type is not None and plan_type not in PLAN_TYPES:
        raise ValueError(f"plan_type must be one of {', '.join(PLAN_TYPES)}")
    return _PlanBuilder(rng, ctx, number, full, plan_type).build()


class _PlanBuilder:
    def __init__(self, rng: random.Random, ctx: Context, number: int, full: bool,
                 plan_type: str | None = None) -> None:
        self.rng = rng
        self.ctx = ctx
        self.number = number
        self.full = full
        self.fixed_plan_type = plan_type
        self.invalid_glns: list[str] = []

    # -- helpers ------------------------------------------------------------------------------
    def chance(self, p: float) -> bool:
        """True with probability p, always True in full mode."""
        return self.full or self.rng.random() < p

    def text_el(self, parent, ns: str, name: str, lines: list[str]) -> etree._Element:
        el = sub(parent, ns, name)
        fill_formatted(el, _sentences(self.rng, lines), B)
        return el

    def _text(self, table: dict) -> str:
        """A catalogue text for this plan's diagnosis, with its slots filled."""
        return _fmt(self.rng.choice(catalog.texts_for(table, self.group, self.dx.code)),
                    self.slots)

    def note_gln(self, gln: str) -> str:
        if not gln_is_valid(gln):
            self.invalid_glns.append(gln)
        return gln

    # -- sampling -----------------------------------------------------------------------------
    def sample(self) -> None:
        rng = self.rng
        self.plan_type = (self.fixed_plan_type or ("rehabilitering" if self.full
                                                   else _pick_plan_type(rng)))
        self.child = (self.plan_type != "rehabilitering"
                      and rng.random() < catalog.CHILD_SHARE)
        self.dx = _pick_diagnosis(rng, self.plan_type, self.child)
        self.group = self.dx.group
        self.muni = _pick_municipality(rng, self.ctx, need_suburb=self.full)
        self.dept = _pick_department(rng, self.group, self.muni.region_code, self.plan_type)

        # discharge (day 0) and admission
        day = pick_day(rng, self.ctx)
        self.discharge = datetime.combine(day, pick_discharge_time(rng))
        stay = rng.randint(*self.dx.stay)
        if self.plan_type == "rehabilitering":
            stay += rng.randint(10, 50)
        if stay == 0:
            start = self.discharge - timedelta(minutes=rng.randint(90, 480))
            if start.date() != self.discharge.date():
                start = datetime.combine(day, time(0, 5))
        else:
            start = datetime.combine(day - timedelta(days=stay),
                                     time(rng.randrange(24), rng.randrange(60)))
        self.admission = start

        # patient
        lo, hi = self.dx.age
        if not self.child:
            lo = max(lo, 18)
        age = rng.randint(lo, hi)
        male_share = 0.32 if self.group in ("hip", "geri", "wrist") else 0.5
        self.male = rng.random() < male_share
        birth = birth_date_for_age(rng, self.discharge.date(), age)
        self.patient = make_person(rng, birth, self.male)
        self.birth_date = birth  # the patient's (a Person's birth date is optional)
        self.age = age_on(birth, self.discharge.date())
        towns = self.muni.towns()
        if self.full:
            towns = tuple(t for t in towns if t[2]) or towns
        self.town = rng.choice(towns)
        self.address = make_address(rng, self.muni, town=self.town)
        if self.full and not self.address.suburb:
            self.address = Address(self.address.street, self.address.district,
                                   self.address.district, self.address.postcode)

        # consent and GP copy
        self.consent = "ja" if (self.full or rng.random() < 0.88) else "nej"
        if self.full:
            self.gp_deselected = False
        elif self.consent == "nej":
            self.gp_deselected = rng.random() < 0.9
        else:
            self.gp_deselected = rng.random() < 0.07

        self.deadline = make_deadline(rng, self.discharge.date(), child=self.child,
                                      kind=("sooner" if self.full else None))
        self.side = rng.choice(catalog.SIDES)
        self.aid = rng.choice(catalog.AIDS[:4] if self.group != "amputation" else ("kørestol",))
        self.load = rng.choice(catalog.LOADS)
        self.slots = {
            "side": self.side, "aid": self.aid, "load": self.load,
            "joint": "knæ" if self.dx.code == "DM171" else "hofte",
            "disease": "Parkinsons sygdom" if self.dx.code == "DG20" else "sklerose",
            "grade": str(max(0, min(10, self.age - 6))),
            "occupation": "",
        }

        # clinical flags used by the free texts and the coded secondary diagnoses (the
        # stratification rules read them)
        self.complications = self.full or rng.random() < catalog.COMPLICATION_RATE.get(
            self.group, catalog.COMPLICATION_RATE_DEFAULT)
        self.cognitive = self.full or rng.random() < catalog.COGNITIVE_RATE.get(
            self.group, catalog.COGNITIVE_RATE_DEFAULT)
        self.coordination: list[str] = []
        working_age = 18 <= self.age <= 66
        self.occupation = self._occupation()
        self.slots["occupation"] = (self.occupation or "lønmodtager").lower()
        if working_age and self.occupation not in (None, "Pensionist", "Ledig", "Efterlønner",
                                                   "Førtidspensionist"):
            p_job = 0.4 if self.group in ("stroke", "tbi", "back") else 0.15
            if self.full or rng.random() < p_job:
                self.coordination.append("jobcenter")
        if self.child and self.age >= 6 and rng.random() < 0.4:
            self.coordination.append("skole")
        if self.age >= 75 and rng.random() < 0.3:
            self.coordination.append("hjemmepleje")
        if rng.random() < 0.03:
            self.coordination.append("socialforvaltning")

        # diagnoses
        self.secondary = self._secondary()
        self.free_text_dx = (not self.full) and rng.random() < 0.02
        r = rng.random()
        self.dx_type = "SKSdiagnosekode" if r < 0.35 else ("ICD10Kode" if r < 0.40 else "ICD10kode")

    def _occupation(self) -> str | None:
        rng = self.rng
        if not self.chance(0.7):
            return None
        if self.child:
            return "Skoleelev" if self.age >= 6 else None
        if self.age >= 67:
            return rng.choice(catalog.OCCUPATIONS_RETIRED)
        return rng.choice(catalog.OCCUPATIONS_ADULT)

    def _secondary(self) -> list[tuple[str, str, int, str | None]]:
        rng = self.rng
        n = 2 if self.full else rng.choices((0, 1, 2), (50, 35, 15))[0]
        candidates = catalog.CHILD_SECONDARY_DIAGNOSES if self.child else catalog.SECONDARY_DIAGNOSES
        # a flagged diagnosis (dementia, a urinary tract infection, ...) only codes a flag the
        # plan already has, so the flags' rates are the catalogue's
        flags = {None, "cognitive" if self.cognitive else None,
                 "complication" if self.complications else None}
        pool = [s for s in candidates
                if s[2] <= self.age and s[0] != self.dx.code and s[3] in flags]
        if self.full:  # keep the full example free of flags from chance
            pool = [s for s in pool if s[3] is None] or pool
        out: list = []
        while len(out) < n and pool:
            pick = rng.choice(pool)
            pool = [s for s in pool if s[0] != pick[0]]
            out.append(pick)
        return out

    # -- build --------------------------------------------------------------------------------
    def build(self) -> GeneratedMessage:
        self.sample()
        rng = self.rng
        root = etree.Element(f"{{{A}}}Emessage", nsmap={None: A, "xsi": XSI, "mm100": B})
        root.set(f"{{{XSI}}}schemaLocation", f"{A} EMessage.xsd")

        # envelope: sent on the discharge day or the day after
        if self.discharge.time() < time(21, 0) and rng.random() < 0.7:
            sent = self.discharge + timedelta(minutes=rng.randint(-240, 180))
            sent = clamp_time(sent, time(7, 0), time(23, 55))
            if sent.date() != self.discharge.date():
                sent = datetime.combine(self.discharge.date(), time(23, 50))
        else:
            sent = datetime.combine(self.discharge.date() + timedelta(days=1),
                                    time(rng.randint(7, 14), rng.randrange(60)))
        authorised = sent - timedelta(minutes=rng.randint(2, 180))
        self.sent = sent
        envelope = etree.SubElement(root, f"{{{B}}}Envelope", nsmap={None: B})
        sent_el = sub(envelope, B, "Sent")
        sub(sent_el, B, "Date", sent.date().isoformat())
        sub(sent_el, B, "Time", hhmm(sent))
        self.envelope_id = self.ctx.ids.digits(rng)
        sub(envelope, B, "Identifier", self.envelope_id)
        ack = "pluspositivkvitt" if (self.full or rng.random() < 0.9) else "minuspositivkvitt"
        sub(envelope, B, "AcknowledgementCode", ack)

        plan = sub(root, A, "RehabilitationPlan")
        letter = sub(plan, A, "Letter")
        self.letter_id = self.ctx.ids.digits(rng)
        sub(letter, A, "Identifier", self.letter_id)
        sub(letter, A, "VersionCode", "GGOP100")
        sub(letter, A, "StatisticalCode", STATISTICAL_CODES[self.plan_type])
        auth = sub(letter, A, "Authorisation")
        sub(auth, B, "Date", authorised.date().isoformat())
        sub(auth, B, "Time", hhmm(authorised))
        sub(letter, A, "TypeCode", "GGOP")

        self._sender(plan)
        self._receiver(plan)
        self._gp(plan)
        self._cc_receivers(plan)
        self._patient(plan)
        self._relatives(plan)
        self._plan_body(plan)

        facts = self._facts()
        filename = f"ggop-{self.number:04d}-{self.plan_type}.xml"
        return GeneratedMessage(filename=filename, kind="ggop", xml=serialise(root), facts=facts)

    # -- parts --------------------------------------------------------------------------------
    def _sender(self, plan) -> None:
        rng, dept = self.rng, self.dept
        sender = sub(plan, A, "Sender")
        self.sender_gln = _dept_gln(dept)
        sub(sender, B, "EANIdentifier", self.sender_gln)
        sub(sender, B, "Identifier", dept.identifier)
        sub(sender, A, "IdentifierCode", dept.id_kind)
        sub(sender, B, "OrganisationName", check_len(dept.organisation, 35, "OrganisationName"))
        sub(sender, B, "DepartmentName", check_len(dept.department, 35, "DepartmentName"))
        if dept.unit and self.chance(0.6):
            sub(sender, B, "UnitName", dept.unit)
        elif self.full:
            sub(sender, B, "UnitName", "Sengeafsnit 2")
        if dept.street:
            sub(sender, B, "StreetName", dept.street)
        sub(sender, B, "DistrictName", dept.district)
        sub(sender, B, "PostCodeIdentifier", dept.postcode)
        sub(sender, B, "TelephoneSubscriberIdentifier", org_phone(dept.key))
        self.signer = staff_person(rng)
        if self.chance(0.92):
            signed = sub(sender, A, "SignedBy")
            self._staff_leaves(signed, self.signer,
                               rng.choice(catalog.PERSON_TITLES_SIGNER), dept.department)
        if self.chance(0.25):
            co = sub(sender, A, "CoWriter")
            if self.chance(0.3):
                sub(co, B, "Identifier", dept.shak)
                sub(co, B, "IdentifierCode", "sygehusafdelingsnummer")
            self._staff_leaves(co, staff_person(rng), rng.choice(catalog.TEAM_TITLES),
                               dept.department)

    def _staff_leaves(self, parent, person: Person, title: str, department: str) -> None:
        sub(parent, A, "PersonGivenName", person.given)
        sub(parent, A, "PersonSurnameName", person.surname)
        sub(parent, A, "PersonTitle", title)
        if self.chance(0.8):
            sub(parent, B, "TelephoneSubscriberIdentifier", phone(self.rng, "arbejde"))
        if self.chance(0.6):
            sub(parent, B, "DepartmentName", department)

    def _receiver(self, plan) -> None:
        rng, muni = self.rng, self.muni
        rec = sub(plan, A, "Receiver")
        self.receiver_gln = muni.gln
        sub(rec, B, "EANIdentifier", self.receiver_gln)
        # MedCom's example writes the municipality code without its leading zero ("461")
        code = muni.code.lstrip("0") if rng.random() < 0.6 else muni.code
        self.receiver_identifier = code
        sub(rec, B, "Identifier", code)
        sub(rec, A, "IdentifierCode", "kommunenummer")
        sub(rec, B, "OrganisationName", check_len(muni.organisation_name, 35, "OrganisationName"))
        if self.chance(0.7):
            sub(rec, B, "DepartmentName", rng.choice(catalog.MUNICIPAL_DEPARTMENTS))
        if self.chance(0.1):
            sub(rec, B, "UnitName", rng.choice(("Team Nord", "Team Syd", "Team Øst", "Team Vest",
                                                "Myndighedsteamet")))
        if self.chance(0.45):
            town = muni.towns()[0]
            sub(rec, B, "StreetName", rng.choice(("Rådhuspladsen", "Rådhustorvet", "Torvet",
                                                  "Rådhusvej")) + f" {rng.randint(1, 12)}")
            sub(rec, B, "DistrictName", town[1])
            if town[0]:
                sub(rec, B, "PostCodeIdentifier", town[0])

    def _cc_leaves(self, parent, gln: str, identifier: str, id_code: str, name: str,
                   department: str | None, address: Address | None) -> None:
        sub(parent, B, "EANIdentifier", self.note_gln(gln))
        sub(parent, B, "Identifier", identifier)
        sub(parent, A, "IdentifierCode", id_code)
        sub(parent, B, "OrganisationName", check_len(name, 35, "OrganisationName"))
        if department:
            sub(parent, B, "DepartmentName", department)
        if address is not None:
            sub(parent, B, "StreetName", address.street)
            sub(parent, B, "DistrictName", address.district)
            opt(parent, B, "PostCodeIdentifier", address.postcode)

    def _gp(self, plan) -> None:
        rng = self.rng
        gp_el = sub(plan, A, "GPCCReceiver")
        if self.gp_deselected:
            sub(gp_el, A, "Deselected")
            self.gp = None
            return
        cc = sub(gp_el, A, "CCReceiver")
        doctor = staff_person(rng)
        address = make_address(rng, self.muni, town=self.town if rng.random() < 0.7 else None)
        street_word = address.street.split()[0]
        name = rng.choice((f"Læge {doctor.given} {doctor.surname}", f"Lægerne {street_word}",
                           f"Lægehuset {address.district}", f"{doctor.given} {doctor.surname}"))
        if len(name) > 35:
            name = f"Læge {doctor.surname}"
        ydernummer = f"{rng.randint(1000, 99999):06d}"
        gln = make_gln(rng, valid=rng.random() >= BAD_GLN_SHARE)
        self._cc_leaves(cc, gln, ydernummer, "ydernummer", name,
                        "Almen Lægehjælp" if self.chance(0.5) else None,
                        address if self.chance(0.7) else None)
        self.gp = {"ydernummer": ydernummer, "gln": gln, "name": name}

    def _cc_receivers(self, plan) -> None:
        """Further copies. As in MedCom's example they carry only the address leaves
        EANIdentifier, Identifier, IdentifierCode and OrganisationName."""
        rng = self.rng
        n = 2 if self.full else rng.choices((0, 1, 2), (55, 30, 15))[0]
        self.cc_count = n
        kinds = ["fysio", "hospital", "hjemmepleje"]
        if self.plan_type == "rehabilitering":
            kinds.append("rehab")
        if self.child:
            kinds.append("ppr")
        if self.plan_type == "specialiseret":
            kinds += ["hospital", "hospital"]
        for _ in range(n):
            kind = rng.choice(kinds)
            cc = sub(plan, A, "CCReceiver")
            if kind == "fysio":
                address = make_address(rng, self.muni)
                name = rng.choice(catalog.PRIVATE_PROVIDERS).format(town=address.district)
                if len(name) > 35:
                    name = "Klinik for Fysioterapi"
                self._cc_leaves(cc, make_gln(rng, valid=rng.random() >= BAD_GLN_SHARE),
                                f"{rng.randint(100000, 999999)}", "ydernummer", name, None, None)
            elif kind == "hospital":
                group_depts = [d for d in catalog.DEPARTMENTS
                               if d.region == self.muni.region_code and d.key != self.dept.key]
                dept = rng.choice(group_depts or list(catalog.DEPARTMENTS))
                gln = _gln_maybe_bad(rng, org_gln(f"sygehus:{dept.key}:terapi"))
                self._cc_leaves(cc, gln, dept.shak, "sygehusafdelingsnummer", dept.organisation,
                                None, None)
            elif kind == "hjemmepleje":
                gln = _gln_maybe_bad(rng, org_gln(f"kommune:{self.muni.code}:hjemmepleje"))
                self._cc_leaves(cc, gln, gln, "lokationsnummer",
                                f"Hjemmeplejen, {self.muni.name}"[:35], None, None)
            elif kind == "rehab":
                name, code = rng.choice(catalog.REHAB_CENTRES)
                gln = _gln_maybe_bad(rng, org_gln(f"rehab:{name}"))
                self._cc_leaves(cc, gln, gln, code, name, None, None)
            else:  # ppr
                gln = _gln_maybe_bad(rng, org_gln(f"kommune:{self.muni.code}:ppr"))
                self._cc_leaves(cc, gln, gln, "lokationsnummer",
                                f"PPR {self.muni.organisation_name}"[:35], None, None)

    def _patient(self, plan) -> None:
        rng, p, a = self.rng, self.patient, self.address
        pat = sub(plan, A, "Patient")
        sub(pat, B, "CivilRegistrationNumber", p.cpr)
        sub(pat, B, "PersonSurnameName", p.surname)
        sub(pat, B, "PersonGivenName", p.given)
        sub(pat, B, "StreetName", a.street)
        if a.suburb:
            sub(pat, B, "SuburbName", a.suburb)
        sub(pat, B, "DistrictName", a.district)
        opt(pat, B, "PostCodeIdentifier", a.postcode)
        if self.occupation:
            sub(pat, B, "Occupation", self.occupation)
        codes = ["mobil", "fastnet", "arbejde"]
        if self.full:
            n_phones = 3
        elif self.child:  # a child's own mobile, or the home number, or none
            codes = codes[:2]
            rng.shuffle(codes)
            n_phones = rng.choices((0, 1, 2), (25, 60, 15))[0] if self.age >= 10 else \
                rng.choices((0, 1), (60, 40))[0]
            if self.age < 10:
                codes = ["fastnet"]
        else:
            rng.shuffle(codes)
            n_phones = rng.choices((0, 1, 2, 3), (4, 55, 33, 8))[0]
        self.phone_codes = codes[:n_phones]
        for code in codes[:n_phones]:
            ts = sub(pat, A, "TelephoneSubscriber")
            sub(ts, B, "TelephoneSubscriberIdentifier", phone(rng, code))
            sub(ts, A, "TelephoneSubscriberCode", code)
        if n_phones == 0 and self.child:
            sub(pat, A, "NoTelephoneReason", "Kontakt via forældre")
        elif n_phones == 0:
            sub(pat, A, "NoTelephoneReason",
                rng.choice(("Patienten har ikke telefon", "Ønsker ikke at oplyse telefonnummer",
                            "Kontakt via pårørende")))
        if self.chance(0.2) and not self.child:
            sub(pat, A, "EmailAddressIdentifier", email_for(p, rng))
        if self.chance(0.05):
            co = sub(pat, A, "CoAddress")
            host = staff_person(rng)
            host_addr = make_address(rng, self.muni)
            sub(co, B, "PersonSurnameName", host.surname)
            sub(co, B, "PersonGivenName", host.given)
            sub(co, B, "StreetName", host_addr.street)
            if host_addr.suburb or self.full:
                sub(co, B, "SuburbName", host_addr.suburb or host_addr.district)
            sub(co, B, "DistrictName", host_addr.district)
            opt(co, B, "PostCodeIdentifier", host_addr.postcode)

    def _relatives(self, plan) -> None:
        rng = self.rng
        rels: list[tuple[str, Person, Address | None]] = []
        p = self.patient
        if self.child:
            parents = [("mor", False), ("far", True)]
            if rng.random() < 0.5:
                parents = parents[:1] if rng.random() < 0.6 else parents[1:]
            for code, male in parents:
                year = self.birth_date.year - rng.randint(22, 40)
                person = Person(given_name(rng, male, year), p.surname if rng.random() < 0.7
                                else surname(rng), male)
                rels.append((code, person, self.address if rng.random() < 0.8 else
                             make_address(rng, self.muni)))
        else:
            n = 2 if self.full else rng.choices((0, 1, 2), (40, 45, 15))[0]
            for i in range(n):
                if self.full:
                    code = ("aegtefaelle", "uspec_paaroerende")[i]
                else:
                    options = ["uspec_paaroerende"]
                    if self.age >= 25 and not any(r[0] == "aegtefaelle" for r in rels):
                        options += ["aegtefaelle", "aegtefaelle"]
                    if self.age >= 55:
                        options += ["barn", "barn"]
                    code = rng.choice(options)
                male = rng.random() < 0.5
                addr: Address | None
                if code == "aegtefaelle":
                    year = self.birth_date.year + rng.randint(-5, 5)
                    person = Person(given_name(rng, not p.male if rng.random() < 0.9 else p.male,
                                               year), p.surname if rng.random() < 0.6
                                    else surname(rng), male)
                    addr = self.address
                elif code == "barn":
                    year = self.birth_date.year + rng.randint(22, 38)
                    person = Person(given_name(rng, male, year), surname(rng), male)
                    addr = make_address(rng, rng.choice(self.ctx.municipalities)) \
                        if rng.random() < 0.7 else None
                else:
                    year = rng.randint(1950, 2000)
                    person = Person(given_name(rng, male, year), surname(rng), male)
                    addr = make_address(rng, self.muni) if rng.random() < 0.5 else None
                if self.full and addr is None:
                    addr = make_address(rng, self.muni)
                rels.append((code, person, addr))
        self.relatives = [r[0] for r in rels]
        if not rels:
            return
        wrap = sub(plan, A, "Relatives")
        for idx, (code, person, addr) in enumerate(rels):
            rel = sub(wrap, A, "Relative")
            sub(rel, B, "RelationCode", code)
            sub(rel, B, "PersonSurnameName", person.surname)
            sub(rel, B, "PersonGivenName", person.given)
            if addr is not None:
                sub(rel, B, "StreetName", addr.street)
                if addr.suburb:
                    sub(rel, B, "SuburbName", addr.suburb)
                sub(rel, B, "DistrictName", addr.district)
                opt(rel, B, "PostCodeIdentifier", addr.postcode)
            # in the full example the second relative has neither phone nor e-mail (as MedCom's)
            if self.full and idx == 1:
                continue
            n = 3 if self.full else rng.choices((0, 1, 2), (15, 65, 20))[0]
            kinds = ["fastnet", "arbejde", "mobil"] if self.full else \
                rng.sample(["mobil", "fastnet", "arbejde"], n)
            for code2 in kinds[:n]:
                ts = sub(rel, A, "TelephoneSubscriber")
                sub(ts, B, "TelephoneSubscriberIdentifier", phone(rng, code2))
                sub(ts, A, "TelephoneSubscriberCode", code2)
            if self.chance(0.15):
                sub(rel, A, "EmailAddressIdentifier", email_for(person, rng))

    def _plan_body(self, plan) -> None:
        rng, slots, group = self.rng, self.slots, self.group
        sub(plan, A, "TypeOfRehabilitationPlan", self.plan_type)
        if self.chance(0.4):
            self.text_el(plan, A, "InformationForPatientAndRelatives",
                         rng.sample(catalog.INFO_FOR_PATIENT, rng.randint(1, 2)))
        sub(plan, A, "ConsentInformed", self.consent)

        practical = []
        if self.chance(0.7):
            pool = [t for t in (catalog.PRACTICAL_INFO_CHILD if self.child else catalog.PRACTICAL_INFO)
                    if self._fits(t)]
            k = min(len(pool), rng.randint(1, 2))
            practical = [_fmt(t, slots) for t in rng.sample(pool, k)]
        if practical:
            self.text_el(plan, A, "PracticalInformation", practical)

        safety = []
        if self.chance(0.6):
            pool = list(catalog.PATIENT_SAFETY)
            pool += catalog.PATIENT_SAFETY_BY_GROUP.get(group, ())
            safety = [_fmt(rng.choice(pool), slots)]
        if self.cognitive and rng.random() < 0.5:
            safety.append(rng.choice(catalog.COGNITIVE))
        if safety:
            self.text_el(plan, A, "PatientSafetyAspects", safety)

        if self.deadline.text is not None:
            sub(plan, A, "RehabilitationDeadline", self.deadline.text)

        contact = sub(plan, A, "CurrentHospitalContact")
        st = sub(contact, A, "Start")
        sub(st, A, "Date", self.admission.date().isoformat())
        sub(st, A, "Time", hhmm(self.admission))
        self.expected_end_text = None
        if not self.full and rng.random() < 0.05:
            d = self.discharge.date()
            template = rng.choice(catalog.EXPECTED_END_TEXTS)
            self.expected_end_text = template.format(
                date=danish_date(d, rng.choice(("long", "dotted"))),
                week=d.isocalendar()[1], weekday=catalog.WEEKDAYS[d.weekday()])
            sub(contact, A, "ExpectedEndText", self.expected_end_text)
        else:
            end = sub(contact, A, "ExpectedEnd")
            sub(end, A, "Date", self.discharge.date().isoformat())
            sub(end, A, "Time", hhmm(self.discharge))

        if self.chance(0.35):
            ctrl = sub(plan, A, "HospitalAmbulatoryControl")
            if not self.full and rng.random() < 0.2:
                sub(ctrl, A, "ExpectedStartText",
                    rng.choice(("Indkaldes til kontrol i ambulatoriet om 6 uger",
                                "Kontrol med røntgen efter 6 uger – indkaldelse følger",
                                "Telefonkonsultation om 3 uger")))
            else:
                day = self.discharge.date() + timedelta(weeks=rng.randint(2, 8),
                                                        days=rng.randint(0, 4))
                while day.weekday() >= 5:  # outpatient clinics work on weekdays
                    day += timedelta(days=1)
                when = datetime.combine(day, time(rng.randint(8, 14), rng.choice((0, 15, 30, 45))))
                es = sub(ctrl, A, "ExpectedStart")
                sub(es, A, "Date", when.date().isoformat())
                sub(es, A, "Time", hhmm(when))
            dept = self.dept
            loc = sub(ctrl, A, "Location")
            sub(loc, B, "EANIdentifier", org_gln(f"sygehus:{dept.key}:ambulatorium"))
            sub(loc, B, "Identifier", dept.shak)
            sub(loc, A, "IdentifierCode", "sygehusafdelingsnummer")
            sub(loc, B, "OrganisationName", dept.organisation)
            sub(loc, B, "DepartmentName", dept.department)
            sub(loc, B, "UnitName", "Ambulatoriet")
            if dept.street:
                sub(loc, B, "StreetName", dept.street)
            if self.full:
                sub(loc, B, "SuburbName", dept.district)
            sub(loc, B, "DistrictName", dept.district)
            sub(loc, B, "PostCodeIdentifier", dept.postcode)

        health = []
        if self.chance(0.95) or self.complications:
            health = [self._text(catalog.HEALTH_SUMMARY)]
            if self.complications:
                health.append(_fmt(rng.choice(catalog.COMPLICATIONS), slots))
            self.text_el(plan, B, "PatientHealthSummary", health)

        ability = []
        if self.chance(0.9) or self.cognitive:
            ability = [self._text(catalog.ABILITY_SUMMARY)]
            if self.cognitive:
                ability.append(rng.choice(catalog.COGNITIVE))
            self.text_el(plan, A, "AbilityAtDischargeSummary", ability)

        if self.plan_type == "rehabilitering" or self.full or rng.random() < 0.1:
            ext = etree.SubElement(plan, f"{{{A}}}AbilityAtDischargeExtended",
                                   nsmap={"mm104": A, None: B})
            fill_formatted(ext, self._extended_content(), B)

        need = []
        if self.chance(0.9) or self.coordination:
            need = [_fmt(rng.choice(catalog.NEED_AND_POTENTIAL[group]), slots)]
            for c in self.coordination:
                need.append(rng.choice(catalog.COORDINATION[c]))
            self.text_el(plan, A, "RehabilitationNeedAndPotential", need)

        self._diagnoses(plan)
        self._icf(plan)
        self._journal(plan)
        self._contacts(plan)
        self._team(plan)
        self._final_result(plan)
        if self.chance(0.1):
            ref = sub(plan, A, "Reference")
            desc, url = rng.choice(catalog.REFERENCES)
            sub(ref, A, "RefDescription", desc)
            sub(ref, A, "URL", url)

    def _fits(self, sentence: str) -> bool:
        """Leave out practical remarks that contradict the rest of the plan."""
        spouse = "aegtefaelle" in self.relatives
        if "ægtefælle" in sentence and not spouse:
            return False
        if "alene" in sentence and spouse:
            return False
        if "mobiltelefon" in sentence and "mobil" in self.phone_codes:
            return False
        if ("arbejdsplads" in sentence or "køre bil" in sentence) and self.age >= 80:
            return False
        if "plejecenter" in sentence and self.age < 70:
            return False
        if ("klasse" in sentence or "skole" in sentence) and self.age < 6:
            return False
        return not ("børnehave" in sentence and not 2 <= self.age < 6)

    def _extended_content(self) -> list:
        rng, slots = self.rng, self.slots
        fitting = {"any", "cognitive" if self.cognitive else "intact",
                   "neuro" if self.group in catalog.NEURO_GROUPS else "other"}
        items: list = []
        for heading, subsections in catalog.EXTENDED_SECTIONS:
            items += [("Bold", heading), ("Break",)]
            for sub_heading, entries in subsections:
                texts = tuple(text for _kind, text in entries)
                if sub_heading == "- Vigtige livsområder":
                    # work, school or retirement, consistent with the patient
                    if self.child:
                        texts = (texts[2],) if self.age >= 6 else ("Går i dagtilbud.",)
                    elif "jobcenter" in self.coordination:
                        texts = texts[0:2]
                    elif self.age >= 67:
                        texts = ("Pensionist.",)
                    else:
                        texts = ("Ingen særlige forhold.",)
                elif sub_heading == "- Støtte og kontakt":
                    texts = (texts[2],) if self.child else (
                        (texts[0],) if "aegtefaelle" in self.relatives else (texts[1],))
                else:
                    texts = tuple(text for kind, text in entries if kind in fitting)
                items += [("Italic", sub_heading), ("Break",),
                          _fmt(rng.choice(texts), slots), ("Break",), ("Break",)]
        return items

    def _diagnoses(self, plan) -> None:
        wrap = sub(plan, A, "ICD10Diagnoses")
        if self.free_text_dx:
            sub(wrap, A, "Text", f"{self.dx.text}, {self.side} side")
            self.diagnoses: list[str] = []
            return
        d = sub(wrap, A, "ICD10Diagnose")
        prim = sub(d, A, "PrimaryDiagnosis")
        sub(prim, A, "Code", self.dx.code)
        sub(prim, A, "TypeCode", self.dx_type)
        sub(prim, A, "Text", self.dx.text)
        for code, text, _min, _flag in self.secondary:
            s = sub(d, A, "SecondaryDiagnosis")
            sub(s, A, "Code", code)
            sub(s, A, "TypeCode", self.dx_type)
            sub(s, A, "Text", text)
        self.diagnoses = [self.dx.code] + [s[0] for s in self.secondary]

    def _icf(self, plan) -> None:
        rng = self.rng
        self.icf: list[list] = []
        p = 0.7 if self.plan_type == "rehabilitering" else 0.3
        if not self.chance(p):
            return
        codes = rng.sample(catalog.ICF_BY_GROUP[self.group],
                           min(len(catalog.ICF_BY_GROUP[self.group]), rng.randint(2, 5)))
        if self.cognitive and not any(c.startswith("b1") for c in codes):
            codes.append("b144")
        wrap = sub(plan, A, "ICFClassifications")
        for code in codes:
            high = self.plan_type == "rehabilitering" or (code.startswith("b1") and self.cognitive)
            grade = rng.choice((2, 3, 3, 4)) if high else rng.choice((0, 1, 1, 2, 2, 3))
            cls = sub(wrap, A, "ICFClassification")
            c = sub(cls, A, "ICFCode")
            sub(c, A, "Code", code)
            sub(c, A, "TypeCode", "ICFKode")
            sub(c, A, "Text", catalog.ICF_CODES[code])
            g = sub(cls, A, "ICFGradient")
            sub(g, A, "Code", str(grade))
            sub(g, A, "TypeCode", "ICFKode")
            sub(g, A, "Text", catalog.ICF_GRADIENTS[grade])
            self.icf.append([code, grade])

    def _journal(self, plan) -> None:
        rng = self.rng
        if not self.chance(0.25):
            return
        n = 2 if self.full else rng.randint(1, 2)
        for i in range(n):
            unstructured = (i == n - 1) and self.chance(0.3)
            ex = sub(plan, A, "JournalExcerpt")
            author = staff_person(rng)
            title = rng.choice(catalog.DOCTOR_TITLES)
            written = self.discharge.date() - timedelta(days=rng.randint(0, 5))
            if unstructured:
                sub(ex, A, "TypeOfExcerpt", "Uddrag uden struktur")
                comment = sub(ex, A, "Comment")
                fill_formatted(comment, [
                    self._text(catalog.HEALTH_SUMMARY),
                    ("Break",),
                    f"Skrevet af: {title} {author.full_name} den {danish_date(written)}",
                ], B)
                continue
            kind, lines = rng.choice(catalog.JOURNAL_EXCERPTS)
            sub(ex, A, "TypeOfExcerpt", kind)
            signer = sub(ex, A, "Signer")
            sb = sub(signer, A, "SignedBy")
            sub(sb, A, "PersonGivenName", author.given)
            sub(sb, A, "PersonSurnameName", author.surname)
            sub(sb, A, "PersonTitle", title)
            sub(signer, A, "Date", written.isoformat())
            comment = sub(ex, A, "Comment")
            chosen = [_fmt(t, self.slots) for t in rng.sample(lines, min(2, len(lines)))]
            fill_formatted(comment, lines_to_formatted(chosen) + [("Break",)], B)

    def _contacts(self, plan) -> None:
        rng, dept, muni = self.rng, self.dept, self.muni
        if self.chance(0.5):
            cc = sub(plan, A, "ContactCounty")
            if self.chance(0.5):
                sub(cc, B, "EANIdentifier", org_gln(f"sygehus:{dept.key}:terapi"))
            sub(cc, B, "DepartmentName", "Fysio- og Ergoterapien")
            if dept.street:
                sub(cc, B, "StreetName", dept.street)
            sub(cc, B, "DistrictName", dept.district)
            sub(cc, B, "PostCodeIdentifier", dept.postcode)
            sub(cc, B, "TelephoneSubscriberIdentifier", org_phone(dept.key + ":terapi"))
        if self.chance(0.4):
            cm = sub(plan, A, "ContactMunicipality")
            name = f"Visitationen, {muni.organisation_name}"
            sub(cm, B, "DepartmentName", name if len(name) <= 35 else muni.organisation_name)
            town = muni.towns()[0]
            sub(cm, B, "StreetName", f"Rådhustorvet {rng.randint(1, 9)}")
            sub(cm, B, "DistrictName", town[1])
            if town[0]:
                sub(cm, B, "PostCodeIdentifier", town[0])
            sub(cm, B, "TelephoneSubscriberIdentifier", org_phone(f"kommune:{muni.code}"))

    def _team(self, plan) -> None:
        rng = self.rng
        p = 0.8 if self.plan_type == "rehabilitering" else 0.25
        if not self.chance(p):
            return
        team = sub(plan, A, "HealthCareTeam")
        n = 3 if self.full else rng.randint(1, 5)
        for i in range(n):
            m = sub(team, A, "Member")
            person = staff_person(rng)
            if (self.full and i == 0) or (not self.full and rng.random() < 0.15):
                sub(m, B, "Identifier", self.dept.shak)
                sub(m, B, "IdentifierCode", "sygehusafdelingsnummer")
            sub(m, A, "PersonGivenName", person.given)
            sub(m, A, "PersonSurnameName", person.surname)
            sub(m, A, "PersonTitle", rng.choice(catalog.TEAM_TITLES))
            sub(m, B, "TelephoneSubscriberIdentifier", phone(rng, "arbejde"))
            sub(m, B, "DepartmentName", self.dept.department)

    def _final_result(self, plan) -> None:
        rng = self.rng
        if not self.chance(0.1):
            return
        fr = sub(plan, A, "FinalResult")
        rr = sub(fr, A, "ResultReceiver")
        if self.gp is not None and rng.random() < 0.5:
            sub(rr, B, "EANIdentifier", self.gp["gln"])
            sub(rr, B, "Identifier", self.gp["ydernummer"])
            sub(rr, A, "IdentifierCode", "ydernummer")
            sub(rr, B, "OrganisationName", self.gp["name"])
        else:
            sub(rr, B, "EANIdentifier", self.sender_gln)
            sub(rr, B, "Identifier", self.dept.shak)
            sub(rr, A, "IdentifierCode", "sygehusafdelingsnummer")
            sub(rr, B, "OrganisationName", self.dept.organisation)

    # -- facts --------------------------------------------------------------------------------
    def _facts(self) -> dict[str, Any]:
        return {
            "plan_type": self.plan_type,
            "statistical_code": STATISTICAL_CODES[self.plan_type],
            "consent": self.consent,
            "gp_deselected": self.gp_deselected,
            "deadline_text": self.deadline.text,
            "deadline_kind": self.deadline.kind,
            "deadline_days": self.deadline.days,
            "deadline_bound": self.deadline.bound,
            "child": self.age < 18,
            "age": self.age,
            "cpr": self.patient.cpr,
            "birth_date": self.birth_date.isoformat(),
            "municipality_code": self.muni.code,
            "receiver_identifier": self.receiver_identifier,
            "region_code": self.muni.region_code,
            "diagnoses": list(self.diagnoses),
            "diagnosis_group": self.group,
            "diagnosis_category": catalog.diagnosis_category(self.dx.code),
            "diagnosis_type_code": self.dx_type,
            "icf": [list(x) for x in self.icf],
            "discharge": iso_minutes(self.discharge),
            "expected_end_text": self.expected_end_text,
            "admission": iso_minutes(self.admission),
            "sent": iso_minutes(self.sent),
            "letter_id": self.letter_id,
            "envelope_id": self.envelope_id,
            "sender_gln": self.sender_gln,
            "sender_identifier": self.dept.identifier,
            "sender_identifier_code": self.dept.id_kind,
            "sender_department": f"{self.dept.organisation}, {self.dept.department}",
            "receiver_gln": self.receiver_gln,
            "cc_receivers": self.cc_count,
            "invalid_glns": list(self.invalid_glns),
            "complications": self.complications,
            "cognitive": self.cognitive,
            "coordination": list(self.coordination),
            "relatives": list(self.relatives),
            "heading": None,
        }
