"""Data of the rule engine: rules as loaded from ``adapter/mappings/`` and the results of applying them.

All classes are frozen dataclasses. Rules come from :func:`adapter.rules.loader.load_rules`;
results from :func:`adapter.rules.stratify.stratify`, :func:`adapter.rules.schedule.schedule`
and :func:`adapter.rules.schedule.reevaluate`. Nothing here reads a file or a clock.

Result texts never contain the patient's free text: evidence names the matched *term* or
*code* and the XPath of the element it was found in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from adapter.rules.calendar import DanishCalendar
from adapter.rules.deadline_text import ParsedDeadline

PLAN_TYPES = ("almen", "specialiseret", "rehabilitering")
LEVELS = ("basal", "avanceret")
OWNERS = ("receiver", "sender", "region")
CLOCKS = ("discharge", "received", "course_start")
# what the "discharge" clock of a municipality's rules counts from (setting ``deadline_clock``)
DEADLINE_CLOCKS = ("discharge", "received")
UNITS = ("calendar", "working")
PLAN_DEADLINE_USES = ("ignore", "shorten_or_postpone", "postpone_only")
TRIGGERS = ("start-not-offered", "course-started")
# flags a deadline Task can carry (codesystems/task-flags.json)
FLAGS = ("postponed-start", "start-condition-manual", "received-late", "capped-by-start", "created-late")
EFFECT_KINDS = ("no_proposal", "propose", "lean", "note")
STRENGTHS = ("strong", "normal")
BUSINESS_STATUSES = ("on-time", "due-soon", "overdue")


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


# What kind of document a rule rests on: national law and executive orders bind every
# municipality; guidance, regional agreements and municipal standards do not (they are cited as
# what they are); a bill is not law until passed.
LEGAL_KINDS = ("law", "executive-order", "guidance", "bill", "regional-agreement", "municipal-standard", "report")


@dataclass(frozen=True)
class LegalBasis:
    """Where a rule comes from: a document and its section; ``source`` names the seed (S0-S4),
    ``kind`` what sort of document it is (``LEGAL_KINDS``)."""

    document: str
    section: str
    source: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Condition:
    """One node of a rule's ``when``: a predicate with its parameters, or all/any/not.

    ``params`` is read-only and holds plain values (str, int, tuples); ``key_path`` is where
    the node sits in its file (``rules[3].when.any[1]``), ``label`` is copied onto evidence.
    """

    op: str
    params: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[Condition, ...] = ()
    label: str | None = None
    key_path: str = ""


@dataclass(frozen=True)
class Effect:
    kind: str  # no_proposal | propose | lean | note
    level: str | None = None  # basal | avanceret (propose, lean)
    strength: str | None = None  # strong | normal (propose)


@dataclass(frozen=True)
class StratRule:
    id: str
    title: str
    inputs: tuple[str, ...]
    when: Condition
    effect: Effect
    reason_da: str
    reason_en: str
    legal_basis: tuple[LegalBasis, ...]
    valid_from: date | None = None
    valid_to: date | None = None
    source_file: str = ""

    def in_force(self, on: date) -> bool:
        return (self.valid_from is None or self.valid_from <= on) and (self.valid_to is None or on <= self.valid_to)


@dataclass(frozen=True)
class Neutralisation:
    """``rule`` does not count when ``by`` fired and all of ``rule``'s evidence has one of the labels."""

    by: str
    rule: str
    only_if_labels: frozenset[str]


@dataclass(frozen=True)
class Combination:
    stop_if_fired: tuple[str, ...]
    decisive: tuple[tuple[str, str], ...]  # (rule id, level)
    count_rules: tuple[str, ...]
    count_at_least: int
    count_level: str
    otherwise: str
    neutralise: tuple[Neutralisation, ...]
    change_window_days: int
    source_file: str = ""


@dataclass(frozen=True)
class TextVocabulary:
    negation_words: tuple[str, ...]
    negation_window_words: int
    negating_prefixes: tuple[str, ...]
    inflection_endings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StratificationRules:
    rules: tuple[StratRule, ...]
    combination: Combination
    vocabulary: TextVocabulary
    code_lists: Mapping[str, tuple[str, ...]]

    def rule(self, rule_id: str) -> StratRule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


