"""The stored MedCom XML as the console shows it: read with the adapter's hardened reader,
patient data masked unless the viewer's role may see it, line numbers as in the original.

Kept readable: the envelope and letter (ids, dates, codes), the parties (hospital,
municipality, GP and copy receivers, with the hospital's signer), the plan type and the
consent answer. Every other text (the patient, relatives, the plan's sections, diagnoses,
ICF, journal excerpts, dates of the stay, letter texts and subjects) becomes ``•••`` with its
line breaks kept, so an issue's line still points at its element.
"""

from __future__ import annotations

import re

from lxml import etree  # type: ignore[import-untyped]

from adapter.errors import InputError
from adapter.medcom.nodes import local
from adapter.medcom.xmlsafe import read_xml

MASK = "•••"
KEEP_UNDER = frozenset({"Envelope", "Letter", "Sender", "Receiver", "CCReceiver", "GPCCReceiver", "ResultReceiver",
                        "Location", "ContactCounty", "ContactMunicipality"})
KEEP_LEAVES = frozenset({"TypeOfRehabilitationPlan", "ConsentInformed", "Deselected", "Priority",
                         "EpisodeOfCareStatusCode", "RelationCode"})
NEVER = frozenset({"Patient", "Relatives", "Relative"})
_VISIBLE = re.compile(r"\S(?:[^\n]*\S)?")  # each line's text, one mask whatever its length


def _keep(el: etree._Element) -> bool:
    names = [local(a) for a in el.iterancestors()] + [local(el)]
    if any(n in NEVER for n in names):
        return local(el) in ("RelationCode", "EpisodeOfCareStatusCode")
    return local(el) in KEEP_LEAVES or any(n in KEEP_UNDER for n in names)


def _mask(text: str | None) -> str | None:
    return _VISIBLE.sub(MASK, text) if text else text


def stored_xml(raw: bytes, *, masked: bool, max_bytes: int) -> str | None:
    """The message as text, masked when asked; None when it cannot be read safely (then
    nothing of it is shown masked: GGOP-W701)."""
    try:
        doc = read_xml(raw, max_bytes=max_bytes)
    except InputError:
        return None
    root = doc.root
    if masked:
        for el in root.iter():
            element = isinstance(el.tag, str)
            if not element or not _keep(el):  # comments and processing instructions are masked too
                el.text = _mask(el.text)
            parent = el.getparent()
            if parent is not None and not _keep(parent):
                el.tail = _mask(el.tail)
    text = etree.tostring(root, encoding="unicode")
    return "\n" * max(0, (root.sourceline or 1) - 1) + text
