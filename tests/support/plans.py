"""Plans for rule tests: ``tests/data/rules/base-almen.xml.in`` (an almen plan for an adult
with a hip fracture and no sign of avanceret) with chosen fields replaced, read with the real
pipeline."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from adapter.medcom.model import GgopMessage
from adapter.pipeline import validate_bytes

DATA = Path(__file__).resolve().parents[1] / "data" / "rules"
BASE = DATA / "base-almen.xml.in"  # not *.xml: the golden tests convert every tests/data/**/*.xml
M104 = "urn:oio:medcom:municipality:1.0.4"
M100 = "urn:oio:medcom:municipality:1.0.0"
ADULT = "0103450017"  # born 1 March 1945



def _child(parent: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == name), None)


def _sub(parent: etree._Element, name: str, text: str | None = None, ns: str = M104) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    el.text = text
    return el


def ggop_xml(*, plan_type: str | None = "almen", discharge: str | None = "2026-03-02",
             discharge_time: str | None = "11:00", deadline: str | None = None, cpr: str | None = ADULT,
             texts: dict[str, str] | None = None, diagnoses: list[tuple[str, bool]] | None = None,
             icf: list[tuple[str, str]] | None = None, journal_comments: tuple[str, ...] = ()) -> bytes:
    """The base plan with these fields replaced. ``texts`` maps a G-GOP text element name
    (``PatientHealthSummary`` …) to its text; ``diagnoses`` is ``[(code, primary)]``;
    ``icf`` is ``[(code, gradient)]``. ``None`` removes a field."""
    root = etree.fromstring(BASE.read_bytes())
    plan = _child(root, "RehabilitationPlan")
    pt = _child(plan, "TypeOfRehabilitationPlan")
    if plan_type is None:
        plan.remove(pt)
    else:
        pt.text = plan_type
    dl = _child(plan, "RehabilitationDeadline")
    if deadline is None:
        plan.remove(dl)
    else:
        dl.text = deadline
    contact = _child(plan, "CurrentHospitalContact")
    end = _child(contact, "ExpectedEnd")
    if discharge is None:
        contact.remove(end)
    else:
        _child(end, "Date").text = discharge
        if discharge_time is None:
            end.remove(_child(end, "Time"))
        else:
            _child(end, "Time").text = discharge_time
    patient = _child(plan, "Patient")
    cpr_el = _child(patient, "CivilRegistrationNumber")
    if cpr is None:
        patient.remove(cpr_el)
    else:
        cpr_el.text = cpr
    diags = _child(plan, "ICD10Diagnoses")
    for name, text in (texts or {}).items():
        el = _child(plan, name)
        if el is None:
            el = etree.Element(f"{{{M104}}}{name}")
            diags.addprevious(el)
        el.text = text
    if diagnoses is not None:
        for c in list(diags):
            diags.remove(c)
        group = _sub(diags, "ICD10Diagnose")
        for code, primary in sorted(diagnoses, key=lambda d: not d[1]):
            d = _sub(group, "PrimaryDiagnosis" if primary else "SecondaryDiagnosis")
            _sub(d, "Code", code)
            _sub(d, "TypeCode", "SKSdiagnosekode")
            _sub(d, "Text", "Diagnose")
    anchor = diags
    if icf:
        cls = etree.Element(f"{{{M104}}}ICFClassifications")
        anchor.addnext(cls)
        anchor = cls
        for code, gradient in icf:
            c = _sub(cls, "ICFClassification")
            ic = _sub(c, "ICFCode")
            _sub(ic, "Code", code)
            _sub(ic, "TypeCode", "ICFKode")
            g = _sub(c, "ICFGradient")
            _sub(g, "Code", gradient)
            _sub(g, "TypeCode", "ICFKode")
    for comment in journal_comments:
        j = etree.Element(f"{{{M104}}}JournalExcerpt")
        anchor.addnext(j)
        anchor = j
        _sub(j, "TypeOfExcerpt", "Uddrag af epikrise")
        _sub(j, "Comment", comment)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def ggop(**kw) -> GgopMessage:
    msg = validate_bytes(ggop_xml(**kw)).message
    assert isinstance(msg, GgopMessage)
    return msg
