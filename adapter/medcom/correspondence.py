"""Reader for XDIS91 correspondence letters (ClinicalEmail, XD9134L and XD9133L)."""

from __future__ import annotations

from adapter.medcom.letter_parts import (
    read_envelope,
    read_letter,
    read_party,
    read_patient,
    where,
)
from adapter.medcom.model import (
    CorrespondenceMessage,
    Envelope,
    Letter,
    Reference,
    Where,
)
from adapter.medcom.nodes import Node


def read_correspondence(root: Node, namespace: str, letter_node: Node) -> CorrespondenceMessage:
    nss = frozenset({namespace})
    root = Node(root.el, root.xpath, nss)
    body = Node(letter_node.el, letter_node.xpath, nss)
    env_node = root.child("Envelope")
    envelope = read_envelope(env_node) if env_node is not None else Envelope(Where(root.line, root.xpath + "/Envelope"))
    ln = body.child("Letter")
    letter = read_letter(ln) if ln is not None else Letter(Where(body.line, body.xpath + "/Letter"))
    sender = body.child("Sender")
    receiver = body.child("Receiver")
    patient = body.child("Patient")
    msg = CorrespondenceMessage(
        namespace=namespace,
        envelope=envelope,
        letter=letter,
        sender=read_party(sender, "sender") if sender is not None else None,
        receiver=read_party(receiver, "receiver") if receiver is not None else None,
        patient=read_patient(patient) if patient is not None else None,
    )
    info = body.child("AdditionalInformation")
    if info is not None:
        msg.priority = info.text("Priority")
        msg.subject = info.text("Subject")
    for ci in body.children("ClinicalInformation"):
        for t in ci.children("Text01"):
            val = t.formatted()
            if val is not None:
                msg.texts.append(val)
    for r in body.children("Reference"):
        bin_node = r.child("BIN")
        msg.references.append(Reference(
            where=where(r),
            description=r.text("RefDescription"),
            url=r.text("URL"),
            bin_object_identifier=bin_node.text("ObjectIdentifier") if bin_node is not None else None,
            bin_object_code=bin_node.text("ObjectCode") if bin_node is not None else None,
            bin_extension_code=bin_node.text("ObjectExtensionCode") if bin_node is not None else None,
        ))
    return msg
