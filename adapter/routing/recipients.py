"""Who is owed an accepted message, and the Tasks a letter creates. Pure: no I/O, no clock.

Recipient keys are strings an operator can write in ``adapter/mappings/routing.yaml``:
``municipality:0461``, ``gln:<13 digits>``, ``ydernummer:<digits>``, ``sor:<digits>``,
``region:<DAGI code>``. A recipient also carries the other keys the same party can be
routed by (``addresses``), so a route keyed by a GP's ydernummer finds the copy addressed
to its GLN.

G-GOP (``GgopMessage``):

- ``primary``: the home municipality (Receiver with IdentifierCode ``kommunenummer``), else
  the Receiver's GLN.
- ``gp``: the GP copy, only when ConsentInformed is ``ja``, the copy was not declined
  (``GPCCReceiver/Deselected``) and the GP has a valid GLN (``gln:``) or else a ydernummer.
- ``hospital``: for ``specialiseret`` the hospital that trains: the place the plan names for
  the follow-up (``HospitalAmbulatoryControl/Location``), else the sender.
- ``cc``: every other CCReceiver with a valid GLN, only when ConsentInformed is ``ja``
  (the patient's consent covers the plan being sent on).
- ``region``: for ``rehabilitering`` when the deadline rules made the region the owner
  (from ``rehabilitering_region_from``; the conversion's trace says so), the region of the
  home municipality from ``adapter/mappings/municipalities.csv`` on the plan's day 0, or the
  region that replaced it (the rules' ``region_mergers``, in the trace): ``region:<DAGI code>``,
  or ``region:<key>`` while the new region has no published code.

XDIS91 (``CorrespondenceMessage``): the Receiver (municipality, else GLN) as ``primary``.
A letter with the children's fixed heading creates a ``visitate-child`` Task, a letter that
asks for a reply an ``answer-letter`` Task (``adapter/mappings/letter-tasks.yaml``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from adapter.codes import CodeTables
from adapter.config_files import At, as_choice, as_mapping, as_str, as_str_list, check_keys, read_yaml
from adapter.data import MAPPINGS_DIR
from adapter.fhir.context import resource_id
from adapter.medcom.identifiers import gln_is_valid, normalise_municipality_code
from adapter.medcom.model import CorrespondenceMessage, GgopMessage, Party
from adapter.rules.model import LEGAL_KINDS

LETTER_TASKS_FILE = MAPPINGS_DIR / "letter-tasks.yaml"

PRIMARY, GP, HOSPITAL, CC, REGION = "primary", "gp", "hospital", "cc", "region"
_DIGITS = re.compile(r"^[0-9]+$")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Recipient:
    key: str
    role: str
    addresses: tuple[str, ...] = ()  # other keys the same party can be routed by

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key, *self.addresses)


def _v(val) -> str | None:
    if val is None or val.value is None:
        return None
    text = str(val.value).strip()
    return text or None


def party_keys(party: Party | None) -> list[str]:
    """Every key a party can be routed by, most specific first; a GLN only when it passes
    the GS1 check (a bad GLN is kept in the FHIR resources, but routes nothing)."""
    if party is None:
        return []
    keys: list[str] = []
    code = (_v(party.identifier_code) or "").lower()
    ident = _v(party.identifier)
    if code == "kommunenummer" and ident:
        municipality = normalise_municipality_code(ident)
        if municipality:
            keys.append(f"municipality:{municipality}")
    ean = _v(party.ean)
    if ean and gln_is_valid(ean):
        keys.append(f"gln:{ean}")
    if ident and _DIGITS.match(ident):
        if code == "ydernummer":
            keys.append(f"ydernummer:{ident}")
        elif code == "sorkode" and len(ident) >= 11:
            keys.append(f"sor:{ident}")
        elif code == "lokationsnummer" and gln_is_valid(ident) and f"gln:{ident}" not in keys:
            keys.append(f"gln:{ident}")
    return keys


def _recipient(role: str, keys: list[str]) -> Recipient | None:
    return Recipient(keys[0], role, tuple(keys[1:])) if keys else None


def consent_given(msg: GgopMessage) -> bool:
    return (_v(msg.consent) or "").lower() == "ja"


def region_owns(trace: dict | None) -> bool:
    """True when the deadline rules gave the region a plan's Tasks (rehabilitering from the
    reform date): the date rule's verdict, read from the conversion's trace."""
    return any(d.get("owner") == "region" for d in (trace or {}).get("deadlines", []))


def _primary(msg) -> Recipient | None:
    keys = party_keys(msg.receiver)
    if keys and keys[0].startswith("municipality:"):
        return _recipient(PRIMARY, keys)
    # No municipality code: the receiver's GLN (for letters even one failing the check
    # digit, so the row is visible and an operator can route that exact number).
    ean = _v(msg.receiver.ean) if msg.receiver is not None else None
    if not keys and ean:
        keys = [f"gln:{ean}"]
    return _recipient(PRIMARY, keys)


def plan_recipients(msg: GgopMessage, trace: dict | None, tables: CodeTables) -> list[Recipient]:
    out: list[Recipient | None] = [_primary(msg)]
    consent = consent_given(msg)
    if consent and msg.gp is not None and msg.gp_deselected is None:
        keys = party_keys(msg.gp)
        gln = [k for k in keys if k.startswith("gln:")]
        yder = [k for k in keys if k.startswith("ydernummer:")]
        out.append(_recipient(GP, gln + yder))
    plan_type = (_v(msg.plan_type) or "").lower()
    if plan_type == "specialiseret":
        trains = party_keys(msg.ambulatory_location)
        out.append(_recipient(HOSPITAL, trains or party_keys(msg.sender)))
    if consent:
        for cc in msg.cc_receivers:
            keys = party_keys(cc)
            if any(k.startswith("gln:") for k in keys):
                gln = [k for k in keys if k.startswith("gln:")]
                out.append(_recipient(CC, gln + [k for k in keys if k not in gln]))
    if plan_type == "rehabilitering" and region_owns(trace):
        primary = out[0]
        code = primary.key.split(":", 1)[1] if primary and primary.key.startswith("municipality:") else None
        municipality = tables.municipalities.get(code or "")
        if municipality is not None:
            region = municipality.region_code
            merged = next((m for m in (trace or {}).get("regionMergers", []) if region in m["regions"]), None)
            out.append(Recipient(f"region:{(merged['code'] or merged['key']) if merged else region}", REGION))
    return _unique(out)


def letter_recipients(msg: CorrespondenceMessage) -> list[Recipient]:
    return _unique([_primary(msg)])


def _unique(items: list[Recipient | None]) -> list[Recipient]:
    """One row per key (the outbox is unique on message and recipient): the first role wins."""
    seen: set[str] = set()
    out = []
    for r in items:
        if r is None or r.key in seen:
            continue
        seen.add(r.key)
        out.append(Recipient(r.key, r.role, tuple(a for a in r.addresses if a not in seen)))
    return out


def recipients_of(message, trace: dict | None, tables: CodeTables) -> list[Recipient]:
    if isinstance(message, GgopMessage):
        return plan_recipients(message, trace, tables)
    if isinstance(message, CorrespondenceMessage):
        return letter_recipients(message)
    return []


# --------------------------------------------------------------------------------------------
# Letters that become Tasks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterRule:
    rule: str
    task: str
    description: str
    legal_basis: tuple[tuple[str, str | None], ...] = ()  # ("document, section", kind)


@dataclass(frozen=True)
class LetterTerms:
    child: LetterRule
    heading: str
    reply: LetterRule
    reply_terms: tuple[str, ...]
    reply_except: tuple[str, ...]


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


@lru_cache(maxsize=4)
def load_letter_terms(path: Path = LETTER_TASKS_FILE) -> LetterTerms:
    """The letter rules; a broken file is a GGOP-E501 naming the file, key and line."""

    doc, at = read_yaml(Path(path))
    check_keys(doc, at, ("child_heading", "reply_requested"))

    def rule(name: str, required: tuple[str, ...], optional: tuple[str, ...]) -> tuple[LetterRule, dict, At]:
        here = at.key(doc, name)
        m = as_mapping(doc[name], here)
        check_keys(m, here, ("rule", "task", "description", *required), ("legal_basis", *optional))
        basis: list[tuple[str, str | None]] = []
        if "legal_basis" in m:
            b_at = here.key(m, "legal_basis")
            items = m["legal_basis"] if isinstance(m["legal_basis"], list) else [m["legal_basis"]]
            for i, raw in enumerate(items):
                i_at = b_at.item(items, i) if isinstance(m["legal_basis"], list) else b_at
                b = as_mapping(raw, i_at)
                check_keys(b, i_at, ("document", "section"), ("kind",))
                kind = as_choice(b["kind"], i_at.key(b, "kind"), LEGAL_KINDS) if "kind" in b else None
                document = as_str(b["document"], i_at.key(b, "document"))
                basis.append((f"{document}, {as_str(b['section'], i_at.key(b, 'section'))}", kind))
        return LetterRule(as_str(m["rule"], here.key(m, "rule")), as_str(m["task"], here.key(m, "task")),
                          as_str(m["description"], here.key(m, "description")), tuple(basis)), m, here

    child, cm, c_at = rule("child_heading", ("heading",), ())
    reply, rm, r_at = rule("reply_requested", ("terms",), ("except",))
    return LetterTerms(
        child=child, heading=_norm(as_str(cm["heading"], c_at.key(cm, "heading"))).rstrip(".:"),
        reply=reply, reply_terms=tuple(_norm(t) for t in as_str_list(rm["terms"], r_at.key(rm, "terms"))),
        reply_except=tuple(_norm(t) for t in as_str_list(rm["except"], r_at.key(rm, "except")))
        if "except" in rm else ())


def _first_line(msg: CorrespondenceMessage) -> str:
    for text in msg.texts:
        for line in (text.value or "").splitlines():
            if line.strip():
                return line
    return ""


def letter_task_rules(msg: CorrespondenceMessage, terms: LetterTerms) -> list[LetterRule]:
    """Which Task rules a letter meets: the children's heading and/or a reply request."""
    out = []
    subject = _norm(_v(msg.subject) or "").rstrip(".:")
    first = _norm(_first_line(msg)).rstrip(".:")
    if terms.heading and terms.heading in (subject, first):
        out.append(terms.child)
    everything = _norm(" ".join([_v(msg.subject) or ""] + [t.value or "" for t in msg.texts]))
    if any(t in everything for t in terms.reply_terms) and not any(t in everything for t in terms.reply_except):
        out.append(terms.reply)
    return out


