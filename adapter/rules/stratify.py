"""Propose basal or avanceret for an almen plan, with the rules that fired and why.

    proposal = stratify(msg, load_rules(), at=date(2026, 3, 2))

Decision support only: a therapist decides (S0), so ``confirmed`` is always False here. The
rules and their combination come from ``adapter/mappings/stratification.yaml`` (see that file for the
predicate vocabulary). Pure: no clock, no I/O.

Evidence never carries the patient's free text: a text match gives the rule's *term* and the
XPath of the element; a diagnosis gives its code; an ICF match its code and gradient; the age
rule the age in whole years.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from types import MappingProxyType

from adapter.danish_time import sane_date
from adapter.medcom.model import GgopMessage, IcfClassification
from adapter.medcom.nodes import Val
from adapter.rules.model import (
    PLAN_TYPES,
    Condition,
    Evidence,
    FiredRule,
    RuleSet,
    StratificationProposal,
    StratificationRules,
    TextVocabulary,
)

__all__ = ["birth_date_from_cpr", "discharge_date", "patient_age", "plan_type_of", "stratify"]

_CLAUSE_BREAKS = ".,;:!?\n"
_WORD = re.compile(r"\w+")
_CPR = re.compile(r"^(\d{2})(\d{2})(\d{2})-?(\d)(\d{3})$")
_ICD10_BARE = re.compile(r"^[A-Z][0-9]")


# --------------------------------------------------------------------------------------------
# Facts read from the message
# --------------------------------------------------------------------------------------------


def plan_type_of(msg: GgopMessage) -> str | None:
    """The plan type in lower case, or None when it is missing or not one of the three."""
    if msg.plan_type is None:
        return None
    value = msg.plan_type.value.strip().lower()
    return value if value in PLAN_TYPES else None


def discharge_date(msg: GgopMessage) -> date | None:
    """Day 0: ``CurrentHospitalContact/ExpectedEnd/Date`` (Danish local date), if readable."""
    end = msg.contact_end
    if end is None or end.date is None:
        return None
    return sane_date(end.date.value.strip())


def birth_date_from_cpr(cpr: str) -> date | None:
    """Birth date from a CPR number's date part and 7th digit (century), or None.

    Century (domain-rules §5.2): 7th digit 0-3 → 1900s; 4 or 9 → 2000s when YY ≤ 36, else
    1900s; 5-8 → 2000s when YY ≤ 57, else 1800s. No modulus-11 check.
    """
    m = _CPR.match(cpr.strip())
    if not m:
        return None
    dd, mm, yy, d7 = int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4))
    if d7 <= 3:
        century = 1900
    elif d7 in (4, 9):
        century = 2000 if yy <= 36 else 1900
    else:
        century = 2000 if yy <= 57 else 1800
    try:
        return date(century + yy, mm, dd)
    except ValueError:
        return None


def patient_age(msg: GgopMessage, on: date) -> int | None:
    """Age in whole years on ``on``, from the CPR number; None when unknown."""
    if msg.patient is None or msg.patient.cpr is None:
        return None
    born = birth_date_from_cpr(msg.patient.cpr.value)
    if born is None or born > on:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _texts(msg: GgopMessage) -> dict[str, list[Val]]:
    single = {
        "AbilityAtDischargeSummary": msg.ability_summary,
        "AbilityAtDischargeExtended": msg.ability_extended,
        "RehabilitationNeedAndPotential": msg.need_and_potential,
        "PatientHealthSummary": msg.health_summary,
        "PatientSafetyAspects": msg.patient_safety,
        "PracticalInformation": msg.practical_information,
        "InformationForPatientAndRelatives": msg.information_for_patient,
        "ICD10DiagnosesText": msg.diagnosis_text,
    }
    out = {k: [v] for k, v in single.items() if v is not None and v.value}
    comments = [j.comment for j in msg.journal_excerpts if j.comment is not None and j.comment.value]
    if comments:
        out["JournalExcerpt/Comment"] = comments
    return out


def _normal_sks(code: str) -> str:
    c = code.strip().upper().replace(".", "").replace(" ", "")
    # A bare ICD-10 code ("I63.9") becomes its SKS D-code ("DI639").
    return "D" + c if _ICD10_BARE.match(c) else c


class _Facts:
    def __init__(self, msg: GgopMessage, vocab: TextVocabulary, on: date):
        self.msg = msg
        self.vocab = vocab
        self.plan_type = plan_type_of(msg)
        self.age_on = discharge_date(msg) or on
        self.age = patient_age(msg, self.age_on)
        self.texts = _texts(msg)
        self.lowered = {id(v): v.value.lower() for vals in self.texts.values() for v in vals}
        self._sks: dict[str, str] = {}  # diagnosis code as written → normalised, read once per message

    def sks(self, code: str) -> str:
        found = self._sks.get(code)
        if found is None:
            found = self._sks[code] = _normal_sks(code)
        return found


# --------------------------------------------------------------------------------------------
# Text matching
# --------------------------------------------------------------------------------------------


def _negated(text: str, start: int, vocab: TextVocabulary) -> bool:
    word_start = start
    while word_start > 0 and text[word_start - 1].isalnum():
        word_start -= 1
    if word_start < start and text[word_start:start] in vocab.negating_prefixes:
        return True
    clause_start = max(text.rfind(ch, 0, word_start) for ch in _CLAUSE_BREAKS) + 1
    before = _WORD.findall(text[clause_start:word_start])
    window = before[-vocab.negation_window_words:] if vocab.negation_window_words else []
    return any(w in vocab.negation_words for w in window)


def mentions(text: str, term: str, vocab: TextVocabulary) -> bool:
    """True when ``term`` occurs in ``text`` (both lower case) and is not negated.

    The term must start a word, or end a compound: inside a word it counts only when the rest
    of the word is an inflection ending (``vocab.inflection_endings``), so
    "urinvejsinfektionen" mentions "infektion" but "gangstativ" does not mention "angst". A
    term of three letters or fewer must be a whole word.
    """
    whole_word = len(term) <= 3
    pos = text.find(term)
    while pos >= 0:
        end = pos + len(term)
        word_start = pos
        while word_start > 0 and text[word_start - 1].isalnum():
            word_start -= 1
        word_end = end
        while word_end < len(text) and text[word_end].isalnum():
            word_end += 1
        rest = text[end:word_end]
        if whole_word:
            placed = word_start == pos and not rest
        else:
            placed = word_start == pos or rest == "" or rest in vocab.inflection_endings
        if placed and not _negated(text, pos, vocab):
            return True
        pos = text.find(term, pos + 1)
    return False


# --------------------------------------------------------------------------------------------
# Predicates: each returns (holds, evidence explaining the outcome)
# --------------------------------------------------------------------------------------------

_Result = tuple[bool, tuple[Evidence, ...]]
_Fired = dict[str, tuple[bool, tuple[Evidence, ...]]]


def _ev(input_: str, val: Val | None, matched: str, detail: str, label: str | None) -> Evidence:
    return Evidence(input_, val.xpath if val else "", val.line if val else None, matched, detail, label)


def _plan_type_in(c: Condition, f: _Facts, _: _Fired) -> _Result:
    val = f.msg.plan_type
    ok = f.plan_type in c.params["plan_types"]
    return ok, (_ev("TypeOfRehabilitationPlan", val, f.plan_type or "", f"plan type {f.plan_type}", c.label),)


def _diagnosis_prefix(c: Condition, f: _Facts, _: _Fired) -> _Result:
    which = c.params["which"]
    out = []
    for d in f.msg.diagnoses:
        if d.code is None or (which == "primary" and not d.primary) or (which == "secondary" and d.primary):
            continue
        code = f.sks(d.code.value)
        prefixes = c.params["prefixes"]
        if isinstance(prefixes, tuple) and not code.startswith(prefixes):
            continue  # none of them (the same answer as the search below, at once)
        prefix = next((p for p in prefixes if code.startswith(p)), None)
        if prefix:
            source = f" (list {c.params['list']})" if c.params.get("list") else ""
            kind = "primary" if d.primary else "secondary"
            out.append(_ev("ICD10Diagnoses", d.code, code, f"{kind} diagnosis, prefix {prefix}{source}", c.label))
    return bool(out), tuple(out)


def _gradient(icf: IcfClassification) -> int | None:
    g = icf.gradient.code.value.strip() if icf.gradient is not None and icf.gradient.code is not None else ""
    return int(g) if g.isdigit() and len(g) == 1 else None


def _icf_code(icf: IcfClassification) -> str:
    return icf.code.code.value.strip().lower() if icf.code is not None and icf.code.code is not None else ""


def _icf_gradient(c: Condition, f: _Facts, _: _Fired) -> _Result:
    out = []
    for icf in f.msg.icf:
        code, g = _icf_code(icf), _gradient(icf)
        if g is None or icf.gradient is None or not code.startswith(c.params["code_prefixes"]) or g < c.params["min"]:
            continue
        out.append(_ev("ICFClassifications", icf.gradient.code, code, f"gradient {g} >= {c.params['min']}", c.label))
    return bool(out), tuple(out)


def _icf_chapters(c: Condition, f: _Facts, _: _Fired) -> _Result:
    chapters: dict[str, Evidence] = {}
    for icf in f.msg.icf:
        code, g = _icf_code(icf), _gradient(icf)
        if icf.code is None or len(code) < 2 or code[0] not in c.params["components"] or not code[1].isdigit():
            continue
        if (g is None and c.params["gradient_min"] > 0) or (g is not None and g < c.params["gradient_min"]):
            continue
        chapter = code[:2]
        val = icf.code.code
        chapters.setdefault(chapter, _ev("ICFClassifications", val, code,
                                         f"chapter {chapter}, gradient {g if g is not None else '-'}", c.label))
    ok = len(chapters) >= c.params["min"]
    return ok, tuple(chapters[k] for k in sorted(chapters)) if ok else ()


def _text_mentions(c: Condition, f: _Facts, _: _Fired) -> _Result:
    out = []
    for field_name in c.params["fields"]:
        for val in f.texts.get(field_name, ()):
            text = f.lowered[id(val)]
            for term in c.params["terms"]:
                if term in text and mentions(text, term, f.vocab):
                    out.append(_ev(field_name, val, term, "term", c.label))
    return bool(out), tuple(out)


def _text_domains(c: Condition, f: _Facts, _: _Fired) -> _Result:
    found: list[Evidence] = []
    for name, terms in c.params["domains"]:
        hit = next(((field_name, val, term)
                    for field_name in c.params["fields"] for val in f.texts.get(field_name, ())
                    for term in terms if term in f.lowered[id(val)] and mentions(f.lowered[id(val)], term, f.vocab)),
                   None)
        if hit:
            found.append(_ev(hit[0], hit[1], hit[2], f"life domain {name}", c.label))
    ok = len(found) >= c.params["min"]
    return ok, tuple(found) if ok else ()


def _age_below(c: Condition, f: _Facts, _: _Fired) -> _Result:
    if f.age is None:
        return False, ()
    cpr = f.msg.patient.cpr if f.msg.patient else None
    years = c.params["years"]
    ok = f.age < years
    return ok, (_ev("CivilRegistrationNumber", cpr, f"age {f.age}",
                    f"age {f.age} on {f.age_on.isoformat()} {'<' if ok else '>='} {years}", c.label),)


def _rules_fired_any(c: Condition, _: _Facts, fired: _Fired) -> _Result:
    return any(fired.get(r, (False,))[0] for r in c.params["rules"]), ()


def _rules_fired_none(c: Condition, _: _Facts, fired: _Fired) -> _Result:
    return not any(fired.get(r, (False,))[0] for r in c.params["rules"]), ()


_PREDICATES: Mapping[str, Callable[[Condition, _Facts, _Fired], _Result]] = MappingProxyType({
    "plan_type_in": _plan_type_in,
    "diagnosis_code_prefix_any": _diagnosis_prefix,
    "icf_gradient_at_least": _icf_gradient,
    "icf_chapters_at_least": _icf_chapters,
    "text_mentions_any": _text_mentions,
    "text_domains_at_least": _text_domains,
    "age_below": _age_below,
    "rules_fired_any": _rules_fired_any,
    "rules_fired_none": _rules_fired_none,
})


def evaluate(cond: Condition, facts: _Facts, fired: _Fired) -> _Result:
    """Evaluate a condition. Evidence explains the outcome: for a true ``any`` the children that
    held, for a false ``all`` the children that failed, for ``not`` the child's evidence."""
    if cond.op == "not":
        ok, ev = evaluate(cond.children[0], facts, fired)
        return not ok, ev
    if cond.op in ("all", "any"):
        results = [evaluate(ch, facts, fired) for ch in cond.children]
        ok = all(r[0] for r in results) if cond.op == "all" else any(r[0] for r in results)
        relevant = [ev for r_ok, ev in results if r_ok == ok]
        return ok, tuple(e for ev in relevant for e in ev)
    return _PREDICATES[cond.op](cond, facts, fired)


