"""Parse the free-text start deadline of a G-GOP (``RehabilitationDeadline``, Danish).

The discharge date is day 0 (domain-rules §3.1, D0). All amounts are calendar days
(D3 follows D2). Months and years use calendar arithmetic: the same day of the month N
months later, or the last day of that month if it is shorter (31 Jan + 1 måned = 28/29
Feb). ``parse_deadline_text`` is pure and never raises for a ``str`` text.

How texts are read
------------------
The text is scanned for *clauses*, in this order, and a clause cannot overlap an earlier one:

1. Absolute dates with a lead word: "efter 1. marts 2026", "fra d. 15/3-2026",
   "senest 1. april". A date with no lead word ("15.03.2026") is not used by itself.
2. Relative amounts: "inden for 2 dage", "tidligst om 3 uger", "ca. 2-4 uger",
   "2-3 uger efter udskrivelse". A single amount with no lead word and no
   "efter udskrivelse" ("14 dage") is not used by itself.
3. Periods: ISO week numbers ("uge 28", "fra uge 28", "senest uge 30") and parts of a
   month ("primo juli", "medio august", "ultimo juni", "i starten af juli", "udgangen af maj").
4. "As soon as possible" phrases ("hurtigst muligt", "straks", "uden ventetid").

Each clause gives a lower bound (earliest start), an upper bound (latest start), or
both. The result keeps the latest lower bound and the earliest upper bound:

* lower and upper bound: ``range``
* upper bound only: ``within``
* lower bound only: ``on_or_after_date`` if it came from an absolute date, else ``not_before``

With no clause, a "no deadline" phrase ("ingen", "ingen særlig tidsfrist", "ikke
relevant", empty text) gives ``none``. Anything else gives ``unparsed``.

Decisions on ambiguous wording
------------------------------
* "hurtigst muligt", "straks", "uden ventetid" and the other ``ASAP_PHRASES``: ``within``,
  latest = discharge + ``asap_days`` (default 1, ``ASAP_DAYS``; the rules' setting
  ``asap_days`` overrides it), ``days_max`` = that number. An explicit deadline in
  the same text wins ("hurtigst muligt, senest 3 dage" = within 3 days).
* A date after an event ("efter endt strålebehandling 15/3", "når gipsen er fjernet d. 12/4"):
  the event's date bounds the start: "efter" = the day after, "når"/"ved" = that date.
* A week "uge N" is the first ISO week N that ends on or after discharge. "uge 28" or
  "opstart i uge 28": ``range`` Monday–Sunday; "fra/tidligst uge 28": from its Monday;
  "efter uge 28": from the next Monday; "senest uge 28": by its Sunday; "inden/før uge 28": by
  the Sunday before it. The same for a month part: primo = days 1–10, medio = 11–20, ultimo =
  21–end ("starten/begyndelsen af" = primo, "midten af" = medio, "slutningen/udgangen af" =
  ultimo); a month without a part needs a lead ("fra juli", "opstart i juli" = the whole month).
  A period that started before discharge starts at discharge.
* "efter <date>": earliest = the day after the date. "fra/tidligst/ikke før <date>":
  earliest = the date. "senest/inden/før <date>": latest = the date itself.
* A date without a year: the first such date on or after discharge.
  Two-digit years are 20xx.
* "efter N uger", "om N uger", "opstart (om) N uger", "N uger efter udskrivelse": a
  postponed start, ``not_before``, earliest = discharge + N (not N + 1).
* "ikke ... før N" and "ikke ... inden N": earliest = discharge + N. "ikke ... inden for N"
  ("må ikke påbegyndes inden for 7 dage"): "inden for N" covers days 0..N, so
  earliest = discharge + N + 1.
* A range with an upper-bound lead ("inden for 2-3 dage", "senest om 2-4 uger"):
  ``within``, latest = discharge + the larger number. A range with any other lead or none
  ("ca. 2-4 uger", "om 2 til 4 uger", "tidligst om 2-3 uger"): ``range``.
* A single amount with no lead ("14 dage", "ca. 3 uger"): not used, so such a text alone is
  ``unparsed``. With "tidsfrist"/"frist" ("Tidsfrist: 14 dage"): ``within``.
* "N timer": ceil(N / 24) days. "dag N" ("senest dag 5"): N days. "1 uge og 2 dage": 9 days.
* Working days ("hverdage", "arbejdsdage"): counted with the Danish holiday calendar when one
  is passed (the scheduler does); without one ``unparsed``.
* An amount counted from another event ("6 uger efter operationen", "postoperativt",
  "14 dage efter modtagelse", "2 dage før udskrivelse"): ``unparsed``, because that
  event's date is not known here.
* "ikke senere end N": ``within``. Any other clause after "ikke"/"ingen"/"aldrig" in the
  same part of the sentence (no , . ; : ! ? ( ) " - " or line break in between) is
  ``unparsed`` when no clause has read that negation ("ikke efter 2 uger",
  "ikke hurtigst muligt"). Such a negation cannot be read safely.
* A date before discharge, an invalid date (31/2), a date past ``date.max``, or lower > upper:
  ``unparsed``.
* ``days_min``/``days_max`` are the offsets, in days, of the relative bounds that won
  (months converted by the calendar). Absolute dates leave them ``None``.
* ``matched``: the text from the first to the last clause used. For ``unparsed`` it is the
  phrase that made the text unusable, when there is one, else ``None``. For ``none`` it is
  the "no deadline" phrase, or ``None`` for an empty text.
"""