def letter_tasks(msg: CorrespondenceMessage, bundle: dict, tables: CodeTables,
                 terms: LetterTerms | None = None) -> list[dict]:
    """The Task resources a letter creates, with in-Bundle references (``urn:uuid:``) like
    every other entry of its transaction Bundle; ids are deterministic (sender, letter, code)."""
    terms = terms or load_letter_terms()
    rules = letter_task_rules(msg, terms)
    if not rules:
        return []
    party, letter_id = msg.sender, msg.letter.identifier
    assert party is not None and party.ean is not None and letter_id is not None, \
        "validation rejects a letter without Sender/EANIdentifier or Letter/Identifier (GGOP-E317, E310, E302)"
    sender, letter = party.ean.value, letter_id.value
    receiver = msg.receiver.ean.value if msg.receiver is not None and msg.receiver.ean is not None else None

    def ref(role: str) -> dict | None:
        """The entry playing ``role``: the Patient, the Communication, or the Organization the
        sender's (receiver's) GLN names; their ids come from identifiers, not from the letter."""
        for e in bundle["entry"]:
            res = e["resource"]
            if (role == "patient" and res["resourceType"] == "Patient") \
                    or (role == "communication" and res["resourceType"] == "Communication") \
                    or (role in ("sender", "receiver") and res["resourceType"] == "Organization" and any(
                        i.get("value") == (sender if role == "sender" else receiver)
                        for i in res.get("identifier", []))):
                return {"reference": e["fullUrl"]}
        return None

    input_system = tables.system_url("task-input-types")

    def task_input(code: str, value: str) -> dict:
        return {"type": {"coding": [{"system": input_system, "code": code,
                                     "display": tables.text(code, "task-input-types")}]}, "valueString": value}

    out = []
    for r in rules:
        inputs = [task_input("rule-id", r.rule)]
        inputs += [task_input("legal-basis", text + (f" ({tables.text(f'legal-kind-{kind}')})" if kind else ""))
                   for text, kind in r.legal_basis]
        task = {
            "resourceType": "Task",
            "id": resource_id(sender, letter, f"task:{r.task}"),
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": tables.system_url("task-codes"), "code": r.task,
                                 "display": tables.text(r.task, "task-codes")}]},
            "description": r.description,
            "focus": ref("communication"),
            "for": ref("patient"),
            "authoredOn": bundle.get("timestamp"),
            "requester": ref("sender"),
            "owner": ref("receiver"),
            "input": inputs,
        }
        out.append({k: v for k, v in task.items() if v is not None})
    return out


def with_tasks(bundle: dict, tasks: list[dict]) -> dict:
    """The transaction Bundle with the Tasks added as PUT entries (a new dict)."""
    if not tasks:
        return bundle
    ids = {t["id"] for t in tasks}
    entries = [e for e in bundle["entry"] if e["resource"].get("id") not in ids]
    entries += [{"fullUrl": f"urn:uuid:{t['id']}", "resource": t,
                 "request": {"method": "PUT", "url": f"Task/{t['id']}"}} for t in tasks]
    return {**bundle, "entry": entries}