# --------------------------------------------------------------------------------------------
# Combination
# --------------------------------------------------------------------------------------------


def stratify(msg: GgopMessage, rules: RuleSet, at: date) -> StratificationProposal | None:
    """Propose a level for ``msg`` with the rules in force on ``at``.

    Returns None only when the plan type is missing or unknown. For a specialiseret or
    rehabilitering plan the stop rule (R0) fires and ``level`` is None. The age rule uses the
    discharge date (``at`` when the discharge date is missing).
    """
    plan_type = plan_type_of(msg)
    if plan_type is None:
        return None
    srules: StratificationRules = rules.stratification
    comb = srules.combination
    facts = _Facts(msg, srules.vocabulary, at)
    in_force = [r for r in srules.rules if r.in_force(at)]
    by_id = {r.id: r for r in in_force}
    results: _Fired = {}

    stopped = None
    for rid in comb.stop_if_fired:
        if rid in by_id:
            results[rid] = evaluate(by_id[rid].when, facts, results)
            if results[rid][0]:
                stopped = rid
                break
    if stopped is None:
        for rule in in_force:
            if rule.id not in results:
                results[rule.id] = evaluate(rule.when, facts, results)

    fired_ids = [r.id for r in in_force if results.get(r.id, (False,))[0]]
    neutralised: dict[str, str] = {}
    for n in comb.neutralise:
        if n.by in fired_ids and n.rule in fired_ids:
            ev = results[n.rule][1]
            if ev and all(e.label in n.only_if_labels for e in ev):
                neutralised[n.rule] = n.by
    counted = [r for r in comb.count_rules if r in fired_ids and r not in neutralised]

    level: str | None
    strength: str | None
    decided_by: tuple[str, ...]
    if stopped:
        level, strength, decided_by = None, None, (stopped,)
    elif decisive := next(((rid, lvl) for rid, lvl in comb.decisive
                           if rid in fired_ids and rid not in neutralised), None):
        level, strength, decided_by = decisive[1], "strong", (decisive[0],)
    elif len(counted) >= comb.count_at_least:
        level, strength, decided_by = comb.count_level, "normal", tuple(counted)
    else:
        level, strength = comb.otherwise, "normal"
        decided_by = tuple(r for r in fired_ids
                           if by_id[r].effect.kind == "propose" and by_id[r].effect.level == comb.otherwise)

    fired = [
        FiredRule(
            rule_id=rid, title=by_id[rid].title, effect=by_id[rid].effect,
            reason_da=by_id[rid].reason_da, reason_en=by_id[rid].reason_en,
            legal_basis=by_id[rid].legal_basis, evidence=results[rid][1],
            counted=rid in counted, neutralised_by=neutralised.get(rid),
        )
        for rid in fired_ids
    ]
    not_fired = [r.id for r in in_force if r.id in results and not results[r.id][0]]
    not_evaluated = [r.id for r in srules.rules if r.id not in results]
    summary_da, summary_en = _summary(plan_type, level, stopped, decided_by, counted, comb.count_at_least,
                                      strength, srules)
    return StratificationProposal(
        plan_type=plan_type, level=level, strength=strength, decided_by=decided_by,
        fired=fired, not_fired=not_fired, not_evaluated=not_evaluated,
        counted=len(counted), threshold=comb.count_at_least,
        summary_da=summary_da, summary_en=summary_en, evaluated_on=at,
        confirmed=False, change_window_days=comb.change_window_days,
    )


def _summary(plan_type: str, level: str | None, stopped: str | None, decided_by: tuple[str, ...],
             counted: list[str], threshold: int, strength: str | None,
             srules: StratificationRules) -> tuple[str, str]:
    if stopped:
        return (f"Intet forslag: planens niveau ({plan_type}) er fastlagt lægefagligt ({stopped}).",
                f"No proposal: the plan's level ({plan_type}) is set medically ({stopped}).")
    confirm_da = " Forslaget skal bekræftes af en terapeut."
    confirm_en = " A therapist must confirm the proposal."
    n = len(counted)
    if strength == "strong":
        rid = decided_by[0]
        return (f"Forslag: {level} (stærkt), da {rid} er opfyldt.{confirm_da}",
                f"Proposal: {level} (strong), because {rid} holds.{confirm_en}")
    return ((f"Forslag: {level}. {n} af de kriterier, der tæller mod {srules.combination.count_level}, "
            f"er opfyldt (mindst {threshold} kræves).{confirm_da}"),
            (f"Proposal: {level}. {n} of the criteria counting toward {srules.combination.count_level} "
            f"hold (at least {threshold} needed).{confirm_en}"))