from __future__ import annotations

import bisect
import calendar as _stdlib_calendar
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType

__all__ = ["KINDS", "ParsedDeadline", "parse_deadline_text"]

# --------------------------------------------------------------------------------------
# Phrase tables. Matching is case-insensitive. A space in a phrase matches any whitespace.
# Entries marked "regex" are regular-expression fragments; all others are plain words.
# --------------------------------------------------------------------------------------

KINDS = ("within", "not_before", "on_or_after_date", "range", "none", "unparsed")

ASAP_DAYS = 1  # "hurtigst muligt" etc.: latest = discharge + 1 day

NUMBER_WORDS: Mapping[str, int] = MappingProxyType({
    "nul": 0,
    "en": 1, "én": 1, "et": 1, "ét": 1, "een": 1, "eet": 1,
    "to": 2, "tre": 3, "fire": 4, "fem": 5, "seks": 6, "syv": 7, "otte": 8, "ni": 9,
    "ti": 10, "elleve": 11, "tolv": 12, "tretten": 13, "fjorten": 14, "femten": 15,
    "seksten": 16, "sytten": 17, "atten": 18, "nitten": 19, "tyve": 20,
})

# unit word -> "day" | "week" | "month" | "year" | "hour" | "workday"
UNIT_WORDS: Mapping[str, str] = MappingProxyType({
    **dict.fromkeys(["dag", "dage", "dagen", "dages", "døgn", "døgnet", "døgns", "doegn"], "day"),
    **dict.fromkeys(["uge", "uger", "ugen", "uges", "ugers"], "week"),
    **dict.fromkeys(["måned", "måneder", "måneden", "måneds", "måneders", "maaned", "maaneder",
                     "mdr.", "mdr", "mnd.", "mnd", "md."], "month"),
    **dict.fromkeys(["år", "året", "års", "aar"], "year"),
    **dict.fromkeys(["time", "timer", "timers"], "hour"),
    **dict.fromkeys(["hverdag", "hverdage", "hverdagen", "arbejdsdag", "arbejdsdage",
                     "arbejdsdagen", "hverdags"], "workday"),
})

MONTH_NAMES: Mapping[str, int] = MappingProxyType({
    "januar": 1, "jan": 1, "februar": 2, "feb": 2, "marts": 3, "mar": 3, "april": 4, "apr": 4,
    "maj": 5, "juni": 6, "jun": 6, "juli": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9, "oktober": 10, "okt": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
})

WEEKDAY_NAMES = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")

# Lead words before a relative amount ("inden for 2 dage", "tidligst om 3 uger").
RELATIVE_UPPER_LEADS = (
    "inden for", "indenfor", "inden", "senest", "i løbet af", "indenfor en periode af",
    "maksimalt", "maks.", "maks", "max.", "max", "højst", "tidsfrist", "tidsfristen er",
    "frist", "frist på", "tidsfrist på", "tidsfrist er", "ikke senere end", "ikke længere end",
)
RELATIVE_LOWER_LEADS = (
    "tidligst", "først", "udskudt", "udskydes", "udsat", "udsættes", "udskyd",
    "opstart", "opstartes", "start", "starter", "startes", "påbegyndes", "påbegyndelse",
    "mindst", "minimum", "min.", "afvent", "afventer", "afventes", "vent", "vente", "venter",
    "pause", "pause i", "fra",
)
RELATIVE_WEAK_LEADS = ("om", "efter")  # a postponed start unless a stronger lead comes first
# Words between a lead and the amount that change nothing ("tidligst om ca. 3 uger").
RELATIVE_FILLERS_RE = (  # regex
    r"ca\.?", r"cirka", r"omkring", r"om", r"efter", r"med", r"på", r"i",
    r"de\s+første", r"de\s+næste", r"den\s+første", r"mindst", r"minimum", r"min\.?",
    r"opstart", r"start", r"træning", r"træningen", r"genoptræning", r"genoptræningen",
    r"kan", r"skal", r"bør", r"passende", r"ske", r"være", r"gerne",
)
RELATIVE_MAX_FILLERS = 6
# Negations before "før"/"inden (for)" turn an upper-bound phrase into a lower bound.
NEGATION_WORDS = ("ikke", "ingen", "aldrig")
NEGATED_BEFORE = ("før", "inden", "tidligere end")  # "ikke ... før 4 uger": earliest = +N
NEGATED_WITHIN = ("inden for", "indenfor")          # "ikke ... inden for 7 dage": earliest = +N+1
NEGATION_GAP_WORDS = 4  # words allowed between "ikke" and "før"/"inden"

# What "efter"/"fra" after an amount may refer to and still mean discharge (regex).
DISCHARGE_WORDS_RE = (r"udskr\w*", r"hjemkomst\w*", r"hjemsendelse\w*")
# Words allowed between "efter" and the discharge word ("efter at patienten er udskrevet").
DISCHARGE_GAP_WORDS = ("at", "være", "er", "bliver", "blive", "blevet", "den", "dagen", "for",
                       "patienten", "borgeren", "pt.", "pt", "hun", "han", "endt", "sin", "sidste")