@dataclass(frozen=True)
class Applicability:
    """One ``applies_to`` entry: plan types, a period (judged on day 0) and an age bound."""

    plan_types: tuple[str, ...]
    valid_from: date | None = None
    valid_to: date | None = None  # inclusive
    patient_age_below: int | None = None
    patient_age_not_below: int | None = None


@dataclass(frozen=True)
class Offset:
    days: int
    unit: str  # calendar | working


@dataclass(frozen=True)
class Before:
    working_days: int
    at: time | None = None


@dataclass(frozen=True)
class DeadlineRule:
    id: str
    title: str
    task: str
    applies_to: tuple[Applicability, ...]
    clock: str  # discharge | received | course_start
    offset: Offset | None
    before: Before | None
    same_as: str | None
    at: time | None
    plan_deadline: str  # ignore | shorten_or_postpone | postpone_only
    owner: str  # receiver | sender | region
    trigger: str | None
    reason_da: str
    reason_en: str
    legal_basis: tuple[LegalBasis, ...]
    source_file: str = ""
    # due no later than this rule's deadline (an inform Task never falls due after the start)
    no_later_than: str | None = None
    # triggered rules: due this long after the day the trigger happened
    due_after_trigger: Offset | None = None
    # notes the Task always carries (a municipality's service level: cancellation, no-shows)
    notes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RegionMerger:
    """Regions (DAGI codes) that a new region replaces from ``valid_from`` (judged on day 0).
    ``key`` names the new region until its official ``code`` (DAGI) and ``iso`` (ISO 3166-2) are
    known."""

    regions: tuple[str, ...]
    key: str
    name: str
    valid_from: date
    code: str | None = None
    iso: str | None = None


# notes the scheduler writes (the flags, and the free-choice deadline waiting for a reading)
NOTE_KEYS = FLAGS + ("free-choice-waits",)


@dataclass(frozen=True)
class NoteTexts:
    """The texts of the notes the scheduler writes (``notes:`` in deadlines.yaml), by key, with
    ``{date}``-style placeholders for ISO dates."""

    texts: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def note(self, key: str, **dates: date) -> DeadlineNote:
        da, en = self.texts.get(key, (key, key))
        values = {k: v.isoformat() for k, v in dates.items()}
        return DeadlineNote(key if key in FLAGS else "start-condition-manual", da.format(**values),
                            en.format(**values))


@dataclass(frozen=True)
class DeadlineRules:
    rules: tuple[DeadlineRule, ...]
    settings: Mapping[str, Any]
    due_soon_hours: int = 48
    notes: NoteTexts = field(default_factory=NoteTexts)
    region_mergers: tuple[RegionMerger, ...] = ()

    def rule(self, rule_id: str) -> DeadlineRule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


@dataclass(frozen=True)
class TaskCode:
    code: str
    display: str  # Danish
    display_en: str | None = None
    definition: str | None = None


@dataclass(frozen=True)
class RuleSet:
    stratification: StratificationRules
    deadlines: DeadlineRules
    task_codes: Mapping[str, TaskCode]
    task_system: str
    files: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Stratification results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """What made a predicate true: the input element, its XPath and the matched term or code.

    ``matched`` is a term or code from the rule (or a code from the message), never the
    patient's free text; ``detail`` is a short safe explanation ("prefix DI63", "gradient 3 >= 2").
    """

    input: str
    xpath: str
    line: int | None
    matched: str
    detail: str = ""
    label: str | None = None


@dataclass(frozen=True)
class FiredRule:
    rule_id: str
    title: str
    effect: Effect
    reason_da: str
    reason_en: str
    legal_basis: tuple[LegalBasis, ...]
    evidence: tuple[Evidence, ...]
    counted: bool = False  # counted toward the combination threshold
    neutralised_by: str | None = None


@dataclass(frozen=True)
class StratificationProposal:
    """A proposed level for a therapist to confirm. ``level`` is None when the plan is not almen."""

    plan_type: str
    level: str | None  # basal | avanceret | None
    strength: str | None  # strong (a decisive rule) | normal | None
    decided_by: tuple[str, ...]  # rule ids that made the level
    fired: list[FiredRule]
    not_fired: list[str]
    not_evaluated: list[str]  # out of force on ``evaluated_on``, or skipped after a stop rule
    counted: int  # counted rules that fired (after neutralisation)
    threshold: int
    summary_da: str
    summary_en: str
    evaluated_on: date
    confirmed: bool = False
    change_window_days: int = 14


