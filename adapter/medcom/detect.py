"""Which MedCom message is this? Detection by namespace URI and local names only."""

from __future__ import annotations

from dataclasses import dataclass

from adapter.errors import Issue, UnsupportedMessageError, issue
from adapter.medcom.correspondence import read_correspondence
from adapter.medcom.ggop import NAMESPACES as GGOP_NAMESPACES
from adapter.medcom.ggop import read_ggop
from adapter.medcom.model import NS_2005, NS_2006, Message
from adapter.medcom.nodes import Node, local, ns
from adapter.medcom.receipts import RECEIPT_TYPES, read_receipt

XDIS91_VERSIONS = {NS_2006: "XD9134L", NS_2005: "XD9133L"}


@dataclass
class Parsed:
    message: Message
    kind: str  # ggop | xdis91 | xctl
    schema_key: str  # key into adapter/schemas/catalog.json
    warnings: list[Issue]


def parse_message(root_el) -> Parsed:
    """Turn a parsed XML root into a typed MedCom message, or raise UnsupportedMessageError."""
    name, namespace = local(root_el), ns(root_el)
    xpath = "/" + name
    if name != "Emessage":
        raise UnsupportedMessageError(issue("GGOP-E101", root_el.sourceline, xpath,
                                            "root element is not a MedCom Emessage"))
    if namespace not in (NS_2006, NS_2005, *GGOP_NAMESPACES):
        raise UnsupportedMessageError(issue("GGOP-E101", root_el.sourceline, xpath,
                                            f"namespace {namespace or '(none)'} is not supported"))
    root = Node.root(root_el, frozenset({namespace}))
    warnings: list[Issue] = []

    if namespace in GGOP_NAMESPACES:
        gnode = Node.root(root_el, GGOP_NAMESPACES)
        if gnode.child("RehabilitationPlan") is None:
            raise UnsupportedMessageError(issue("GGOP-E101", root_el.sourceline, xpath,
                                                "no RehabilitationPlan in the municipality namespace"))
        if len(gnode.children("RehabilitationPlan")) > 1:
            warnings.append(issue("GGOP-W104", root_el.sourceline, xpath))
        return Parsed(read_ggop(gnode), "ggop", "ggop", warnings)

    letters = [c for c in root_el if isinstance(c.tag, str) and local(c) != "Envelope"]
    if not letters:
        raise UnsupportedMessageError(issue("GGOP-E103", root_el.sourceline, xpath))
    first = letters[0]
    if len(letters) > 1:
        warnings.append(issue("GGOP-W104", root_el.sourceline, xpath))
    body_name = local(first)
    if ns(first) != namespace:
        raise UnsupportedMessageError(issue("GGOP-E101", first.sourceline, f"{xpath}/{body_name}",
                                            "letter element is in another namespace than the message"))
    body = Node(first, f"{xpath}/{body_name}", frozenset({namespace}))
    if body_name == "ClinicalEmail":
        key = "xdis91-2006" if namespace == NS_2006 else "xdis91-2005"
        return Parsed(read_correspondence(root, namespace, body), "xdis91", key, warnings)
    if body_name in RECEIPT_TYPES and namespace == NS_2005:
        return Parsed(read_receipt(root, body), "xctl", "xctl", warnings)
    raise UnsupportedMessageError(issue("GGOP-E101", first.sourceline, f"{xpath}/{body_name}",
                                        f"letter type {body_name} is not handled"))
