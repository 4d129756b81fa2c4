"""Business rules on a parsed message: missing essentials and malformed values are
errors (the message is refused); tolerated defects of real messages are warnings.

Pure: takes the typed message and the municipality table, returns issues.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, KeysView, Set

from adapter.danish_time import EARLIEST_DATE, LATEST_DATE, sane_date
from adapter.errors import Issue, issue
from adapter.medcom.identifiers import (
    cpr_birth_date,
    cpr_mod11_ok,
    gln_is_valid,
    gln_is_wellformed,
    normalise_municipality_code,
)
from adapter.medcom.model import (
    CorrespondenceMessage,
    DateTimeVal,
    GgopMessage,
    Letter,
    Party,
    Patient,
    ReceiptMessage,
    Where,
)
from adapter.medcom.nodes import Val

PLAN_TYPES = ("almen", "specialiseret", "rehabilitering")
CONSENT_VALUES = ("ja", "nej")
STATUS_CODES = ("nytbrev", "rettetbrev", "annulleretbrev")
ACK_CODES = ("pluspositivkvitt", "minuspositivkvitt")
DIAGNOSIS_TYPE_CODES = ("icd10kode", "sksdiagnosekode")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
MAX_ID = 14


def valid_date(value: str) -> bool:
    """YYYY-MM-DD and within the sane window (1900–2099)."""
    return bool(_DATE.match(value)) and sane_date(value) is not None


def valid_time(value: str) -> bool:
    return bool(_TIME.match(value))


def _loc(v: Val) -> dict:
    return {"line": v.line, "xpath": v.xpath}


def _missing(code: str, where: Where, child: str, detail: str | None = None) -> Issue:
    return issue(code, where.line, f"{where.xpath}/{child}", detail)


def check_identifier(code_missing: str, where: Where, child: str, value: Val | None) -> list[Issue]:
    if value is None:
        return [_missing(code_missing, where, child)]
    if len(value.value) > MAX_ID:
        return [issue("GGOP-E313", **_loc(value), detail=f"{len(value.value)} characters")]
    return []


def check_date(value: Val | None, essential: bool) -> list[Issue]:
    if value is None or valid_date(value.value):
        return []
    return [issue("GGOP-E312" if essential else "GGOP-W338", **_loc(value),
                  detail=f"expected YYYY-MM-DD between {EARLIEST_DATE.year} and {LATEST_DATE.year}")]


def check_time(value: Val | None, essential: bool) -> list[Issue]:
    if value is None or valid_time(value.value):
        return []
    return [issue("GGOP-E312" if essential else "GGOP-W338", **_loc(value), detail="expected hh:mm")]


def check_envelope_and_letter(msg, expected_version: str) -> list[Issue]:
    env, letter = msg.envelope, msg.letter
    out: list[Issue] = []
    out += check_identifier("GGOP-E301", env.where, "Identifier", env.identifier)
    out += check_identifier("GGOP-E302", letter.where, "Identifier", letter.identifier)
    if env.sent_date is None:
        out.append(_missing("GGOP-E320", env.where, "Sent/Date"))
    out += check_date(env.sent_date, True) + check_time(env.sent_time, True)
    out += check_date(letter.authorisation_date, True) + check_time(letter.authorisation_time, True)
    if env.acknowledgement_code is not None and env.acknowledgement_code.value not in ACK_CODES:
        out.append(issue("GGOP-W337", **_loc(env.acknowledgement_code), detail="allowed: " + ", ".join(ACK_CODES)))
    out += _check_letter_codes(letter, expected_version)
    return out


def _check_letter_codes(letter: Letter, expected_version: str) -> list[Issue]:
    out = []
    if letter.version_code is not None and letter.version_code.value != expected_version:
        out.append(issue("GGOP-E319", **_loc(letter.version_code), detail=f"expected {expected_version}"))
    if letter.status_code is not None and letter.status_code.value not in STATUS_CODES:
        out.append(issue("GGOP-E316", **_loc(letter.status_code), detail="allowed: " + ", ".join(STATUS_CODES)))
    return out


def check_sender(sender: Party | None, root: Where, strict_check_digit: bool = True) -> list[Issue]:
    if sender is None:
        return [_missing("GGOP-E317", root, "Sender")]
    if sender.ean is None:
        return [_missing("GGOP-E310", sender.where, "EANIdentifier")]
    if not gln_is_wellformed(sender.ean.value):
        return [issue("GGOP-E311", **_loc(sender.ean))]
    if not gln_is_valid(sender.ean.value):
        return [issue("GGOP-E311" if strict_check_digit else "GGOP-W341", **_loc(sender.ean))]
    return []


def check_receiver(receiver: Party | None, root: Where, strict_check_digit: bool = True) -> list[Issue]:
    if receiver is None:
        return [_missing("GGOP-E307", root, "Receiver")]
    if receiver.ean is None:
        return [_missing("GGOP-E308", receiver.where, "EANIdentifier")]
    if not gln_is_wellformed(receiver.ean.value):
        return [issue("GGOP-E308", **_loc(receiver.ean))]
    if not gln_is_valid(receiver.ean.value):
        return [issue("GGOP-E309" if strict_check_digit else "GGOP-W341", **_loc(receiver.ean))]
    return []


def check_receiver_municipality(receiver: Party | None, municipality_codes: Iterable[str]) -> list[Issue]:
    if receiver is None:
        return []
    code = receiver.identifier_code.value.lower() if receiver.identifier_code else ""
    if code != "kommunenummer" or receiver.identifier is None:
        return [issue("GGOP-W336", receiver.where.line, receiver.where.xpath + "/IdentifierCode")]
    normalised = normalise_municipality_code(receiver.identifier.value)
    codes = municipality_codes if isinstance(municipality_codes, (Set, KeysView)) else set(municipality_codes)
    if normalised is None or normalised not in codes:
        return [issue("GGOP-E315", **_loc(receiver.identifier))]
    return []


def check_secondary_party(party: Party | None) -> list[Issue]:
    """Copy receivers, contacts, locations: a bad GLN is kept with a warning."""
    if party is None or party.ean is None:
        return []
    if not gln_is_valid(party.ean.value):
        return [issue("GGOP-W331", **_loc(party.ean))]
    return []


def check_patient(patient: Patient | None, root: Where) -> list[Issue]:
    if patient is None:
        return [_missing("GGOP-E303", root, "Patient")]
    if patient.cpr is None:
        if patient.alternative_identifier is None:
            return [_missing("GGOP-E303", patient.where, "CivilRegistrationNumber")]
        return []
    if cpr_birth_date(patient.cpr.value) is None:
        return [issue("GGOP-E304", **_loc(patient.cpr))]
    if not cpr_mod11_ok(patient.cpr.value):
        return [issue("GGOP-W330", **_loc(patient.cpr))]
    return []


def check_datetime(value: DateTimeVal | None, essential: bool) -> list[Issue]:
    if value is None:
        return []
    return check_date(value.date, essential) + check_time(value.time, essential)


def check_ggop(msg: GgopMessage, municipality_codes: Iterable[str]) -> list[Issue]:
    plan_where = Where(msg.letter.where.line, msg.letter.where.xpath.rsplit("/", 1)[0])
    out = check_envelope_and_letter(msg, "GGOP100")
    out += check_sender(msg.sender, plan_where)
    out += check_receiver(msg.receiver, plan_where)
    if not any(i.code == "GGOP-E307" for i in out):
        out += check_receiver_municipality(msg.receiver, municipality_codes)
    out += check_patient(msg.patient, plan_where)

    if msg.plan_type is None:
        out.append(_missing("GGOP-E305", plan_where, "TypeOfRehabilitationPlan"))
    elif msg.plan_type.value not in PLAN_TYPES:
        out.append(issue("GGOP-E306", **_loc(msg.plan_type), detail="allowed: " + ", ".join(PLAN_TYPES)))
    elif msg.plan_type.value == "rehabilitering" and msg.ability_extended is None:
        out.append(_missing("GGOP-W335", plan_where, "AbilityAtDischargeExtended"))

    if msg.consent is None:
        out.append(_missing("GGOP-W333", plan_where, "ConsentInformed"))
    elif msg.consent.value not in CONSENT_VALUES:
        out.append(issue("GGOP-E318", **_loc(msg.consent), detail="allowed: ja, nej"))
    if msg.gp is not None and msg.gp_deselected is None and (msg.consent is None or msg.consent.value != "ja"):
        # a GP copy was asked for, but the citizen did not consent to sharing: it is not sent
        out.append(issue("GGOP-W339", msg.gp.where.line, msg.gp.where.xpath))

    out += check_datetime(msg.contact_start, True)
    out += check_datetime(msg.contact_end, True)
    if msg.contact_end is None or msg.contact_end.date is None:
        if msg.contact_end:
            w = msg.contact_end.where
        else:
            w = Where(plan_where.line, plan_where.xpath + "/CurrentHospitalContact")
        out.append(issue("GGOP-W332", w.line, w.xpath))
    out += check_datetime(msg.ambulatory_start, False)
    for j in msg.journal_excerpts:
        out += check_date(j.date, False)

    for party in [msg.gp, *msg.cc_receivers, msg.ambulatory_location, msg.contact_county,
                  msg.contact_municipality, *msg.result_receivers]:
        out += check_secondary_party(party)
    for d in msg.diagnoses:
        if d.type_code is not None and d.type_code.value.lower() not in DIAGNOSIS_TYPE_CODES:
            out.append(issue("GGOP-W334", **_loc(d.type_code), detail="expected ICD10kode or SKSdiagnosekode"))
    return out


def check_correspondence(msg: CorrespondenceMessage) -> list[Issue]:
    from adapter.medcom.detect import XDIS91_VERSIONS

    body_where = Where(msg.letter.where.line, msg.letter.where.xpath.rsplit("/", 1)[0])
    out = check_envelope_and_letter(msg, XDIS91_VERSIONS[msg.namespace])
    # MedCom's own XDIS91 examples carry location numbers that fail the GS1 check
    # digit; correspondence is kept (with a warning) as long as the number has 13 digits.
    out += check_sender(msg.sender, body_where, strict_check_digit=False)
    out += check_receiver(msg.receiver, body_where, strict_check_digit=False)
    out += check_patient(msg.patient, body_where)
    return out


def check_receipt(msg: ReceiptMessage) -> list[Issue]:
    out = check_identifier("GGOP-E301", msg.envelope.where, "Identifier", msg.envelope.identifier)
    out += check_identifier("GGOP-E302", msg.letter.where, "Identifier", msg.letter.identifier)
    out += check_date(msg.envelope.sent_date, True) + check_time(msg.envelope.sent_time, True)
    return out
