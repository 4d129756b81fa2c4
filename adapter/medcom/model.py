"""Typed model of the MedCom messages the adapter reads.

Every leaf is a :class:`~adapter.medcom.nodes.Val` (value + line + XPath), so a
later check or mapping can always say where a value came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from adapter.medcom.nodes import Val

NS_M100 = "urn:oio:medcom:municipality:1.0.0"
NS_M104 = "urn:oio:medcom:municipality:1.0.4"
NS_2006 = "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2006/07/01/"
NS_2005 = "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/"


class Where(NamedTuple):
    line: int | None
    xpath: str


@dataclass
class Envelope:
    where: Where
    sent_date: Val | None = None
    sent_time: Val | None = None
    identifier: Val | None = None
    acknowledgement_code: Val | None = None


@dataclass
class Letter:
    where: Where
    identifier: Val | None = None
    version_code: Val | None = None
    statistical_code: Val | None = None
    authorisation_date: Val | None = None
    authorisation_time: Val | None = None
    type_code: Val | None = None
    status_code: Val | None = None
    episode_of_care_identifier: Val | None = None


@dataclass
class Telephone:
    number: Val
    use: Val | None = None  # mobil | fastnet | arbejde


@dataclass
class Party:
    """An organisation or a unit of one (sender, receiver, copy receiver, contact)."""

    where: Where
    role: str
    ean: Val | None = None
    identifier: Val | None = None
    identifier_code: Val | None = None
    organisation_name: Val | None = None
    department_name: Val | None = None
    unit_name: Val | None = None
    street_name: Val | None = None
    suburb_name: Val | None = None
    district_name: Val | None = None
    post_code: Val | None = None
    telephone: Val | None = None
    medical_speciality: Val | None = None


@dataclass
class Person:
    """A health professional or other named person (signer, co-writer, team member)."""

    where: Where
    role: str
    identifier: Val | None = None
    identifier_code: Val | None = None
    given_name: Val | None = None
    surname: Val | None = None
    title: Val | None = None
    telephone: Val | None = None
    department_name: Val | None = None


@dataclass
class Address:
    street_name: Val | None = None
    suburb_name: Val | None = None
    district_name: Val | None = None
    post_code: Val | None = None


@dataclass
class Patient:
    where: Where
    cpr: Val | None = None
    alternative_identifier: Val | None = None
    surname: Val | None = None
    given_name: Val | None = None
    address: Address = field(default_factory=Address)
    occupation: Val | None = None
    telephones: list[Telephone] = field(default_factory=list)
    no_telephone_reason: Val | None = None
    email: Val | None = None
    co_address_name: Val | None = None
    co_address: Address | None = None
    episode_of_care_status: Val | None = None  # XDIS91 only


@dataclass
class Relative:
    where: Where
    relation_code: Val | None = None
    surname: Val | None = None
    given_name: Val | None = None
    address: Address = field(default_factory=Address)
    telephones: list[Telephone] = field(default_factory=list)
    email: Val | None = None


@dataclass
class Coded:
    where: Where
    code: Val | None = None
    type_code: Val | None = None
    text: Val | None = None


@dataclass
class Diagnosis(Coded):
    primary: bool = True


@dataclass
class IcfClassification:
    where: Where
    code: Coded | None = None
    gradient: Coded | None = None


@dataclass
class JournalExcerpt:
    where: Where
    type_of_excerpt: Val | None = None
    signer: Person | None = None
    date: Val | None = None
    comment: Val | None = None


@dataclass
class Reference:
    where: Where
    description: Val | None = None
    url: Val | None = None
    bin_object_identifier: Val | None = None
    bin_object_code: Val | None = None
    bin_extension_code: Val | None = None


@dataclass
class DateTimeVal:
    where: Where
    date: Val | None = None
    time: Val | None = None
    text: Val | None = None  # ExpectedEndText / ExpectedStartText


@dataclass
class GgopMessage:
    kind = "ggop"
    envelope: Envelope
    letter: Letter
    sender: Party | None
    receiver: Party | None
    signed_by: Person | None = None
    co_writer: Person | None = None
    gp: Party | None = None
    gp_deselected: Where | None = None
    cc_receivers: list[Party] = field(default_factory=list)
    patient: Patient | None = None
    relatives: list[Relative] = field(default_factory=list)
    plan_type: Val | None = None
    information_for_patient: Val | None = None
    consent: Val | None = None
    practical_information: Val | None = None
    patient_safety: Val | None = None
    rehabilitation_deadline: Val | None = None
    contact_start: DateTimeVal | None = None
    contact_end: DateTimeVal | None = None  # discharge: day 0 of every deadline
    ambulatory_start: DateTimeVal | None = None
    ambulatory_location: Party | None = None
    health_summary: Val | None = None
    ability_summary: Val | None = None
    ability_extended: Val | None = None
    need_and_potential: Val | None = None
    diagnoses: list[Diagnosis] = field(default_factory=list)
    diagnosis_text: Val | None = None
    icf: list[IcfClassification] = field(default_factory=list)
    journal_excerpts: list[JournalExcerpt] = field(default_factory=list)
    contact_county: Party | None = None
    contact_municipality: Party | None = None
    team: list[Person] = field(default_factory=list)
    result_receivers: list[Party] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)


@dataclass
class CorrespondenceMessage:
    kind = "xdis91"
    namespace: str
    envelope: Envelope
    letter: Letter
    sender: Party | None
    receiver: Party | None
    patient: Patient | None
    priority: Val | None = None
    subject: Val | None = None
    texts: list[Val] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)


@dataclass
class OriginalLetter:
    where: Where
    identifier: Val | None = None
    version_code: Val | None = None
    refuse_code: Val | None = None
    refuse_text: Val | None = None


@dataclass
class ReceiptMessage:
    kind = "xctl"
    receipt_type: str  # XCTL01 | XCTL02 | XCTL03
    envelope: Envelope
    letter: Letter
    sender_ean: Val | None
    receiver_ean: Val | None
    original_envelope_identifier: Val | None = None
    original_sender_ean: Val | None = None
    original_receiver_ean: Val | None = None
    refuse_code: Val | None = None
    refuse_text: Val | None = None
    original_letters: list[OriginalLetter] = field(default_factory=list)


Message = GgopMessage | CorrespondenceMessage | ReceiptMessage