# Leads before an absolute date.
DATE_AFTER_LEADS = (  # earliest = date + 1 day
    "efter", "først efter", "tidligst efter", "opstart efter", "start efter",
    "påbegyndes efter", "opstartes efter", "startes efter", "ikke før efter",
)
DATE_FROM_LEADS = (  # earliest = date
    "fra", "fra og med", "f.o.m.", "f.o.m", "fom", "tidligst", "tidligst fra", "tidligst den",
    "først", "først fra", "opstart", "opstart fra", "opstartes", "start", "startes",
    "påbegyndes", "påbegyndes fra", "udskudt til", "udsat til", "udskydes til",
    "udsættes til",
)
DATE_BY_LEADS = (  # latest = date
    "senest", "senest den", "inden", "før", "til og med", "t.o.m.", "t.o.m", "tom",
    "frist", "tidsfrist", "senest d.",
)

# A bare date after one of these words (at most EVENT_GAP_WORDS words between) dates an event the
# start waits for: "efter endt strålebehandling 15/3", "når gipsen er fjernet d. 12/4".
EVENT_AFTER_WORDS = ("efter",)          # earliest = the day after the event's date
EVENT_AT_WORDS = ("når", "naar", "ved")  # earliest = the event's date
EVENT_GAP_WORDS = 5

# Periods: weeks and parts of a month.
WEEK_WORDS = ("uge", "ugen", "uge nr.", "uge nr", "ugenr.", "ugenummer")
MONTH_PARTS: Mapping[str, tuple[int, int]] = MappingProxyType({  # first and last day (31 = month end)
    "primo": (1, 10), "medio": (11, 20), "ultimo": (21, 31),
    "starten af": (1, 10), "start af": (1, 10), "begyndelsen af": (1, 10), "først i": (1, 10),
    "midten af": (11, 20), "midt i": (11, 20),
    "slutningen af": (21, 31), "udgangen af": (21, 31), "sidst i": (21, 31), "enden af": (21, 31),
})
PERIOD_AFTER_LEADS = ("efter", "tidligst efter", "først efter", "opstart efter", "start efter")
PERIOD_FROM_LEADS = ("fra", "fra og med", "tidligst", "tidligst i", "tidligst fra", "først", "først i",
                     "udskudt til", "udsat til", "udskydes til", "ikke før")
PERIOD_BY_LEADS = ("senest", "senest i", "til og med", "inden udgangen af", "senest ved udgangen af")
PERIOD_BEFORE_LEADS = ("inden", "før")  # by the end of the period before
PERIOD_IN_LEADS = ("i", "opstart", "opstart i", "opstartes", "opstartes i", "start", "start i", "startes i",
                   "påbegyndes", "påbegyndes i", "træning", "træning i", "genoptræning i", "planlagt")

ASAP_PHRASES = (
    "hurtigst muligt", "hurtigst mulig", "hurtigst", "snarest muligt", "snarest mulig",
    "snarest", "straks", "omgående", "omgaaende", "uden ventetid", "ingen ventetid",
    "med det samme", "umiddelbart efter udskrivelse", "umiddelbart efter udskrivelsen",
    "umiddelbart efter udskrivning", "umiddelbart efter udskrivningen", "umiddelbart",
    "så hurtigt som muligt", "så hurtigt det er muligt", "så snart som muligt",
    "så vidt muligt straks", "tidligst muligt", "asap", "hurtig opstart", "akut opstart",
)

# The whole text (without surrounding punctuation) is one of these: kind "none".
NONE_EXACT = (
    "ingen", "nej", "intet", "-", "–", "—", "/", "ikke relevant", "ej relevant", "irrelevant",
    "ikke aktuelt", "ikke aktuel", "n/a", "na", "ikke angivet", "ingen frist",
    "ingen tidsfrist", "ingen særlig", "ingen særlige", "ikke akut", "normal", "standard",
)
# One of these anywhere in a text without clauses: kind "none" (regex).
NONE_PHRASES_RE = (
    r"\bingen\s+(?:\w+\s+){0,2}?(?:tids)?frist\w*",
    r"\bikke\s+(?:nogen\s+)?(?:særlig\w*\s+|speciel\w*\s+)?(?:tids)?frist\w*",
    r"\buden\s+(?:særlig\w*\s+|speciel\w*\s+)?(?:tids)?frist\w*",
    r"\bingen\s+særlige?\s+(?:krav|hensyn)\w*",
    r"\bikke\s+relevant\b", r"\bej\s+relevant\b", r"\bikke\s+aktuel\w*",
    r"\bikke\s+akut\b", r"\bhaster\s+ikke\b",
    r"\b(?:normal|almindelig|gældende|lovpligtig|standard)\s*(?:tids)?frist\w*",
)

# Text between the last of these and a clause is "the same part of the sentence" (regex).
CLAUSE_BREAK_RE = r"[,.;:!?\n\r()]|\s[-–—]\s"