# --------------------------------------------------------------------------------------------
# Schedule results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleWarning:
    """A problem met while scheduling. ``code`` is a catalogue code (``GGOP-W332``) or a local
    ``rules.*`` code; messages hold no patient data."""

    code: str
    message_da: str
    message_en: str
    xpath: str | None = None
    line: int | None = None
    rule_id: str | None = None


@dataclass(frozen=True)
class DeadlineNote:
    """Why a deadline is the way it is, for the Task's ``note``: a flag code (``FLAGS``) and
    the text in Danish and English. Never patient data."""

    flag: str | None
    text_da: str
    text_en: str


@dataclass(frozen=True)
class Deadline:
    task_code: str
    task_display: str
    rule_id: str
    due: datetime  # aware, Europe/Copenhagen
    owner: str  # receiver | sender | region
    clock: str  # discharge | received | course_start
    day0: date
    legal_basis: tuple[LegalBasis, ...]
    reason_da: str
    reason_en: str
    plan_deadline: ParsedDeadline | None
    business_status: str  # on-time | due-soon | overdue
    title: str = ""
    day0_from: str = ""  # what day 0 was taken from: discharge | received | course_start | plan
    not_before: date | None = None  # earliest start the plan allows (postponed start)
    trigger: str | None = None
    completed_at: datetime | None = None  # when the task was done (from TaskUpdates)
    notes: tuple[DeadlineNote, ...] = ()
    triggered_at: datetime | None = None  # when the trigger happened (triggered deadlines)

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.flag for n in self.notes if n.flag))


@dataclass(frozen=True)
class PendingDeadline:
    """A deadline that only exists once its trigger happens (see :func:`reevaluate`)."""

    rule: DeadlineRule
    task_display: str
    day0: date | None  # None: known only when the trigger happens (course start)
    day0_from: str
    plan_deadline: ParsedDeadline | None
    # why the trigger is not watched (the plan's start condition must be read first), or None
    suspended: DeadlineNote | None = None


@dataclass(frozen=True)
class TaskUpdates:
    """What the municipality has done since the plan arrived."""

    offered_start: date | None = None  # first training meeting offered to the citizen
    offered_at: datetime | None = None  # when the citizen was told place, time and level
    confirmed_level: str | None = None  # basal | avanceret, as confirmed by a therapist
    confirmed_at: datetime | None = None
    course_started: date | None = None  # the first training session actually held
    earliest_start: date | None = None  # the plan's start condition, as read by the municipality


@dataclass(frozen=True)
class LevelChange:
    from_level: str
    to_level: str
    at: datetime
    window_end: datetime | None
    flagged: bool  # True: changed after the change window closed
    reason_da: str
    reason_en: str


@dataclass(frozen=True)
class Schedule:
    plan_type: str | None
    discharge: date | None
    received_at: datetime  # aware, Europe/Copenhagen
    evaluated_at: datetime  # the ``now`` of the last status computation
    deadlines: list[Deadline]
    pending: list[PendingDeadline]
    warnings: list[ScheduleWarning]
    calendar: DanishCalendar
    due_soon_hours: int = 48
    notes: NoteTexts = field(default_factory=NoteTexts)
    region_mergers: tuple[RegionMerger, ...] = ()
    offered_start: date | None = None
    offered_at: datetime | None = None
    confirmed_level: str | None = None
    confirmed_at: datetime | None = None
    level_changes: list[LevelChange] = field(default_factory=list)
    course_started: date | None = None
    earliest_start: date | None = None  # the plan's earliest start (postponed), if any

    def deadline_for(self, task_code: str) -> Deadline | None:
        return next((d for d in self.deadlines if d.task_code == task_code), None)

    @property
    def day0(self) -> date:
        return self.discharge or self.received_at.date()

    def region_merger(self, region_code: str) -> RegionMerger | None:
        """The region that has replaced ``region_code`` on day 0, if one has."""
        return next((m for m in self.region_mergers if region_code in m.regions and m.valid_from <= self.day0), None)
