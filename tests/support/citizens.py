"""Messages about one citizen: generated G-GOPs and letters to one municipality, edited so
they name the same CPR number (and, when asked, a chosen address and authorisation date)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lxml import etree

from adapter.generate import GeneratedMessage, generate_messages

MUNICIPALITY_ROWS = {"0461": "0461,Odense,1083,Region Syddanmark", "0851": "0851,Aalborg,1081,Region Nordjylland",
                     "0101": "0101,København,1084,Region Hovedstaden"}


def _local(el) -> str:
    return etree.QName(el).localname


def _find(root, name: str, parent: str | None = None):
    for el in root.iter():
        if isinstance(el.tag, str) and _local(el) == name:
            up = el.getparent()
            if parent is None or (up is not None and _local(up) == parent):
                return el
    raise LookupError(name)


def generated(municipality: str, count: int, seed: int) -> list[GeneratedMessage]:
    """Generated messages, all to ``municipality``."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "municipalities.csv"
        csv.write_text("kommunekode,navn,regionskode,regionsnavn\n" + MUNICIPALITY_ROWS[municipality] + "\n", "utf-8")
        return generate_messages(count, seed, municipalities_csv=csv)


def about(raw: bytes, cpr: str, *, street: str | None = None, written: str | None = None) -> bytes:
    """``raw`` about the citizen ``cpr``; ``street`` replaces the Patient's street,
    ``written`` (YYYY-MM-DD) the letter's authorisation date."""
    root = etree.fromstring(raw)
    _find(root, "CivilRegistrationNumber").text = cpr
    if street is not None:
        _find(root, "StreetName", parent="Patient").text = street
    if written is not None:
        _find(_find(root, "Authorisation"), "Date").text = written
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def sender_of(raw: bytes) -> str:
    return _find(etree.fromstring(raw), "EANIdentifier", parent="Sender").text or ""


def plans_and_letter(municipality: str, seed: int = 11) -> tuple[list[bytes], bytes]:
    """Two almen plans from two different hospitals and a letter, all to ``municipality``."""
    messages = generated(municipality, 40, seed)
    plans, senders = [], set()
    for m in messages:
        if m.kind == "ggop" and sender_of(m.xml) not in senders:
            plans.append(m.xml)
            senders.add(sender_of(m.xml))
        if len(plans) == 2:
            break
    letter = next(m.xml for m in messages if m.kind == "xdis91")
    return plans, letter


def cancelled(raw: bytes, envelope: str = "99999999999999") -> bytes:
    """The cancellation (``annulleretbrev``) of ``raw``: the same letter id in a new envelope."""
    root = etree.fromstring(raw)
    _find(_find(root, "Envelope"), "Identifier").text = envelope
    letter = _find(root, "Letter")
    try:
        status = _find(letter, "StatusCode")
    except LookupError:
        type_code = _find(letter, "TypeCode")
        status = etree.Element(etree.QName(etree.QName(type_code).namespace, "StatusCode"))
        type_code.addnext(status)
    status.text = "annulleretbrev"
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")