# --------------------------------------------------------------------------------------
# Compiled patterns (built once from the tables above; never modified).
# --------------------------------------------------------------------------------------

_FLAGS = re.IGNORECASE | re.UNICODE


def _phrase(p: str) -> str:
    return r"\s+".join(re.escape(w) for w in p.split())


def _alt(phrases: Iterable[str]) -> str:
    return "|".join(_phrase(p) for p in sorted(set(phrases), key=len, reverse=True))


def _alt_re(fragments: Iterable[str]) -> str:
    return "|".join(f"(?:{f})" for f in fragments)


_WORD_END = r"(?![\w])"
_NUM = (r"(?:(?<![\d½¼¾])(?<!\d[.,/])\d{1,3}(?![\d])"
        rf"|\b(?:{_alt(NUMBER_WORDS)}){_WORD_END})")
_UNIT = (rf"(?:{_alt(w for w in UNIT_WORDS if w.endswith('.'))}"  # "mdr.": the dot ends the word
         rf"|(?:{_alt(w for w in UNIT_WORDS if not w.endswith('.'))}){_WORD_END})")
_SINGLE = rf"(?:{_NUM}\s*{_UNIT}|\bdag\s+\d{{1,3}}(?!\d))"
_QTY = rf"{_SINGLE}(?:\s+og\s+{_SINGLE})?"
_QTY_PART_RE = re.compile(rf"(?P<num>{_NUM})\s*(?P<unit>{_UNIT})|\bdag\s+(?P<dayn>\d{{1,3}})", _FLAGS)

_NEG_GAP = rf"(?:\s+[\w]+){{0,{NEGATION_GAP_WORDS}}}?"
_RELATIVE_RE = re.compile(
    r"(?:(?:"
    rf"(?P<negwithin>\b(?:{_alt(NEGATION_WORDS)}){_NEG_GAP}\s+(?:{_alt(NEGATED_WITHIN)}))"
    rf"|(?P<negbefore>\b(?:{_alt(NEGATION_WORDS)}){_NEG_GAP}\s+(?:{_alt(NEGATED_BEFORE)}))"
    rf"|(?P<upper>\b(?:{_alt(RELATIVE_UPPER_LEADS)}))"
    rf"|(?P<lower>\b(?:{_alt(RELATIVE_LOWER_LEADS)}))"
    rf"|(?P<weak>\b(?:{_alt(RELATIVE_WEAK_LEADS)}))"
    rf"){_WORD_END}\s*(?::\s*)?)?"
    rf"(?:\b(?:{_alt_re(RELATIVE_FILLERS_RE)}){_WORD_END}\s*(?::\s*)?){{0,{RELATIVE_MAX_FILLERS}}}"
    r"(?:"
    rf"(?P<range>(?:(?P<mellem>\bmellem)\s+)?(?P<q1>{_NUM}(?:\s*{_UNIT})?)"
    rf"(?(mellem)\s+og\s+|\s*(?:-|–|—|\btil\b|\bà\b|\beller\b)\s*)(?P<q2>{_QTY}))"
    rf"|(?P<qty>{_QTY})"
    r")"
    rf"(?P<tail>\s*,?\s*\b(?:efter|fra)\s+(?:(?:{_alt(DISCHARGE_GAP_WORDS)})\s+){{0,3}}"
    rf"(?:{_alt_re(DISCHARGE_WORDS_RE)}))?",
    _FLAGS,
)
# Something after an amount that counts it from another event.
_OTHER_ANCHOR_RE = re.compile(
    r"\s*,?\s*(?:\b(?:efter|fra|før)\s+\w+|\bpost\s*-?\s*op\w*|\bp\.\s*o\.|\bpostoperativ\w*)",
    _FLAGS,
)

