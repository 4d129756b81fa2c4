"""Load the stratification and deadline rules from YAML, with municipal override files.

    rules = load_rules()                                   # adapter/mappings/ of this project
    rules = load_rules(Path("mappings"), [Path("kommune-0840.yaml")])

Default files (in ``default_dir``): ``stratification.yaml``, ``deadlines.yaml`` and
``codesystems/task-codes.json`` (a FHIR CodeSystem). An override file holds what a
municipality changes, under the keys ``stratification`` and/or ``deadlines``::

    municipality: "0840"
    stratification:
      rules:
        - {id: STRAT-R7-CHILD, ...}            # same id: replaces the default rule
        - {id: STRAT-R6-COORDINATION, disabled: true}   # removes it
        - {id: STRAT-R11-MY-RULE, ...}         # new id: added
      code_lists: {abi: [...]}                 # replaces that list
      combination: {count: {...}}              # replaces those keys of the combination
      vocabulary: {negation_window_words: 4}   # replaces those keys
    deadlines:
      settings: {rehabilitering_region_from: "2027-04-01"}
      rules:
        - {id: DL-D7-CARE-PLAN-BEFORE-DISCHARGE, disabled: false}  # re-enables a default rule
      task_codes: [{code: my-task, display: "..."}]

Override files are applied in order. The defaults are never written to.

Any problem raises :class:`adapter.errors.ConfigError` with one ``GGOP-E501`` issue whose
XPath field is ``<file>#<key path>`` (``adapter/mappings/stratification.yaml#rules[3].when.any[0]``)
and whose line is the line in that file. Dates in the files are strings (``"2027-01-01"``)
checked here, so a bad date names its key instead of failing inside the YAML parser.

This is the only module of ``adapter.rules`` that reads files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from adapter.config_files import (
    At,
    as_bool,
    as_choice,
    as_int,
    as_list,
    as_mapping,
    as_str,
    as_str_list,
    check_keys,
    read_yaml,
)
from adapter.data import MAPPINGS_DIR
from adapter.rules.calendar import OPTIONAL_DAYS
from adapter.rules.model import (
    CLOCKS,
    DEADLINE_CLOCKS,
    LEGAL_KINDS,
    LEVELS,
    NOTE_KEYS,
    OWNERS,
    PLAN_DEADLINE_USES,
    PLAN_TYPES,
    STRENGTHS,
    TRIGGERS,
    UNITS,
    Applicability,
    Before,
    Combination,
    Condition,
    DeadlineRule,
    DeadlineRules,
    Effect,
    LegalBasis,
    Neutralisation,
    NoteTexts,
    Offset,
    RegionMerger,
    RuleSet,
    StratificationRules,
    StratRule,
    TaskCode,
    TextVocabulary,
)

__all__ = ["DEFAULT_DIR", "PREDICATES", "TEXT_FIELDS", "load_rules"]

DEFAULT_DIR = MAPPINGS_DIR
STRATIFICATION_FILE = "stratification.yaml"
DEADLINES_FILE = "deadlines.yaml"
TASK_CODES_FILE = Path("codesystems") / "task-codes.json"

# Free-text sections a text predicate may read (G-GOP element names).
TEXT_FIELDS = (
    "AbilityAtDischargeSummary", "AbilityAtDischargeExtended", "RehabilitationNeedAndPotential",
    "PatientHealthSummary", "PatientSafetyAspects", "PracticalInformation",
    "InformationForPatientAndRelatives", "ICD10DiagnosesText", "JournalExcerpt/Comment",
)
# Every input a rule may list.
INPUTS = TEXT_FIELDS + (
    "TypeOfRehabilitationPlan", "ICD10Diagnoses", "ICFClassifications",
    "CivilRegistrationNumber", "CurrentHospitalContact/ExpectedEnd",
)
COMBINATORS = ("all", "any", "not")
PREDICATES = (
    "plan_type_in", "diagnosis_code_prefix_any", "icf_gradient_at_least", "icf_chapters_at_least",
    "text_mentions_any", "text_domains_at_least", "age_below", "rules_fired_any", "rules_fired_none",
)
RULE_REF_PREDICATES = ("rules_fired_any", "rules_fired_none")
ICF_COMPONENTS = ("b", "d", "e", "s")
DIAGNOSIS_SCOPES = ("all", "primary", "secondary")

_SKS_PREFIX = re.compile(r"^[A-Z][A-Z0-9]*$")
_ICF_PREFIX = re.compile(r"^[bdes][0-9]*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HHMM = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")
_SETTING_REF = "setting:"


def _date(value: Any, at: At, settings: dict[str, date] | None = None) -> date:
    if isinstance(value, str) and value.startswith(_SETTING_REF):
        name = value[len(_SETTING_REF):]
        if settings is None or name not in settings:
            at.fail(f"unknown date setting '{name}'; known: {', '.join(sorted(settings or ())) or 'none'}")
        return settings[name]
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        at.fail(f"expected an ISO date YYYY-MM-DD{' or setting:<name>' if settings is not None else ''}, "
                f"got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        at.fail(f"'{value}' is not a valid date")


def _time(value: Any, at: At) -> time:
    m = _HHMM.match(value) if isinstance(value, str) else None
    if not m:
        at.fail(f"expected a time HH:MM, got {value!r}")
    try:
        return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    except ValueError:
        at.fail(f"'{value}' is not a valid time")


def _one_or_many(value: Any, at: At):
    """(item, its location) for a mapping given alone or as a list of mappings."""
    if isinstance(value, list):
        as_list(value, at)
        return [(raw, at.item(value, i)) for i, raw in enumerate(value)]
    return [(value, at)]


def _legal_basis(value: Any, at: At) -> tuple[LegalBasis, ...]:
    out = []
    for raw, here in _one_or_many(value, at):
        m = as_mapping(raw, here)
        check_keys(m, here, ("document", "section"), ("source", "kind"))
        out.append(LegalBasis(
            document=as_str(m["document"], here.key(m, "document")),
            section=as_str(m["section"], here.key(m, "section")),
            source=as_str(m["source"], here.key(m, "source")) if "source" in m else None,
            kind=as_choice(m["kind"], here.key(m, "kind"), LEGAL_KINDS) if "kind" in m else None,
        ))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _read_task_codes(path: Path) -> tuple[dict[str, TaskCode], str]:
    at = At(str(path))
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        at.fail(f"cannot read the file ({type(exc).__name__})")
    except ValueError as exc:
        at.fail(f"not JSON ({exc})")
    data = as_mapping(data, at)
    url = as_str(data.get("url"), at.key(data, "url"))
    concepts = as_list(data.get("concept"), at.key(data, "concept"))
    out: dict[str, TaskCode] = {}
    for i, c in enumerate(concepts):
        here = At(at.file, f"concept[{i}]")
        c = as_mapping(c, here)
        code = as_str(c.get("code"), here.key(c, "code"))
        if code in out:
            here.key(c, "code").fail(f"duplicate code '{code}'")
        en = next((d.get("value") for d in c.get("designation", []) if isinstance(d, dict)
                   and d.get("language") == "en"), None)
        out[code] = TaskCode(code, as_str(c.get("display"), here.key(c, "display")), en, c.get("definition"))
    return out, url


def _section(doc: dict, at: At, key: str, allowed: Sequence[str]) -> tuple[dict, At] | None:
    if key not in doc:
        return None
    here = at.key(doc, key)
    sec = as_mapping(doc[key], here)
    check_keys(sec, here, (), allowed)
    return sec, here


# --------------------------------------------------------------------------------------------
# Merging rule lists by id
# --------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    raw: dict
    at: At


class _RuleMerge:
    """Rules by id, in order: defaults first, then overrides (replace / add / disable / enable)."""

    def __init__(self) -> None:
        self.active: dict[str, _Entry] = {}
        self.disabled: dict[str, _Entry] = {}
        self.order: list[str] = []

    def add_file(self, rules: Any, at: At, *, default: bool) -> None:
        items = as_list(rules, at, nonempty=default)
        seen: set[str] = set()
        for i, raw in enumerate(items):
            here = at.item(items, i)
            raw = as_mapping(raw, here)
            if "id" not in raw:
                here.key(raw, "id").fail("missing key 'id'")
            rule_id = as_str(raw["id"], here.key(raw, "id"))
            if rule_id in seen:
                here.key(raw, "id").fail(f"duplicate rule id '{rule_id}' in this file")
            seen.add(rule_id)
            disabled = as_bool(raw["disabled"], here.key(raw, "disabled")) if "disabled" in raw else False
            if rule_id not in self.order:
                self.order.append(rule_id)
            if default:
                (self.disabled if disabled else self.active)[rule_id] = _Entry(raw, here)
                continue
            known = rule_id in self.active or rule_id in self.disabled
            if disabled:
                if not known:
                    here.key(raw, "id").fail(f"disables rule '{rule_id}', which does not exist")
                if rule_id in self.active:
                    self.disabled[rule_id] = self.active.pop(rule_id)
            elif set(raw) == {"id", "disabled"}:
                if rule_id not in self.disabled:
                    here.key(raw, "id").fail(f"re-enables rule '{rule_id}', which is not disabled")
                self.active[rule_id] = self.disabled.pop(rule_id)
            else:
                self.disabled.pop(rule_id, None)
                self.active[rule_id] = _Entry(raw, here)

    def ordered_active(self) -> list[tuple[str, _Entry]]:
        return [(i, self.active[i]) for i in self.order if i in self.active]


def _merge_mapping(target: dict[str, tuple[Any, At]], section: dict, at: At) -> None:
    for k, v in section.items():
        target[k] = (v, at.key(section, k))


# --------------------------------------------------------------------------------------------
# Stratification rules
# --------------------------------------------------------------------------------------------


class _CondContext:
    def __init__(self, code_lists: dict[str, tuple[str, ...]]):
        self.code_lists = code_lists
        self.rule_refs: list[tuple[str, At]] = []


def _condition(raw: Any, at: At, ctx: _CondContext) -> tuple[Condition, set[str]]:
    """Parse one condition; return it with the set of inputs it reads."""
    m = as_mapping(raw, at)
    ops = [k for k in m if k != "label"]
    if len(ops) != 1:
        if not ops:
            at.fail(f"a condition needs one predicate; known: {', '.join(COMBINATORS + PREDICATES)}")
        at.fail(f"a condition has exactly one predicate, got {', '.join(map(str, ops))}")
    op = ops[0]
    here = at.key(m, op)
    if op not in COMBINATORS and op not in PREDICATES:
        here.fail(f"unknown predicate '{op}'; known: {', '.join(COMBINATORS + PREDICATES)}")
    label = as_str(m["label"], at.key(m, "label")) if "label" in m else None
    value = m[op]
    reads: set[str] = set()
    params: dict[str, Any] = {}
    children: tuple[Condition, ...] = ()

    if op in ("all", "any"):
        items = as_list(value, here)
        parsed = [_condition(c, here.item(items, i), ctx) for i, c in enumerate(items)]
        children = tuple(c for c, _ in parsed)
        for _, r in parsed:
            reads |= r
    elif op == "not":
        child, reads = _condition(value, here, ctx)
        children = (child,)
    elif op == "plan_type_in":
        types = as_str_list(value, here, lower=True)
        for i, t in enumerate(types):
            as_choice(t, here.item(value, i), PLAN_TYPES)
        params = {"plan_types": types}
        reads = {"TypeOfRehabilitationPlan"}
    elif op == "diagnosis_code_prefix_any":
        spec = {"prefixes": value} if isinstance(value, list) else as_mapping(value, here)
        if isinstance(value, dict):
            check_keys(spec, here, (), ("prefixes", "list", "which"))
        if ("prefixes" in spec) == ("list" in spec):
            here.fail("give exactly one of 'prefixes' or 'list'")
        if "list" in spec:
            name = as_str(spec["list"], here.key(spec, "list"))
            if name not in ctx.code_lists:
                here.key(spec, "list").fail(
                    f"unknown code list '{name}'; known: {', '.join(sorted(ctx.code_lists)) or 'none'}")
            prefixes = ctx.code_lists[name]
        else:
            name = None
            prefixes = _sks_prefixes(spec["prefixes"], here.key(spec, "prefixes") if isinstance(value, dict) else here)
        which = as_choice(spec.get("which", "all"), here.key(spec, "which"), DIAGNOSIS_SCOPES)
        params = {"prefixes": prefixes, "list": name, "which": which}
        reads = {"ICD10Diagnoses"}
    elif op == "icf_gradient_at_least":
        spec = as_mapping(value, here)
        check_keys(spec, here, ("code_prefix", "min"))
        raw_prefix = spec["code_prefix"]
        prefixes = (as_str_list(raw_prefix, here.key(spec, "code_prefix"), lower=True)
                    if isinstance(raw_prefix, list) else (as_str(raw_prefix, here.key(spec, "code_prefix")).lower(),))
        for p in prefixes:
            if not _ICF_PREFIX.match(p):
                here.key(spec, "code_prefix").fail(f"'{p}' is not an ICF code prefix (b, d, e or s and digits)")
        params = {"code_prefixes": prefixes, "min": as_int(spec["min"], here.key(spec, "min"), 0, 4)}
        reads = {"ICFClassifications"}
    elif op == "icf_chapters_at_least":
        spec = as_mapping(value, here)
        check_keys(spec, here, ("min",), ("components", "gradient_min"))
        comps: tuple[str, ...] = ("b", "d", "s")
        if "components" in spec:
            comp_at = here.key(spec, "components")
            comps = as_str_list(spec["components"], comp_at, lower=True)
            for i, comp in enumerate(comps):
                as_choice(comp, comp_at.item(spec["components"], i), ICF_COMPONENTS)
        params = {"min": as_int(spec["min"], here.key(spec, "min"), 1),
                  "components": comps,
                  "gradient_min": as_int(spec.get("gradient_min", 1), here.key(spec, "gradient_min"), 0, 4)}
        reads = {"ICFClassifications"}
    elif op == "text_mentions_any":
        spec = as_mapping(value, here)
        check_keys(spec, here, ("fields", "terms"))
        fields = _text_fields(spec["fields"], here.key(spec, "fields"))
        params = {"fields": fields, "terms": as_str_list(spec["terms"], here.key(spec, "terms"), lower=True)}
        reads = set(fields)
    elif op == "text_domains_at_least":
        spec = as_mapping(value, here)
        check_keys(spec, here, ("fields", "domains", "min"))
        fields = _text_fields(spec["fields"], here.key(spec, "fields"))
        dom_at = here.key(spec, "domains")
        domains = as_mapping(spec["domains"], dom_at)
        if not domains:
            dom_at.fail("must not be empty")
        parsed_domains = tuple((str(name), as_str_list(terms, dom_at.key(domains, name), lower=True))
                               for name, terms in domains.items())
        params = {"fields": fields, "domains": parsed_domains,
                  "min": as_int(spec["min"], here.key(spec, "min"), 1, len(parsed_domains))}
        reads = set(fields)
    elif op == "age_below":
        if isinstance(value, dict):
            check_keys(value, here, ("years",))
            years = as_int(value["years"], here.key(value, "years"), 1, 150)
        else:
            years = as_int(value, here, 1, 150)
        params = {"years": years}
        reads = {"CivilRegistrationNumber", "CurrentHospitalContact/ExpectedEnd"}
    elif op in RULE_REF_PREDICATES:
        ids = as_str_list(value, here)
        for i, rid in enumerate(ids):
            ctx.rule_refs.append((rid, here.item(value, i)))
        params = {"rules": ids}
    return Condition(op, MappingProxyType(params), children, label, here.path), reads


def _sks_prefixes(value: Any, at: At) -> tuple[str, ...]:
    prefixes = as_str_list(value, at)
    out = []
    for i, p in enumerate(prefixes):
        norm = p.upper().replace(".", "").replace(" ", "")
        if not _SKS_PREFIX.match(norm):
            at.item(value, i).fail(f"'{p}' is not an SKS code prefix (a letter, then letters or digits)")
        out.append(norm)
    return tuple(out)


def _text_fields(value: Any, at: At) -> tuple[str, ...]:
    fields = as_str_list(value, at)
    for i, f in enumerate(fields):
        as_choice(f, at.item(value, i), TEXT_FIELDS)
    return fields


def _effect(value: Any, at: At) -> Effect:
    if isinstance(value, str):
        if value not in ("no_proposal", "note"):
            at.fail(f"unknown effect '{value}'; use no_proposal, note, {{propose: <level>}} or {{lean: <level>}}")
        return Effect(value)
    m = as_mapping(value, at)
    if "propose" in m:
        check_keys(m, at, ("propose",), ("strength",))
        level = as_choice(m["propose"], at.key(m, "propose"), LEVELS)
        strength = as_choice(m.get("strength", "normal"), at.key(m, "strength"), STRENGTHS)
        return Effect("propose", level, strength)
    if "lean" in m:
        check_keys(m, at, ("lean",))
        return Effect("lean", as_choice(m["lean"], at.key(m, "lean"), LEVELS))
    at.fail("an effect mapping needs 'propose' or 'lean'")


def _strat_rule(rule_id: str, entry: _Entry, ctx: _CondContext) -> StratRule:
    raw, at = entry.raw, entry.at
    check_keys(raw, at, ("id", "inputs", "when", "effect", "reason_da", "reason_en", "legal_basis"),
          ("title", "valid_from", "valid_to", "disabled"))
    inputs_at = at.key(raw, "inputs")
    inputs = as_list(raw["inputs"], inputs_at, nonempty=False)
    names = tuple(as_str(v, inputs_at.item(inputs, i)) for i, v in enumerate(inputs))
    for i, name in enumerate(names):
        as_choice(name, inputs_at.item(inputs, i), INPUTS)
    when, reads = _condition(raw["when"], at.key(raw, "when"), ctx)
    if missing := sorted(reads - set(names)):
        inputs_at.fail(f"'when' reads {', '.join(missing)}, which 'inputs' does not list")
    if extra := sorted(set(names) - reads):
        inputs_at.fail(f"'inputs' lists {', '.join(extra)}, which 'when' does not read")
    valid_from = _date(raw["valid_from"], at.key(raw, "valid_from")) if "valid_from" in raw else None
    valid_to = _date(raw["valid_to"], at.key(raw, "valid_to")) if "valid_to" in raw else None
    if valid_from and valid_to and valid_to < valid_from:
        at.key(raw, "valid_to").fail("valid_to is before valid_from")
    return StratRule(
        id=rule_id,
        title=as_str(raw["title"], at.key(raw, "title")) if "title" in raw else rule_id,
        inputs=names,
        when=when,
        effect=_effect(raw["effect"], at.key(raw, "effect")),
        reason_da=as_str(raw["reason_da"], at.key(raw, "reason_da")),
        reason_en=as_str(raw["reason_en"], at.key(raw, "reason_en")),
        legal_basis=_legal_basis(raw["legal_basis"], at.key(raw, "legal_basis")),
        valid_from=valid_from,
        valid_to=valid_to,
        source_file=at.file,
    )


def _rule_order(rules: list[StratRule], refs: dict[str, list[str]], at_of: dict[str, At]) -> list[StratRule]:
    """Rules in file order, except that a rule comes after the rules it refers to."""
    by_id = {r.id: r for r in rules}
    out: list[StratRule] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(rid: str, chain: tuple[str, ...]) -> None:
        if state.get(rid) == 2:
            return
        if state.get(rid) == 1:
            at_of[rid].fail(f"rules refer to each other in a cycle: {' -> '.join(chain + (rid,))}")
        state[rid] = 1
        for dep in refs.get(rid, ()):
            if dep in by_id:
                visit(dep, chain + (rid,))
        state[rid] = 2
        out.append(by_id[rid])

    for r in rules:
        visit(r.id, ())
    return out


def _load_stratification(default: tuple[dict, At], overrides: list[tuple[dict, At]]) -> StratificationRules:
    doc, at = default
    check_keys(doc, at, ("rules", "combination"), ("kind", "version", "vocabulary", "code_lists"))
    if "kind" in doc and doc["kind"] != "stratification":
        at.key(doc, "kind").fail("expected 'stratification'")

    vocab: dict[str, tuple[Any, At]] = {}
    lists: dict[str, tuple[Any, At]] = {}
    combo: dict[str, tuple[Any, At]] = {}
    merge = _RuleMerge()
    sections = [(doc, at, True)] + [(sec, sat, False) for sec, sat in overrides]
    for sec, sat, is_default in sections:
        for key, target in (("vocabulary", vocab), ("code_lists", lists), ("combination", combo)):
            if key in sec:
                _merge_mapping(target, as_mapping(sec[key], sat.key(sec, key)), sat.key(sec, key))
        if "rules" in sec:
            merge.add_file(sec["rules"], sat.key(sec, "rules"), default=is_default)

    vocabulary = _vocabulary(vocab, at.key(doc, "vocabulary"))
    code_lists = {name: _sks_prefixes(v, here) for name, (v, here) in lists.items()}
    ctx = _CondContext(code_lists)

    # Disabled rules are checked too, so re-enabling one cannot bring in a broken rule.
    for rule_id, entry in merge.disabled.items():
        _strat_rule(rule_id, entry, _CondContext(code_lists))
    rules = [_strat_rule(rule_id, entry, ctx) for rule_id, entry in merge.ordered_active()]
    known = set(merge.active) | set(merge.disabled)
    refs: dict[str, list[str]] = {}
    at_of: dict[str, At] = {}
    for rule in rules:
        at_of[rule.id] = merge.active[rule.id].at
    for rid, here in ctx.rule_refs:
        if rid not in known:
            here.fail(f"unknown rule id '{rid}'")
    for rule in rules:
        refs[rule.id] = sorted(_refs_of(rule.when) & set(merge.active))
    ordered = _rule_order(rules, refs, at_of)
    combination = _combination(combo, at.key(doc, "combination"), set(merge.active), known)
    return StratificationRules(tuple(ordered), combination, vocabulary, MappingProxyType(code_lists))


def _refs_of(cond: Condition) -> set[str]:
    out = set(cond.params.get("rules", ())) if cond.op in RULE_REF_PREDICATES else set()
    for c in cond.children:
        out |= _refs_of(c)
    return out


def _vocabulary(vocab: dict[str, tuple[Any, At]], at: At) -> TextVocabulary:
    allowed = ("negation_words", "negation_window_words", "negating_prefixes", "inflection_endings")
    for k, (_, here) in vocab.items():
        if k not in allowed:
            here.fail(f"unknown key '{k}'; allowed: {', '.join(allowed)}")

    def get(k: str, default: Any) -> tuple[Any, At]:
        return vocab.get(k, (default, at))

    words, w_at = get("negation_words", [])
    window, win_at = get("negation_window_words", 3)
    prefixes, p_at = get("negating_prefixes", [])
    endings, e_at = get("inflection_endings", [])
    return TextVocabulary(
        negation_words=as_str_list(words, w_at, lower=True) if words else (),
        negation_window_words=as_int(window, win_at, 0, 20),
        negating_prefixes=as_str_list(prefixes, p_at, lower=True) if prefixes else (),
        inflection_endings=as_str_list(endings, e_at, lower=True) if endings else (),
    )


def _combination(combo: dict[str, tuple[Any, At]], at: At, active: set[str], known: set[str]) -> Combination:
    allowed = ("stop_if_fired", "decisive", "count", "otherwise", "neutralise", "change_window_days")
    for k, (_, here) in combo.items():
        if k not in allowed:
            here.fail(f"unknown key '{k}'; allowed: {', '.join(allowed)}")
    for k in ("count", "otherwise", "change_window_days"):
        if k not in combo:
            at.key({}, k).fail(f"missing key '{k}'")

    def rule_id(value: Any, here: At) -> str | None:
        rid = as_str(value, here)
        if rid not in known:
            here.fail(f"unknown rule id '{rid}'")
        return rid if rid in active else None  # a disabled rule drops out

    stop_v, stop_at = combo.get("stop_if_fired", ([], at))
    stop = tuple(r for i, v in enumerate(as_list(stop_v, stop_at, nonempty=False))
                 if (r := rule_id(v, stop_at.item(stop_v, i))))

    dec_v, dec_at = combo.get("decisive", ([], at))
    decisive = []
    for i, item in enumerate(as_list(dec_v, dec_at, nonempty=False)):
        here = dec_at.item(dec_v, i)
        m = as_mapping(item, here)
        check_keys(m, here, ("rule", "level"))
        rid = rule_id(m["rule"], here.key(m, "rule"))
        level = as_choice(m["level"], here.key(m, "level"), LEVELS)
        if rid:
            decisive.append((rid, level))

    count_v, count_at = combo["count"]
    count = as_mapping(count_v, count_at)
    check_keys(count, count_at, ("rules", "at_least", "level"))
    rules_v = as_list(count["rules"], count_at.key(count, "rules"))
    counted = tuple(r for i, v in enumerate(rules_v)
                    if (r := rule_id(v, count_at.key(count, "rules").item(rules_v, i))))
    at_least = as_int(count["at_least"], count_at.key(count, "at_least"), 1)
    count_level = as_choice(count["level"], count_at.key(count, "level"), LEVELS)

    otherwise_v, otherwise_at = combo["otherwise"]
    otherwise = as_choice(otherwise_v, otherwise_at, LEVELS)

    neu_v, neu_at = combo.get("neutralise", ([], at))
    neutralise = []
    for i, item in enumerate(as_list(neu_v, neu_at, nonempty=False)):
        here = neu_at.item(neu_v, i)
        m = as_mapping(item, here)
        check_keys(m, here, ("by", "rule", "only_if_labels"))
        by = rule_id(m["by"], here.key(m, "by"))
        target = rule_id(m["rule"], here.key(m, "rule"))
        labels = frozenset(as_str_list(m["only_if_labels"], here.key(m, "only_if_labels")))
        if by and target:
            neutralise.append(Neutralisation(by, target, labels))

    window_v, window_at = combo["change_window_days"]
    return Combination(
        stop_if_fired=stop,
        decisive=tuple(decisive),
        count_rules=counted,
        count_at_least=at_least,
        count_level=count_level,
        otherwise=otherwise,
        neutralise=tuple(neutralise),
        change_window_days=as_int(window_v, window_at, 0, 365),
        source_file=at.file,
    )


# --------------------------------------------------------------------------------------------
# Deadline rules
# --------------------------------------------------------------------------------------------


def _settings(merged: dict[str, tuple[Any, At]]) -> tuple[dict[str, Any], dict[str, date], int]:
    dates: dict[str, date] = {}
    due_soon = 48
    out: dict[str, Any] = {}
    for k, (v, here) in merged.items():
        if k == "due_soon_hours":
            due_soon = as_int(v, here, 0, 24 * 30)
            out[k] = due_soon
        elif k == "region_mergers":
            continue  # read with the dates (it may name a date setting)
        elif k == "asap_days":
            out[k] = as_int(v, here, 0, 30)
        elif k == "deadline_clock":
            out[k] = as_choice(v, here, DEADLINE_CLOCKS)
        elif k == "optional_days_off":
            names = as_str_list(v, here, lower=True) if v else ()
            for j, name in enumerate(names):
                as_choice(name, here.item(v, j), tuple(sorted(OPTIONAL_DAYS)))
            out[k] = frozenset(names)
        else:
            dates[k] = _date(v, here)
            out[k] = dates[k]
    return out, dates, due_soon


def _applicability(value: Any, at: At, dates: dict[str, date]) -> tuple[Applicability, ...]:
    out = []
    for raw, here in _one_or_many(value, at):
        m = as_mapping(raw, here)
        check_keys(m, here, ("plan_types",), ("valid_from", "valid_to", "valid_before",
                                         "patient_age_below", "patient_age_not_below"))
        types = as_str_list(m["plan_types"], here.key(m, "plan_types"), lower=True)
        for j, t in enumerate(types):
            as_choice(t, here.key(m, "plan_types").item(m["plan_types"], j), PLAN_TYPES)
        valid_from = _date(m["valid_from"], here.key(m, "valid_from"), dates) if "valid_from" in m else None
        if "valid_to" in m and "valid_before" in m:
            here.key(m, "valid_before").fail("give valid_to or valid_before, not both")
        valid_to = None
        if "valid_to" in m:
            valid_to = _date(m["valid_to"], here.key(m, "valid_to"), dates)
        elif "valid_before" in m:
            valid_to = _date(m["valid_before"], here.key(m, "valid_before"), dates) - timedelta(days=1)
        if valid_from and valid_to and valid_to < valid_from:
            here.fail("the period ends before it starts")
        out.append(Applicability(
            plan_types=types, valid_from=valid_from, valid_to=valid_to,
            patient_age_below=(as_int(m["patient_age_below"], here.key(m, "patient_age_below"), 1, 150)
                               if "patient_age_below" in m else None),
            patient_age_not_below=(as_int(m["patient_age_not_below"], here.key(m, "patient_age_not_below"), 1, 150)
                                   if "patient_age_not_below" in m else None),
        ))
    return tuple(out)


def _deadline_rule(rule_id: str, entry: _Entry, dates: dict[str, date], tasks: dict[str, TaskCode]) -> DeadlineRule:
    raw, at = entry.raw, entry.at
    check_keys(raw, at, ("id", "task", "applies_to", "clock", "plan_deadline", "owner", "reason_da", "reason_en",
                    "legal_basis"),
          ("title", "offset", "before", "same_as", "at", "trigger", "disabled", "no_later_than",
           "due_after_trigger", "notes"))
    task = as_str(raw["task"], at.key(raw, "task"))
    if task not in tasks:
        at.key(raw, "task").fail(f"unknown task code '{task}'; known: {', '.join(sorted(tasks))}")
    timing = [k for k in ("offset", "before", "same_as") if k in raw]
    if len(timing) != 1:
        at.fail("give exactly one of offset, before or same_as")
    offset = before = same_as = None
    if "offset" in raw:
        offset = _offset(raw["offset"], at.key(raw, "offset"))
    elif "before" in raw:
        here = at.key(raw, "before")
        m = as_mapping(raw["before"], here)
        check_keys(m, here, ("working_days",), ("at",))
        before = Before(as_int(m["working_days"], here.key(m, "working_days"), 0, 60),
                        _time(m["at"], here.key(m, "at")) if "at" in m else None)
    else:
        same_as = as_str(raw["same_as"], at.key(raw, "same_as"))
    clock = as_choice(raw["clock"], at.key(raw, "clock"), CLOCKS)
    trigger = as_choice(raw["trigger"], at.key(raw, "trigger"), TRIGGERS) if "trigger" in raw else None
    if (clock == "course_start") != (trigger == "course-started"):
        at.key(raw, "clock").fail("clock course_start goes with trigger course-started, and only with it")
    plan_deadline = as_choice(raw["plan_deadline"], at.key(raw, "plan_deadline"), PLAN_DEADLINE_USES)
    if plan_deadline != "ignore" and (clock != "discharge" or offset is None):
        at.key(raw, "plan_deadline").fail(f"'{plan_deadline}' needs clock discharge and an offset")
    due_after = _offset(raw["due_after_trigger"], at.key(raw, "due_after_trigger")) \
        if "due_after_trigger" in raw else None
    if due_after is not None and trigger != "start-not-offered":
        at.key(raw, "due_after_trigger").fail("due_after_trigger goes with trigger start-not-offered")
    return DeadlineRule(
        id=rule_id,
        title=as_str(raw["title"], at.key(raw, "title")) if "title" in raw else rule_id,
        task=task,
        applies_to=_applicability(raw["applies_to"], at.key(raw, "applies_to"), dates),
        clock=clock,
        offset=offset,
        before=before,
        same_as=same_as,
        at=_time(raw["at"], at.key(raw, "at")) if "at" in raw else None,
        plan_deadline=plan_deadline,
        owner=as_choice(raw["owner"], at.key(raw, "owner"), OWNERS),
        trigger=trigger,
        reason_da=as_str(raw["reason_da"], at.key(raw, "reason_da")),
        reason_en=as_str(raw["reason_en"], at.key(raw, "reason_en")),
        legal_basis=_legal_basis(raw["legal_basis"], at.key(raw, "legal_basis")),
        source_file=at.file,
        no_later_than=as_str(raw["no_later_than"], at.key(raw, "no_later_than")) if "no_later_than" in raw else None,
        due_after_trigger=due_after,
        notes=_notes(raw["notes"], at.key(raw, "notes")) if "notes" in raw else (),
    )


def _offset(value: Any, here: At) -> Offset:
    m = as_mapping(value, here)
    check_keys(m, here, ("days", "unit"))
    return Offset(as_int(m["days"], here.key(m, "days"), 0, 3660), as_choice(m["unit"], here.key(m, "unit"), UNITS))


def _notes(value: Any, at: At) -> tuple[tuple[str, str], ...]:
    items = as_list(value, at)
    out = []
    for i, raw in enumerate(items):
        here = at.item(items, i)
        m = as_mapping(raw, here)
        check_keys(m, here, ("da", "en"))
        out.append((as_str(m["da"], here.key(m, "da")), as_str(m["en"], here.key(m, "en"))))
    return tuple(out)


def _extra_task_codes(value: Any, at: At, tasks: dict[str, TaskCode]) -> None:
    items = as_list(value, at)
    for i, raw in enumerate(items):
        here = at.item(items, i)
        m = as_mapping(raw, here)
        check_keys(m, here, ("code", "display"), ("display_en", "definition"))
        code = as_str(m["code"], here.key(m, "code"))
        tasks[code] = TaskCode(code, as_str(m["display"], here.key(m, "display")),
                               as_str(m["display_en"], here.key(m, "display_en")) if "display_en" in m else None,
                               as_str(m["definition"], here.key(m, "definition")) if "definition" in m else None)


def _load_deadlines(default: tuple[dict, At], overrides: list[tuple[dict, At]],
                    tasks: dict[str, TaskCode]) -> DeadlineRules:
    doc, at = default
    check_keys(doc, at, ("rules", "notes"), ("kind", "version", "settings"))
    if "kind" in doc and doc["kind"] != "deadlines":
        at.key(doc, "kind").fail("expected 'deadlines'")
    settings: dict[str, tuple[Any, At]] = {}
    notes: dict[str, tuple[Any, At]] = {}
    merge = _RuleMerge()
    for sec, sat, is_default in [(doc, at, True)] + [(s, a, False) for s, a in overrides]:
        if "notes" in sec:
            _merge_mapping(notes, as_mapping(sec["notes"], sat.key(sec, "notes")), sat.key(sec, "notes"))
        if "settings" in sec:
            _merge_mapping(settings, as_mapping(sec["settings"], sat.key(sec, "settings")), sat.key(sec, "settings"))
        if "task_codes" in sec:
            _extra_task_codes(sec["task_codes"], sat.key(sec, "task_codes"), tasks)
        if "rules" in sec:
            merge.add_file(sec["rules"], sat.key(sec, "rules"), default=is_default)
    plain, dates, due_soon = _settings(settings)
    mergers = _region_mergers(*settings["region_mergers"], dates) if "region_mergers" in settings else ()

    for rule_id, entry in merge.disabled.items():
        _deadline_rule(rule_id, entry, dates, tasks)
    rules = [_deadline_rule(rule_id, entry, dates, tasks) for rule_id, entry in merge.ordered_active()]
    by_id = {r.id: r for r in rules}
    for r in rules:
        if r.no_later_than is not None and r.no_later_than not in by_id:
            merge.active[r.id].at.fail(f"no_later_than refers to '{r.no_later_than}', which is not an active rule")
        if r.same_as is None:
            continue
        here = merge.active[r.id].at
        seen = [r.id]
        target = r.same_as
        while True:
            if target not in by_id:
                here.fail(f"same_as refers to '{target}', which is not an active rule")
            if target in seen:
                here.fail(f"same_as forms a cycle: {' -> '.join(seen + [target])}")
            seen.append(target)
            if by_id[target].clock != r.clock:
                here.fail(f"same_as '{target}' has clock {by_id[target].clock}, this rule {r.clock}")
            next_target = by_id[target].same_as
            if next_target is None:
                break
            target = next_target
    return DeadlineRules(tuple(rules), MappingProxyType(plain), due_soon, _note_texts(notes, at.key(doc, "notes")),
                         mergers)


def _region_mergers(value: Any, at: At, dates: dict[str, date]) -> tuple[RegionMerger, ...]:
    out = []
    items = as_list(value, at) if value else []
    for i, raw in enumerate(items):
        here = at.item(items, i)
        m = as_mapping(raw, here)
        check_keys(m, here, ("regions", "key", "name", "valid_from"), ("code", "iso"))
        regions = as_str_list(m["regions"], here.key(m, "regions"))
        for j, code in enumerate(regions):
            if not re.fullmatch(r"10[0-9]{2}", code):
                here.key(m, "regions").item(m["regions"], j).fail("expected a DAGI region code such as 1084")
        out.append(RegionMerger(
            regions=tuple(regions), key=as_str(m["key"], here.key(m, "key")),
            name=as_str(m["name"], here.key(m, "name")),
            valid_from=_date(m["valid_from"], here.key(m, "valid_from"), dates),
            code=as_str(m["code"], here.key(m, "code")) if m.get("code") is not None else None,
            iso=as_str(m["iso"], here.key(m, "iso")) if m.get("iso") is not None else None))
    return tuple(out)


def _note_texts(merged: dict[str, tuple[Any, At]], at: At) -> NoteTexts:
    texts = {}
    for key, (raw, here) in merged.items():
        as_choice(key, here, NOTE_KEYS)
        m = as_mapping(raw, here)
        check_keys(m, here, ("da", "en"))
        texts[key] = (as_str(m["da"], here.key(m, "da")), as_str(m["en"], here.key(m, "en")))
    missing = [k for k in NOTE_KEYS if k not in texts]
    if missing:
        at.fail(f"notes needs a text for each of: {', '.join(missing)}")
    return NoteTexts(texts)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def load_rules(default_dir: Path = DEFAULT_DIR, override_files: Sequence[Path] = ()) -> RuleSet:
    """Load the default rules from ``default_dir`` and apply the override files in order."""
    default_dir = Path(default_dir)
    tasks, task_system = _read_task_codes(default_dir / TASK_CODES_FILE)
    strat_default = read_yaml(default_dir / STRATIFICATION_FILE)
    dl_default = read_yaml(default_dir / DEADLINES_FILE)
    strat_over: list[tuple[dict, At]] = []
    dl_over: list[tuple[dict, At]] = []
    for path in override_files:
        doc, at = read_yaml(Path(path))
        check_keys(doc, at, (), ("municipality", "description", "stratification", "deadlines"))
        if (s := _section(doc, at, "stratification", ("rules", "combination", "vocabulary", "code_lists"))):
            strat_over.append(s)
        if (d := _section(doc, at, "deadlines", ("rules", "settings", "task_codes", "notes"))):
            dl_over.append(d)
    stratification = _load_stratification(strat_default, strat_over)
    deadlines = _load_deadlines(dl_default, dl_over, tasks)
    files = (str(default_dir / STRATIFICATION_FILE), str(default_dir / DEADLINES_FILE),
             str(default_dir / TASK_CODES_FILE)) + tuple(str(p) for p in override_files)
    return RuleSet(stratification, deadlines, MappingProxyType(dict(tasks)), task_system, files)
