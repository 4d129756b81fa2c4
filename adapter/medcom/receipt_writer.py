"""MedCom XML receipts the adapter sends back: XCTL03 positive, XCTL02 negative.

Receipts stay in the 2005/08/07 namespace whatever the letter's namespace. The
receipt is a pure function of the original message, the issues and the receipt
time, so a resent duplicate gets the byte-identical receipt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from lxml import etree  # type: ignore[import-untyped]  # no hints in lxml; lxml-stubs mistypes it

from adapter.danish_time import DANISH_TIME
from adapter.errors import Issue
from adapter.medcom.model import NS_2005

MAX_REFUSE_TEXT = 400


@dataclass(frozen=True)
class ReceiptAddress:
    """What a receipt needs to know about the message it answers."""

    envelope_identifier: str
    letter_identifier: str | None
    version_code: str | None
    sender_ean: str  # the original sender, who receives the receipt
    receiver_ean: str  # the original receiver, on whose behalf the adapter answers


def receipt_ids(addr: ReceiptAddress, kind: str) -> tuple[str, str]:
    digest = hashlib.sha256("|".join([kind, addr.sender_ean, addr.envelope_identifier,
                                      addr.letter_identifier or ""]).encode()).hexdigest().upper()
    return "K" + digest[:13], "B" + digest[13:26]


def _el(parent, name: str, text: str | None = None):
    e = etree.SubElement(parent, f"{{{NS_2005}}}{name}")
    if text is not None:
        e.text = text
    return e


def refuse_text(issues: list[Issue]) -> str:
    errors = [i for i in issues if i.is_error] or issues
    text = "; ".join(f"{i.code} {i.location.render()}: {i.message}" for i in errors)
    return text if len(text) <= MAX_REFUSE_TEXT else text[: MAX_REFUSE_TEXT - 3] + "..."


def build_receipt(addr: ReceiptAddress, at: dt.datetime, issues: list[Issue] | None = None,
                  refuse_code: str | None = None) -> bytes:
    """XCTL03 when ``refuse_code`` is None, else XCTL02 with that code and the issues as text."""
    positive = refuse_code is None
    kind = "PositiveReceipt" if positive else "NegativeReceipt"
    version, stat = ("XC0330Q", "XCTL03") if positive else ("XC0230Q", "XCTL02")
    env_id, letter_id = receipt_ids(addr, stat)
    local = at.astimezone(DANISH_TIME)

    root = etree.Element(f"{{{NS_2005}}}Emessage", nsmap={None: NS_2005})
    env = _el(root, "Envelope")
    sent = _el(env, "Sent")
    _el(sent, "Date", local.strftime("%Y-%m-%d"))
    _el(sent, "Time", local.strftime("%H:%M"))
    _el(env, "Identifier", env_id)
    _el(env, "AcknowledgementCode", "minuspositivkvitt")
    body = _el(root, kind)
    letter = _el(body, "Letter")
    _el(letter, "Identifier", letter_id)
    _el(letter, "VersionCode", version)
    _el(letter, "StatisticalCode", stat)
    _el(_el(body, "Sender"), "EANIdentifier", addr.receiver_ean)
    _el(_el(body, "Receiver"), "EANIdentifier", addr.sender_ean)
    orig = _el(body, "OriginalEmessage")
    _el(orig, "OriginalEnvelopeIdentifier", addr.envelope_identifier)
    _el(_el(orig, "OriginalSender"), "EANIdentifier", addr.sender_ean)
    _el(_el(orig, "OriginalReceiver"), "EANIdentifier", addr.receiver_ean)
    if addr.letter_identifier is None:
        if not positive:
            _el(orig, "RefuseCode", refuse_code)
            _el(orig, "RefuseText", refuse_text(issues or []))
    else:
        ol = _el(orig, "OriginalLetter")
        _el(ol, "OriginalLetterIdentifier", addr.letter_identifier)
        _el(ol, "OriginalVersionCode", (addr.version_code or "GGOP100")[:7])
        if not positive:
            _el(ol, "RefuseCode", refuse_code)
            _el(ol, "RefuseText", refuse_text(issues or []))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


_SALVAGE = {
    "envelope": re.compile(rb"<(?:\w+:)?Envelope\b.*?<(?:\w+:)?Identifier>\s*([^<\s]{1,14})\s*<", re.S),
    "letter": re.compile(rb"<(?:\w+:)?Letter\b.*?<(?:\w+:)?Identifier>\s*([^<\s]{1,14})\s*<", re.S),
    "version": re.compile(rb"<(?:\w+:)?VersionCode>\s*([^<\s]{1,7})\s*<"),
    "sender": re.compile(rb"<(?:\w+:)?Sender\b.*?<(?:\w+:)?EANIdentifier>\s*([0-9]{13})\s*<", re.S),
    "receiver": re.compile(rb"<(?:\w+:)?Receiver\b.*?<(?:\w+:)?EANIdentifier>\s*([0-9]{13})\s*<", re.S),
}
_SENT = re.compile(rb"<(?:\w+:)?Sent\b.*?<(?:\w+:)?Date>\s*([0-9]{4}-[0-9]{2}-[0-9]{2})\s*<"
                   rb"(?:.*?<(?:\w+:)?Time>\s*([0-9]{2}:[0-9]{2})\s*<)?", re.S)


def salvage_sent(raw: bytes) -> tuple[str, str | None] | None:
    """The envelope's Sent date (and time) of a message that could not be parsed."""
    m = _SENT.search(raw[:200_000])
    if m is None:
        return None
    return m.group(1).decode("ascii"), m.group(2).decode("ascii") if m.group(2) else None


def salvage_address(raw: bytes) -> ReceiptAddress | None:
    """Best effort for a message that could not be parsed: find the ids a receipt needs."""
    found = {k: (m.group(1).decode("ascii", "replace") if (m := rx.search(raw[:200_000])) else None)
             for k, rx in _SALVAGE.items()}
    if not (found["envelope"] and found["sender"] and found["receiver"]):
        return None
    return ReceiptAddress(found["envelope"], found["letter"], found["version"], found["sender"], found["receiver"])