_MONTH = rf"(?:{_alt(MONTH_NAMES)})(?![\w])\.?"
_DATE_BODY = (
    r"(?:"
    r"(?<![\d])(?P<iy>\d{4})-(?P<im>\d{1,2})-(?P<id>\d{1,2})(?![\d])"
    r"|(?<!\d)(?<!\d[.,/-])(?P<nd>\d{1,2})\s*[./-]\s*(?P<nm>\d{1,2})"
    r"(?:\s*[./-]\s*(?P<ny>\d{4}|\d{2})|\s+(?P<ny4>\d{4}))(?![\d])"
    rf"|(?<!\d)(?<!\d[.,/-])(?P<td>\d{{1,2}})\s*\.?\s*(?P<tm>{_MONTH})(?:\s*,?\s*(?P<ty>\d{{4}})(?![\d]))?"
    rf"|(?<!\d)(?<!\d[.,/-])(?P<sd>\d{{1,2}})\s*(?:/|\.)\s*(?P<sm>\d{{1,2}})\.?(?![\d./-])(?!\s*{_UNIT})"
    r")"
)
_DATE_FILLER = rf"(?:(?:\bden\b|\bd\.|\bd\b|\b(?:{_alt(WEEKDAY_NAMES)}){_WORD_END})\s*){{0,3}}"
_DATE_RE = re.compile(
    r"(?:(?:"
    rf"(?P<dneg>\b(?:{_alt(NEGATION_WORDS)}){_NEG_GAP}\s+(?:{_alt(('før', 'inden', 'inden for', 'tidligere end'))}))"
    rf"|(?P<dafter>\b(?:{_alt(DATE_AFTER_LEADS)}))"
    rf"|(?P<dfrom>\b(?:{_alt(DATE_FROM_LEADS)}))"
    rf"|(?P<dby>\b(?:{_alt(DATE_BY_LEADS)}))"
    rf"){_WORD_END}\s*(?::\s*)?)?{_DATE_FILLER}{_DATE_BODY}",
    _FLAGS,
)
_EVENT_BEFORE_RE = re.compile(
    rf"\b(?:(?P<eafter>{_alt(EVENT_AFTER_WORDS)})|(?P<eat>{_alt(EVENT_AT_WORDS)})){_WORD_END}"
    rf"(?:\s+[^\s,.;:!?()]+){{1,{EVENT_GAP_WORDS}}}\s*$",
    _FLAGS,
)
_PERIOD_LEAD = (
    rf"(?:(?P<pafter>\b(?:{_alt(PERIOD_AFTER_LEADS)}))"
    rf"|(?P<pby>\b(?:{_alt(PERIOD_BY_LEADS)}))"
    rf"|(?P<pbefore>\b(?:{_alt(PERIOD_BEFORE_LEADS)}))"
    rf"|(?P<pfrom>\b(?:{_alt(PERIOD_FROM_LEADS)}))"
    rf"|(?P<pin>\b(?:{_alt(PERIOD_IN_LEADS)}))"
    rf"){_WORD_END}\s*"
)
_PERIOD_RE = re.compile(
    rf"(?:{_PERIOD_LEAD})?(?:"
    rf"(?P<week>\b(?:{_alt(WEEK_WORDS)})\s*(?P<w1>\d{{1,2}})(?:\s*(?:-|–|til)\s*(?P<w2>\d{{1,2}}))?(?!\d)"
    rf"(?:\s*(?:,\s*)?(?P<wy>(?:19|20)\d\d)(?!\d))?)"
    rf"|(?P<mpart>\b(?:{_alt(MONTH_PARTS)}))\s+(?P<pm>{_MONTH})(?:\s*(?P<py>(?:19|20)\d\d)(?!\d))?"
    rf"|(?P<mwhole>(?<=\s)|^)(?P<wm>{_MONTH})(?:\s*(?P<wmy>(?:19|20)\d\d)(?!\d))?"
    r")",
    _FLAGS,
)
# what every _PERIOD_RE match contains (casefolded, as IGNORECASE matches it): a week word or a
# month name, each of which starts with one of these
_PERIOD_WORDS = frozenset([*(w[:3] for w in WEEK_WORDS), *(m[:3] for m in MONTH_NAMES)])
_ASAP_RE = re.compile(rf"\b(?:{_alt(ASAP_PHRASES)}){_WORD_END}", _FLAGS)
_NONE_RE = re.compile(_alt_re(NONE_PHRASES_RE), _FLAGS)
_NONE_EXACT = frozenset(" ".join(p.split()).casefold() for p in NONE_EXACT)
_NEGATION_BEFORE_RE = re.compile(rf"\b(?:{_alt(NEGATION_WORDS)}){_WORD_END}", _FLAGS)
_CLAUSE_BREAK_RE = re.compile(CLAUSE_BREAK_RE)
# What every _DATE_RE match contains: two numbers with a separator between them (each form but
# the day-and-month-name one), or a number before a month name. Looked for first: it is cheap.
_DATE_HINT_RE = re.compile(rf"\d\s*[./-]\s*\d|\d\s*\.?\s*{_MONTH}", _FLAGS)
_STRIP_CHARS = " \t\r\n\u00a0.,;:!?()[]\"'"


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParsedDeadline:
    kind: str               # one of KINDS
    earliest: date | None   # earliest allowed start (postponed start), else None
    latest: date | None     # latest start the text demands, else None
    days_min: int | None    # offset of ``earliest`` in days when it came from a relative amount
    days_max: int | None    # offset of ``latest`` in days when it came from a relative amount
    matched: str | None     # the phrase used (a substring of ``text``), for explanation
    text: str               # the original text, unchanged


@dataclass(frozen=True)
class _Bound:
    day: date
    days: int | None  # offset from discharge for relative amounts, else None
    absolute: bool


@dataclass(frozen=True)
class _Clause:
    start: int
    end: int
    lower: _Bound | None = None
    upper: _Bound | None = None
    negation_ok: bool = False  # its lead is itself a negation ("ikke før ..."), so it reads one


