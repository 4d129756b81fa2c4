"""Reader for MedCom XML receipts (XCTL01 NegativeVansReceipt, XCTL02 NegativeReceipt,
XCTL03 PositiveReceipt), always in the 2005/08/07 namespace."""

from __future__ import annotations

from adapter.medcom.letter_parts import read_envelope, read_letter, where
from adapter.medcom.model import (
    NS_2005,
    Envelope,
    Letter,
    OriginalLetter,
    ReceiptMessage,
    Where,
)
from adapter.medcom.nodes import Node

RECEIPT_TYPES = {
    "NegativeVansReceipt": ("XCTL01", "XC0130Q"),
    "NegativeReceipt": ("XCTL02", "XC0230Q"),
    "PositiveReceipt": ("XCTL03", "XC0330Q"),
}


def read_receipt(root: Node, body: Node) -> ReceiptMessage:
    nss = frozenset({NS_2005})
    root = Node(root.el, root.xpath, nss)
    body = Node(body.el, body.xpath, nss)
    env_node = root.child("Envelope")
    ln = body.child("Letter")
    orig = body.child("OriginalEmessage")
    msg = ReceiptMessage(
        receipt_type=RECEIPT_TYPES[body.name][0],
        envelope=(
            read_envelope(env_node) if env_node is not None else Envelope(Where(root.line, root.xpath + "/Envelope"))
        ),
        letter=read_letter(ln) if ln is not None else Letter(Where(body.line, body.xpath + "/Letter")),
        sender_ean=body.text("Sender", "EANIdentifier"),
        receiver_ean=body.text("Receiver", "EANIdentifier"),
    )
    if orig is not None:
        msg.original_envelope_identifier = orig.text("OriginalEnvelopeIdentifier")
        msg.original_sender_ean = orig.text("OriginalSender", "EANIdentifier")
        msg.original_receiver_ean = orig.text("OriginalReceiver", "EANIdentifier")
        msg.refuse_code = orig.text("RefuseCode")
        msg.refuse_text = orig.formatted("RefuseText")
        for ol in orig.children("OriginalLetter"):
            msg.original_letters.append(OriginalLetter(
                where=where(ol),
                identifier=ol.text("OriginalLetterIdentifier"),
                version_code=ol.text("OriginalVersionCode"),
                refuse_code=ol.text("RefuseCode"),
                refuse_text=ol.formatted("RefuseText"),
            ))
    return msg