class _Unusable(Exception):
    """The text contains something that makes it unusable; carries the span."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__(start, end)
        self.start, self.end = start, end


# --------------------------------------------------------------------------------------
# Arithmetic
# --------------------------------------------------------------------------------------

def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, _stdlib_calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class _Amount:
    months: int
    days: int
    workdays: bool

    def offset(self, discharge: date, extra_days: int = 0) -> _Bound:
        target = _add_months(discharge, self.months) + timedelta(days=self.days + extra_days)
        return _Bound(target, (target - discharge).days, absolute=False)


_UNIT_FACTORS = {"day": (0, 1), "week": (0, 7), "month": (1, 0), "year": (12, 0), "workday": (0, 1)}


def _amount(qty: str, default_unit: str | None = None) -> _Amount:
    months = days = hours = 0
    workdays = False
    for p in _QTY_PART_RE.finditer(qty):
        if p.group("dayn") is not None:
            days += int(p.group("dayn"))
            continue
        raw = p.group("num")
        n = int(raw) if raw.isdigit() else NUMBER_WORDS[raw.lower()]
        kind = UNIT_WORDS[" ".join(p.group("unit").lower().split())]
        workdays = workdays or kind == "workday"
        if kind == "hour":
            hours += n
        else:
            m, d = _UNIT_FACTORS[kind]
            months, days = months + n * m, days + n * d
    if default_unit is not None:  # a bare number in "2-4 uger": the unit of the other end
        for p in re.finditer(_NUM, qty, _FLAGS):
            raw = p.group(0)
            n = int(raw) if raw.isdigit() else NUMBER_WORDS[raw.lower()]
            m, d = _UNIT_FACTORS.get(default_unit, (0, 1))
            if default_unit == "hour":
                hours += n
            else:
                months, days = months + n * m, days + n * d
    return _Amount(months, days + math.ceil(hours / 24), workdays)


def _first_unit(qty: str) -> str:
    p = _QTY_PART_RE.search(qty)
    if p is None or p.group("unit") is None:
        return "day"
    return UNIT_WORDS[" ".join(p.group("unit").lower().split())]


# --------------------------------------------------------------------------------------
# Clause readers
# --------------------------------------------------------------------------------------

class _Scan:
    """Per-call state of one parse: the spans already used and where negations are."""

    def __init__(self, text: str, discharge: date, calendar=None, asap_days: int = ASAP_DAYS) -> None:
        self.text = text
        self.discharge = discharge
        self.calendar = calendar
        self.asap_days = asap_days
        self._starts: list[int] = []  # spans taken so far, sorted, never overlapping
        self._ends: list[int] = []
        self._breaks = [m.end() for m in _CLAUSE_BREAK_RE.finditer(text)]
        self._negations = [m.start() for m in _NEGATION_BEFORE_RE.finditer(text)]

    def take(self, start: int, end: int) -> bool:
        """Claim [start, end); False (and nothing claimed) if it overlaps a claimed span."""
        i = bisect.bisect_right(self._starts, start)
        if i > 0 and self._ends[i - 1] > start:
            return False
        if i < len(self._starts) and self._starts[i] < end:
            return False
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        return True

    def _inside_taken(self, pos: int) -> bool:
        i = bisect.bisect_right(self._starts, pos)
        return i > 0 and self._ends[i - 1] > pos

    def segment_start(self, pos: int) -> int:
        """Where the part of the sentence that ``pos`` is in begins."""
        i = bisect.bisect_right(self._breaks, pos)
        return self._breaks[i - 1] if i else 0

    def negated_before(self, start: int) -> bool:
        """Is there a negation in the same part of the sentence, before ``start``, that no
        clause has read (as in "ikke før om 2 uger") or is part of ("ingen ventetid")?"""
        i = bisect.bisect_right(self._breaks, start)
        segment_start = self._breaks[i - 1] if i else 0
        j = bisect.bisect_left(self._negations, segment_start)
        while j < len(self._negations) and self._negations[j] < start:
            if not self._inside_taken(self._negations[j]):
                return True
            j += 1
        return False


def _resolve_date(m: re.Match[str], discharge: date) -> date:
    g = m.groupdict()
    if g["iy"]:
        return date(int(g["iy"]), int(g["im"]), int(g["id"]))
    if g["nd"]:
        year = g["ny"] or g["ny4"]
        y = int(year) + (2000 if len(year) == 2 else 0)
        return date(y, int(g["nm"]), int(g["nd"]))
    if g["td"]:
        month = MONTH_NAMES[g["tm"].rstrip(".").lower()]
        if g["ty"]:
            return date(int(g["ty"]), month, int(g["td"]))
        return _next_date(month, int(g["td"]), discharge)
    return _next_date(int(g["sm"]), int(g["sd"]), discharge)


def _next_date(month: int, day: int, discharge: date) -> date:
    """The first ``day``/``month`` on or after ``discharge`` (29 Feb may be years ahead)."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError("no such date")
    for year in range(discharge.year, min(discharge.year + 9, date.max.year + 1)):
        try:
            d = date(year, month, day)
        except ValueError:
            continue
        if d >= discharge:
            return d
    raise ValueError("no such date")


def _date_clauses(scan: _Scan) -> list[_Clause]:
    discharge = scan.discharge
    out: list[_Clause] = []
    if _DATE_HINT_RE.search(scan.text) is None:
        return out  # nothing for the (costlier) date pattern to find
    for m in _DATE_RE.finditer(scan.text):
        start, end = m.span()
        scan.take(start, end)  # the first pass: never overlaps
        try:
            d = _resolve_date(m, discharge)
        except (ValueError, OverflowError):
            raise _Unusable(start, end) from None
        if m.group("dafter"):
            try:
                d += timedelta(days=1)
            except OverflowError:
                raise _Unusable(start, end) from None
            out.append(_Clause(start, end, lower=_Bound(d, None, absolute=True)))
        elif m.group("dfrom") or m.group("dneg"):
            out.append(_Clause(start, end, lower=_Bound(d, None, absolute=True),
                               negation_ok=m.group("dneg") is not None))
        elif m.group("dby"):
            out.append(_Clause(start, end, upper=_Bound(d, None, absolute=True)))
        else:
            event = _EVENT_BEFORE_RE.search(scan.text, scan.segment_start(start), start)
            if event is None:
                continue  # a bare date is not used by itself
            if event.group("eafter"):
                try:
                    d += timedelta(days=1)
                except OverflowError:
                    raise _Unusable(start, end) from None
            start = event.start()
            out.append(_Clause(start, end, lower=_Bound(d, None, absolute=True)))
        if d < discharge:
            raise _Unusable(start, end)
    return out


def _relative_clauses(scan: _Scan) -> list[_Clause]:
    discharge = scan.discharge
    out: list[_Clause] = []
    if _QTY_PART_RE.search(scan.text) is None:
        return out  # every amount has a number and a unit ("14 dage", "dag 3"): nothing to find
    for m in _RELATIVE_RE.finditer(scan.text):
        start, end = m.span()
        if not scan.take(start, end):
            continue
        if m.group("tail") is None:
            other = _OTHER_ANCHOR_RE.match(scan.text, end)
            if other is not None:
                raise _Unusable(start, other.end())
        if m.group("range") is not None:
            hi_amount = _amount(m.group("q2"))
            q1 = m.group("q1")
            lo_amount = _amount(q1, None if _QTY_PART_RE.search(q1) else _first_unit(m.group("q2")))
            amounts = [lo_amount, hi_amount]
        else:
            amounts = [_amount(m.group("qty"))]
        extra = 1 if m.group("negwithin") else 0
        try:
            if any(a.workdays for a in amounts):
                # working days need the holiday calendar; without one the text is not used
                if scan.calendar is None or any(a.months or not a.workdays for a in amounts):
                    raise _Unusable(start, end)
                days = [scan.calendar.add_working_days(discharge, a.days + extra) for a in amounts]
                bounds = sorted((_Bound(d, (d - discharge).days, absolute=False) for d in days),
                                key=lambda b: b.day)
            else:
                bounds = sorted((a.offset(discharge, extra) for a in amounts), key=lambda b: b.day)
        except (ValueError, OverflowError):
            raise _Unusable(start, end) from None
        lo, hi = bounds[0], bounds[-1]
        negated = m.group("negwithin") is not None or m.group("negbefore") is not None
        if m.group("upper"):
            out.append(_Clause(start, end, upper=hi))
        elif m.group("range") is not None:
            out.append(_Clause(start, end, lower=lo, upper=hi, negation_ok=negated))
        elif negated or m.group("lower") or m.group("weak") or m.group("tail") is not None:
            out.append(_Clause(start, end, lower=lo, negation_ok=negated))
        # else: a single bare amount ("14 dage") is not used by itself
    return out


def _iso_week(discharge: date, week: int, year: int | None) -> tuple[date, date]:
    """Monday and Sunday of ISO week ``week``: of ``year``, else the first that ends on or after
    ``discharge``."""
    years = [year] if year is not None else [discharge.year - 1, discharge.year, discharge.year + 1]
    for y in years:
        try:
            monday = date.fromisocalendar(y, week, 1)
        except ValueError:
            continue
        sunday = monday + timedelta(days=6)
        if year is not None or sunday >= discharge:
            return monday, sunday
    raise ValueError("no such week")


def _month_part(discharge: date, month: int, part: tuple[int, int], year: int | None) -> tuple[date, date]:
    """First and last day of the part of ``month``: of ``year``, else the first that ends on or
    after ``discharge``."""
    for y in [year] if year is not None else [discharge.year, discharge.year + 1]:
        last = _stdlib_calendar.monthrange(y, month)[1]
        first_day, last_day = date(y, month, part[0]), date(y, month, min(part[1], last))
        if year is not None or last_day >= discharge:
            return first_day, last_day
    raise ValueError("no such month")


def _period_clauses(scan: _Scan) -> list[_Clause]:
    discharge = scan.discharge
    out: list[_Clause] = []
    folded = scan.text.casefold()
    if not any(word in folded for word in _PERIOD_WORDS):
        return out  # every period names a week or a month: nothing for the (costlier) pattern to find
    for m in _PERIOD_RE.finditer(scan.text):
        has_lead = any(m.group(g) for g in ("pafter", "pby", "pbefore", "pfrom")) or (
            m.group("pin") is not None and m.group("pin").lower() != "i")
        if m.group("wm") is not None and not has_lead:
            continue  # a month alone, or after a bare "i" ("opereret i juli"), is not used by itself
        start, end = m.span()
        if not scan.take(start, end):
            continue
        try:
            if m.group("week"):
                first, _ = _iso_week(discharge, int(m.group("w1")), int(m.group("wy")) if m.group("wy") else None)
                last_week = int(m.group("w2") or m.group("w1"))
                _, last = _iso_week(first, last_week, int(m.group("wy")) if m.group("wy") else None) \
                    if last_week != int(m.group("w1")) else (first, first + timedelta(days=6))
            elif m.group("mpart"):
                part = MONTH_PARTS[" ".join(m.group("mpart").lower().split())]
                month = MONTH_NAMES[m.group("pm").rstrip(".").lower()]
                first, last = _month_part(discharge, month, part, int(m.group("py")) if m.group("py") else None)
            else:
                month = MONTH_NAMES[m.group("wm").rstrip(".").lower()]
                first, last = _month_part(discharge, month, (1, 31), int(m.group("wmy")) if m.group("wmy") else None)
        except (ValueError, OverflowError):
            raise _Unusable(start, end) from None
        if last < first:
            raise _Unusable(start, end)
        first = max(first, discharge)
        if m.group("pafter"):
            out.append(_Clause(start, end, lower=_Bound(last + timedelta(days=1), None, absolute=True)))
        elif m.group("pfrom"):
            out.append(_Clause(start, end, lower=_Bound(first, None, absolute=True),
                               negation_ok=m.group("pfrom").lower().startswith("ikke")))
        elif m.group("pby"):
            out.append(_Clause(start, end, upper=_Bound(last, None, absolute=True)))
        elif m.group("pbefore"):
            before = first - timedelta(days=1)
            if before < discharge:
                raise _Unusable(start, end)
            out.append(_Clause(start, end, upper=_Bound(before, None, absolute=True)))
        else:
            out.append(_Clause(start, end, lower=_Bound(first, None, absolute=True),
                               upper=_Bound(last, None, absolute=True)))
    return out


def _asap_clauses(scan: _Scan) -> list[_Clause]:
    out: list[_Clause] = []
    for m in _ASAP_RE.finditer(scan.text):
        start, end = m.span()
        if not scan.take(start, end):
            continue
        try:
            latest = scan.discharge + timedelta(days=scan.asap_days)
        except OverflowError:
            raise _Unusable(start, end) from None
        out.append(_Clause(start, end, upper=_Bound(latest, scan.asap_days, absolute=False)))
    return out


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

def _result(text: str, kind: str, earliest: _Bound | None = None, latest: _Bound | None = None,
            matched: str | None = None) -> ParsedDeadline:
    return ParsedDeadline(
        kind=kind,
        earliest=earliest.day if earliest else None,
        latest=latest.day if latest else None,
        days_min=earliest.days if earliest else None,
        days_max=latest.days if latest else None,
        matched=matched,
        text=text,
    )


def parse_deadline_text(text: str, discharge: date, calendar=None, asap_days: int = ASAP_DAYS) -> ParsedDeadline:
    """Read a Danish start-deadline text, relative to ``discharge`` (day 0).

    ``calendar`` (a :class:`~adapter.rules.calendar.DanishCalendar`) lets working days
    ("senest 3 hverdage") be counted; without it such a text is ``unparsed``. ``asap_days`` is
    the day "hurtigst muligt" means (the rules' setting ``asap_days``).
    See the module documentation for the phrasings understood and the decisions taken.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if not isinstance(discharge, date) or isinstance(discharge, datetime):
        raise TypeError(f"discharge must be a datetime.date, got {type(discharge).__name__}")

    scan = _Scan(text, discharge, calendar, asap_days)
    try:
        clauses = _date_clauses(scan)
        clauses += _period_clauses(scan)
        clauses += _relative_clauses(scan)
        asap = _asap_clauses(scan)
    except _Unusable as bad:
        return _result(text, "unparsed", matched=text[bad.start:bad.end].strip() or None)
    for c in clauses + asap:  # after all passes, so that every negation read is known
        if not c.negation_ok and scan.negated_before(c.start):
            return _result(text, "unparsed", matched=text[c.start:c.end].strip())
    if not clauses:
        clauses = asap  # an explicit deadline wins over "hurtigst muligt"

    if clauses:
        lowers = [c.lower for c in clauses if c.lower is not None]
        uppers = [c.upper for c in clauses if c.upper is not None]
        earliest = max(lowers, key=lambda b: b.day, default=None)
        latest = min(uppers, key=lambda b: b.day, default=None)
        matched = text[min(c.start for c in clauses):max(c.end for c in clauses)].strip()
        if earliest is not None and latest is not None:
            if earliest.day > latest.day:
                return _result(text, "unparsed", matched=matched)
            kind = "range"
        elif latest is not None:
            kind = "within"
        else:
            assert earliest is not None
            kind = "on_or_after_date" if earliest.absolute else "not_before"
        if any(b.day < discharge for b in (earliest, latest) if b is not None):
            return _result(text, "unparsed", matched=matched)
        return _result(text, kind, earliest, latest, matched)

    stripped = text.strip(_STRIP_CHARS)
    if not stripped:
        return _result(text, "none")
    if " ".join(stripped.split()).casefold() in _NONE_EXACT:
        return _result(text, "none", matched=stripped)
    none = _NONE_RE.search(text)
    if none is not None:
        return _result(text, "none", matched=none.group(0))
    return _result(text, "unparsed")
