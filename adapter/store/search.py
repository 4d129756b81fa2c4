"""FHIR reads and searches over the store (SQLAlchemy Core), always inside a :class:`Scope`.

The scope (which municipality's resources a client may see) is a SQL condition in every
query this module runs: searches, reads, version reads, histories and ``_include`` look-ups.
A municipality sees its plans' resources (``resources.municipality``) and the shared
Patients, Organizations and Practitioners its messages name (``resource_access``), never
whether another municipality has them too. A scope that names no municipality and is not
``everything`` sees nothing.

Search parameters are a table (:data:`SEARCH_PARAMS`); the CapabilityStatement is built from
the same table, so it lists exactly what is implemented. The SQL query filters on type, scope,
``_id``, ``_lastUpdated``, ``status`` (the ``status`` column) and (for patient references) the
``patient_id`` column; other conditions on the JSON content are checked in Python over the
rows the SQL query streams, before counting and slicing, so ``total`` and paging stay exact.
Results are ordered by ``last_updated`` then ``id``; the indexes of migrations 0006 and 0007
serve a municipality's pages and sync feed (``docs/performance.md``).

Rows carry a resource as the stored JSON text (``raw``): a page is served without decoding and
re-encoding it, and only the searches that look inside a resource (content predicates,
``_include``, ``_revinclude``, ``_elements``) decode it (:func:`content_of`).

``total`` (FHIR makes it optional): exact with ``_summary=count`` and, on every page, with
``_total=accurate``. Otherwise the first page of a search (no ``_cursor``) counts at most
:data:`COUNT_LIMIT` matches and gives ``total`` when there are no more than that; a
``_cursor`` page and ``_total=none`` leave it out. So a page costs about the same however
many resources match (counting the 27,500 open Tasks of one municipality took 9 ms, the page
itself 0.2 ms), and a walk does not count every match again on each page.

Times: ``last_updated`` is stored in UTC (SQLite keeps no offset, so every writer must pass
UTC). A ``_lastUpdated`` value without an offset is read as Danish local time
(Europe/Copenhagen).

Nothing here echoes a parameter's value in an error: :class:`SearchError` names the
parameter only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Text, and_, cast, false, func, or_, select, tuple_
from sqlalchemy.engine import Connection, Row

from adapter.danish_time import DANISH_TIME, as_utc
from adapter.fhir.identity import SHARED_TYPES
from adapter.store.schema import resource_access, resource_history, resources

DEFAULT_COUNT = 50
MAX_COUNT = 500
COUNT_LIMIT = 10_000  # the most matches a page counts for its total unless _total=accurate
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# --------------------------------------------------------------------------------------------
# Scope
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a client may see: one municipality's resources, or everything (operators)."""

    municipality: str | None = None
    everything: bool = False

    def owns(self, column):
        """The condition on a plan resource's municipality column (a Task, a ServiceRequest)."""
        if self.everything:
            return None
        if not self.municipality:
            return false()
        return column == self.municipality

    def condition(self, table=resources, rtype: str | None = None):
        """The SQL condition on ``resources`` (or ``resource_history``) rows: None for everything.

        ``rtype``: the rows are of this one type. A plan's types (Task, ServiceRequest, …) are
        only ever seen through their municipality column (``resource_access`` holds shared
        types only), so their condition is that column alone, which an index serves."""
        if self.everything:
            return None
        if not self.municipality:
            return false()
        if rtype is not None and rtype not in SHARED_TYPES:
            return table.c.municipality == self.municipality
        if table is resource_history:
            # shared resources: every version (the resource itself must be visible now)
            return or_(table.c.municipality == self.municipality, table.c.type.in_(SHARED_TYPES))
        granted = select(resource_access.c.id).where(
            resource_access.c.type == table.c.type, resource_access.c.id == table.c.id,
            resource_access.c.municipality == self.municipality).exists()
        return or_(table.c.municipality == self.municipality, granted)


def _scoped(conditions: list, scope: Scope, table=resources, rtype: str | None = None) -> list:
    cond = scope.condition(table, rtype)
    return conditions if cond is None else [*conditions, cond]


# --------------------------------------------------------------------------------------------
# Parameter table
# --------------------------------------------------------------------------------------------

SP = "http://hl7.org/fhir/SearchParameter/"


@dataclass(frozen=True)
class ParamDef:
    name: str
    type: str  # token | reference | date
    path: str  # element of the resource
    kind: str  # code | codeable | identifier | reference
    definition: str
    documentation: str
    target: str | None = None  # reference: the type a bare id means
    owner_identifier: bool = False  # reference: also an identifier token of the referenced Organization


def _subject_params(rtype: str, element: str = "subject") -> dict[str, ParamDef]:
    return {
        "patient": ParamDef("patient", "reference", element, "reference", SP + "clinical-patient",
                            f"The Patient the {rtype} concerns ({rtype}.{element}): Patient/<id> or <id>.",
                            target="Patient"),
        "subject": ParamDef("subject", "reference", element, "reference", SP + f"{rtype}-subject",
                            f"{rtype}.{element}: Type/<id> or <id>."),
    }


SEARCH_PARAMS: dict[str, dict[str, ParamDef]] = {
    "Task": {
        "owner": ParamDef(
            "owner", "reference", "owner", "reference", SP + "Task-owner",
            "Task.owner: Organization/<id>, or an identifier token system|value of the owning "
            "Organization (e.g. http://hl7.dk/fhir/core/CodeSystem/dk-core-municipality-codes|0461); "
            "owner:identifier takes the token too.",
            target="Organization", owner_identifier=True),
        "status": ParamDef("status", "token", "status", "code", SP + "Task-status", "Task.status."),
        "business-status": ParamDef("business-status", "token", "businessStatus", "codeable",
                                    SP + "Task-business-status",
                                    "Task.businessStatus coding: [system|]code."),
        "patient": ParamDef("patient", "reference", "for", "reference", SP + "Task-patient",
                            "Task.for: Patient/<id> or <id>.", target="Patient"),
        "subject": ParamDef("subject", "reference", "for", "reference", SP + "Task-subject",
                            "Task.for: Type/<id> or <id>."),
        "focus": ParamDef("focus", "reference", "focus", "reference", SP + "Task-focus",
                          "Task.focus: ServiceRequest/<id> or <id>."),
        "code": ParamDef("code", "token", "code", "codeable", SP + "Task-code", "Task.code coding: [system|]code."),
    },
    "ServiceRequest": _subject_params("ServiceRequest"),
    "CarePlan": _subject_params("CarePlan"),
    "Condition": _subject_params("Condition"),
    "Communication": _subject_params("Communication"),
    "DocumentReference": _subject_params("DocumentReference"),
    "Encounter": _subject_params("Encounter"),
    "Consent": {"patient": ParamDef("patient", "reference", "patient", "reference", SP + "clinical-patient",
                                    "Consent.patient: Patient/<id> or <id>.", target="Patient")},
    "Patient": {"identifier": ParamDef("identifier", "token", "identifier", "identifier", SP + "Patient-identifier",
                                       "Patient.identifier: [system|]value (CPR: urn:oid:1.2.208.176.1.2|<cpr>).")},
    "Organization": {"identifier": ParamDef("identifier", "token", "identifier", "identifier",
                                            SP + "Organization-identifier",
                                            "Organization.identifier: [system|]value (GLN, SOR, municipality code).")},
    "Practitioner": {},
    "PractitionerRole": {},
    "Provenance": {},
}

COMMON_PARAMS: dict[str, ParamDef] = {
    "_id": ParamDef("_id", "token", "id", "code", SP + "Resource-id", "The resource id; comma-separated ids mean any."),
    "_lastUpdated": ParamDef("_lastUpdated", "date", "meta.lastUpdated", "date", SP + "Resource-lastUpdated",
                             "meta.lastUpdated with eq, ne, gt, ge, lt, le, sa, eb prefixes; repeat for a range. "
                             "A value without an offset is Danish local time."),
}

# _include values: Type:param -> the element holding the reference
INCLUDES: dict[str, dict[str, str]] = {
    "Task": {"focus": "focus", "patient": "for", "owner": "owner", "based-on": "basedOn"},
    "ServiceRequest": {"patient": "subject", "requester": "requester", "performer": "performer"},
    "CarePlan": {"patient": "subject", "activity-reference": "activity.reference"},
}
# _revinclude values: Type:param -> (the type that refers, the element holding the reference)
REVINCLUDES: dict[str, dict[str, tuple[str, str]]] = {
    "ServiceRequest": {"Task:focus": ("Task", "focus"),
                       "CarePlan:activity-reference": ("CarePlan", "activity.reference")},
    "CarePlan": {"Task:based-on": ("Task", "basedOn")},
    "Patient": {"Task:patient": ("Task", "for"), "ServiceRequest:patient": ("ServiceRequest", "subject"),
                "CarePlan:patient": ("CarePlan", "subject")},
}

# Result parameters this module understands besides the search parameters.
RESULT_PARAMS = ("_count", "_offset", "_include", "_total")
TOTALS = ("none", "estimate", "accurate")
# Parameters that are accepted and change nothing for JSON output.
NEUTRAL_PARAMS = ("_format", "_pretty")


def searchable_types() -> list[str]:
    return list(SEARCH_PARAMS)



# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


class SearchError(ValueError):
    """A bad search: ``param`` names the parameter (never its value)."""

    def __init__(self, param: str, reason: str, status: int = 400):
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason
        self.status = status


def split_values(raw: str) -> list[str]:
    """Comma-separated values (OR) with FHIR's ``\\,`` escape; empty values dropped."""
    out, cur, esc = [], [], False
    for ch in raw:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [v for v in out if v != ""]


@dataclass(frozen=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code

    @classmethod
    def parse(cls, raw: str) -> Token:
        if "|" in raw:
            system, code = raw.split("|", 1)
            return cls(system, code or None)
        return cls(None, raw)

    def matches(self, system: str | None, code: str | None) -> bool:
        if self.system is not None:
            if self.system == "" and system:
                return False
            if self.system != "" and self.system != system:
                return False
        return self.code is None or self.code == code


@dataclass(frozen=True)
class Ref:
    type: str | None
    id: str

    @classmethod
    def parse(cls, raw: str, default_type: str | None = None) -> Ref | None:
        value = raw.split("/_history/", 1)[0].rstrip("/")
        parts = value.split("/")
        if len(parts) >= 2 and parts[-2][:1].isupper():
            return cls(parts[-2], parts[-1])
        if len(parts) == 1 and value:
            return cls(default_type, value)
        return None

    def matches(self, reference: str | None) -> bool:
        if not reference:
            return False
        other = Ref.parse(reference)
        if other is None:
            return False
        return other.id == self.id and (self.type is None or other.type == self.type)


PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")


@dataclass(frozen=True)
class DateBound:
    prefix: str
    start: dt.datetime  # inclusive, UTC
    end: dt.datetime  # exclusive, UTC


def parse_date(raw: str, param: str = "_lastUpdated") -> DateBound:
    """A FHIR date search value as the range its precision covers, in UTC."""
    prefix = raw[:2] if raw[:2] in PREFIXES else "eq"
    value = raw[2:] if raw[:2] in PREFIXES else raw
    m = _DATE.match(value)
    if not m:
        raise SearchError(param, "expected [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|+hh:mm]]]]")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        return DateBound(prefix, *_date_range(year, month, day, hour, minute, second, frac, zone))
    except (ValueError, OverflowError):
        raise SearchError(param, "not a valid date or time") from None


def _date_range(year, month, day, hour, minute, second, frac, zone) -> tuple[dt.datetime, dt.datetime]:
    tz: dt.tzinfo = DANISH_TIME
    if zone == "Z":
        tz = dt.UTC
    elif zone:
        sign = 1 if zone[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    if month is None:
        start = dt.datetime(int(year), 1, 1, tzinfo=tz)
        end = dt.datetime(int(year) + 1, 1, 1, tzinfo=tz)
    elif day is None:
        start = dt.datetime(int(year), int(month), 1, tzinfo=tz)
        end = (dt.datetime(int(year) + 1, 1, 1, tzinfo=tz) if int(month) == 12
               else dt.datetime(int(year), int(month) + 1, 1, tzinfo=tz))
    elif hour is None:
        start = dt.datetime(int(year), int(month), int(day), tzinfo=tz)
        end = start + dt.timedelta(days=1)
    else:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        start = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro,
                            tzinfo=tz)
        if frac:  # the precision given: .123 covers a millisecond
            end = start + dt.timedelta(microseconds=10 ** (6 - min(len(frac), 6)))
        elif second is not None:
            end = start + dt.timedelta(seconds=1)
        else:
            end = start + dt.timedelta(minutes=1)
    utc = dt.UTC
    return start.astimezone(utc), end.astimezone(utc)


def _date_condition(column, b: DateBound):
    if b.prefix == "eq":
        return and_(column >= b.start, column < b.end)
    if b.prefix == "ne":
        return (column < b.start) | (column >= b.end)
    if b.prefix in ("gt", "sa"):
        return column >= b.end
    if b.prefix == "ge":
        return column >= b.start
    if b.prefix in ("lt", "eb"):
        return column < b.start
    return column < b.end  # le


# --------------------------------------------------------------------------------------------
# Content access
# --------------------------------------------------------------------------------------------


def _elements(resource: dict, path: str) -> list:
    items: list = [resource]
    for part in path.split("."):
        nxt: list = []
        for it in items:
            if isinstance(it, dict) and part in it:
                v = it[part]
                nxt.extend(v if isinstance(v, list) else [v])
        items = nxt
    return items


def _token_predicate(pdef: ParamDef, tokens: list[Token]) -> Callable[[dict], bool]:
    def codes(resource: dict) -> Iterable[tuple[str | None, str | None]]:
        for el in _elements(resource, pdef.path):
            if pdef.kind == "code":
                if isinstance(el, str):
                    yield None, el
            elif pdef.kind == "codeable":
                if isinstance(el, dict):
                    for c in el.get("coding") or []:
                        if isinstance(c, dict):
                            yield c.get("system"), c.get("code")
            elif pdef.kind == "identifier" and isinstance(el, dict):
                yield el.get("system"), el.get("value")

    if pdef.kind == "code":  # a code element has an implicit system: match the code only
        tokens = [Token(None, t.code) for t in tokens]

    def pred(resource: dict) -> bool:
        pairs = list(codes(resource))
        return any(t.matches(s, c) for t in tokens for s, c in pairs)

    return pred


def references(resource: dict, path: str) -> list[str]:
    return [el["reference"] for el in _elements(resource, path)
            if isinstance(el, dict) and isinstance(el.get("reference"), str)]


def _reference_predicate(path: str, refs: list[Ref]) -> Callable[[dict], bool]:
    def pred(resource: dict) -> bool:
        values = references(resource, path)
        return any(r.matches(v) for r in refs for v in values)

    return pred


# --------------------------------------------------------------------------------------------
# Parsing a search
# --------------------------------------------------------------------------------------------


SORTS = ("_lastUpdated", "-_lastUpdated", "_id", "-_id")


def _page_time(stamp: str) -> dt.datetime:
    """A cursor's time: aware, in UTC, within the years a store can hold (else ValueError)."""
    when = dt.datetime.fromisoformat(stamp)
    if when.tzinfo is None or not 1900 <= when.year <= 2100:
        raise ValueError(stamp)
    return when.astimezone(dt.UTC)
_ELEMENT = re.compile(r"^[a-z][A-Za-z0-9]{0,63}$")


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the sort key of its last match. Opaque to clients (``_cursor``); it
    carries a time and an id of the adapter's own, nothing else."""

    sort: str
    last_updated: dt.datetime | None
    id: str

    def token(self) -> str:
        stamp = self.last_updated.astimezone(dt.UTC).isoformat() if self.last_updated else ""
        raw = json.dumps([self.sort, stamp, self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def parse(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            sort, stamp, rid = json.loads(raw)
            if sort not in SORTS or not isinstance(rid, str) or not FHIR_ID.match(rid):
                raise ValueError(sort)
            when = _page_time(stamp) if stamp else None
        except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError, RecursionError):
            raise SearchError("_cursor", "not a page of this search: follow the links of the previous page") from None
        return cls(sort, when, rid)


@dataclass
class ParsedSearch:
    rtype: str
    count: int = DEFAULT_COUNT
    offset: int = 0
    cursor: Cursor | None = None  # where the previous page ended (keyset paging)
    sort: str = "_lastUpdated"  # _lastUpdated | -_lastUpdated | _id | -_id
    ids: set[str] | None = None  # _id (AND of repeats: intersection)
    dates: list[DateBound] = field(default_factory=list)
    patient_ids: set[str] | None = None  # SQL pre-filter on resources.patient_id
    predicates: list[Callable[[dict], bool]] = field(default_factory=list)
    statuses: list[set[str]] = field(default_factory=list)  # status=…: SQL on resources.status (AND of repeats)
    owner_tokens: list[list[Token]] = field(default_factory=list)  # Organization identifiers to resolve
    includes: list[tuple[str, str]] = field(default_factory=list)  # (param, element)
    revincludes: list[tuple[str, str]] = field(default_factory=list)  # (referring type, element)
    summary_count: bool = False  # _summary=count: the total only
    total_mode: str | None = None  # _total: none | estimate | accurate (None: not given)
    elements: list[str] | None = None  # _elements: the top-level elements of each match
    used: list[str] = field(default_factory=list)  # names of the parameters applied
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (name, why) for the outcome


MAX_OFFSET = 1_000_000_000
VERSION_ID = re.compile(r"^[0-9]{1,9}$")


def whole_number(name: str, raw: str, low: int = 0, high: int = MAX_OFFSET) -> int:
    """A parameter's whole number (ASCII digits only) at least ``low``, else SearchError;
    ``_count`` above ``high`` is ``high`` (FHIR lets a server page less), anything else is refused."""
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit():
        raise SearchError(name, "expected a whole number")
    if name == "_count" and (len(raw) > 12 or int(raw) > high):
        return high
    if len(raw) > 12 or int(raw) > high:
        raise SearchError(name, f"must be {high} or less")
    value = int(raw)
    if value < low:
        raise SearchError(name, f"must be {low} or more")
    return value


def parse_search(rtype: str, pairs: Sequence[tuple[str, str]]) -> ParsedSearch:
    """Read the query parameters of ``GET [base]/<rtype>?…``. Raises :class:`SearchError`."""
    defs = {**COMMON_PARAMS, **SEARCH_PARAMS[rtype]}
    ps = ParsedSearch(rtype)
    seen_count = seen_offset = False
    for name, raw in pairs:
        base, _, modifier = name.partition(":")
        if base == "_count":
            if not seen_count:
                ps.count = whole_number("_count", raw, high=MAX_COUNT)
                seen_count = True
            _use(ps, base)
            continue
        if base == "_offset":
            if not seen_offset:
                ps.offset = whole_number("_offset", raw)
                seen_offset = True
            continue
        if base == "_cursor":
            ps.cursor = Cursor.parse(raw)
            continue
        if base == "_sort":
            if raw in SORTS:
                ps.sort = raw
                _use(ps, base)
            else:
                ps.ignored.append((name, "supported: " + ", ".join(SORTS)))
            continue
        if base in NEUTRAL_PARAMS:
            continue
        if base == "_include":
            _include(ps, raw, modifier)
            continue
        if base == "_revinclude":
            found = REVINCLUDES.get(ps.rtype, {}).get(raw)
            if modifier or found is None:
                ps.ignored.append((name, "unsupported _revinclude value"))
            elif found not in ps.revincludes:
                ps.revincludes.append(found)
                _use(ps, base)
            continue
        if base == "_summary":
            if raw == "count":
                ps.summary_count = True
                _use(ps, base)
            elif raw != "false":
                ps.ignored.append((name, "supported: count, false"))
            continue
        if base == "_total":
            if raw in TOTALS and not modifier:
                ps.total_mode = raw
                _use(ps, base)
            else:
                ps.ignored.append((name, "supported: " + ", ".join(TOTALS)))
            continue
        if base == "_elements":
            names = [n.strip() for n in raw.split(",") if n.strip()]
            if all(_ELEMENT.match(n) for n in names) and names:
                ps.elements = sorted(set(ps.elements or []) | set(names))
                _use(ps, base)
            else:
                ps.ignored.append((name, "expected top-level element names"))
            continue
        pdef = defs.get(base)
        if pdef is None:
            ps.ignored.append((name, "unknown search parameter"))
            continue
        if modifier and not (modifier == "identifier" and pdef.owner_identifier):
            ps.ignored.append((name, "unsupported modifier"))
            continue
        values = split_values(raw)
        if not values:  # FHIR: a parameter without a value is ignored
            continue
        _use(ps, base)
        if pdef.type == "date":
            bounds = [parse_date(v, base) for v in values]
            if len(bounds) > 1:
                raise SearchError(base, "one value per _lastUpdated parameter; repeat it for a range")
            ps.dates.append(bounds[0])
        elif pdef.name == "_id":
            ids = {v for v in values if FHIR_ID.match(v)}
            ps.ids = ids if ps.ids is None else ps.ids & ids
        elif pdef.type == "token":
            tokens = [Token.parse(v) for v in values]
            if pdef.kind == "code" and pdef.path == "status" and all(t.code and len(t.code) <= 64 for t in tokens):
                # resources.status holds the status code: the same match (a code element's
                # system is implicit, so only the code counts), done in SQL through an index
                ps.statuses.append({t.code for t in tokens if t.code})
            else:
                ps.predicates.append(_token_predicate(pdef, tokens))
        else:
            _reference(ps, pdef, values, modifier)
    if ps.cursor is not None and ps.cursor.sort != ps.sort:
        raise SearchError("_cursor", "not a page of this search: follow the links of the previous page")
    return ps


def _use(ps: ParsedSearch, name: str) -> None:
    if name not in ps.used:
        ps.used.append(name)


def _include(ps: ParsedSearch, raw: str, modifier: str) -> None:
    if modifier:
        ps.ignored.append(("_include:" + modifier, "unsupported modifier"))
        return
    source, _, param = raw.partition(":")
    element = INCLUDES.get(source, {}).get(param)
    if source != ps.rtype or element is None:
        ps.ignored.append(("_include", "unsupported _include value"))
        return
    if (param, element) not in ps.includes:
        ps.includes.append((param, element))
    _use(ps, "_include")


def _reference(ps: ParsedSearch, pdef: ParamDef, values: list[str], modifier: str) -> None:
    if pdef.owner_identifier and (modifier == "identifier" or any("|" in v for v in values)):
        if not all("|" in v for v in values) and modifier != "identifier":
            raise SearchError(pdef.name, "mix of references and identifier tokens")
        ps.owner_tokens.append([Token.parse(v) for v in values])
        return
    refs = [Ref.parse(v, pdef.target) for v in values]
    if any(r is None or not FHIR_ID.match(r.id) for r in refs):
        raise SearchError(pdef.name, "expected Type/id or id")
    typed = [r for r in refs if r is not None]
    ps.predicates.append(_reference_predicate(pdef.path, typed))
    if all(r.type == "Patient" for r in typed):
        # Every resource of a plan carries its Patient's id in resources.patient_id.
        ids = {r.id for r in typed}
        ps.patient_ids = ids if ps.patient_ids is None else ps.patient_ids & ids


# --------------------------------------------------------------------------------------------
# Running a search
# --------------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    total: int | None  # None: not given on this page (see count_limit)
    matches: list[Row]
    included: list[Row]
    more: bool = False  # a page follows


# ``raw``: the resource as the stored JSON text (cast, so the driver does not decode it)
_COLUMNS = (resources.c.type, resources.c.id, resources.c.version_id, resources.c.last_updated,
            cast(resources.c.content, Text).label("raw"))


def content_of(row: Row) -> dict:
    """The resource of a row read with ``raw`` (a search, read or history row), decoded."""
    return orjson.loads(row.raw)


def count_limit(ps: ParsedSearch) -> int | None:
    """How many matches this page counts for its total: every one (None) with
    ``_summary=count`` or ``_total=accurate``; :data:`COUNT_LIMIT` on the first page of a
    search (no ``_cursor``); none (0) on a ``_cursor`` page or with ``_total=none``."""
    return None if ps.summary_count else total_limit(ps.total_mode, first_page=ps.cursor is None)


def total_limit(total_mode: str | None, first_page: bool) -> int | None:
    """The count limit of a page by ``_total`` (also for the history feed): None (every
    match) with ``accurate``, 0 (no total) with ``none`` or after the first page, else
    :data:`COUNT_LIMIT`."""
    if total_mode == "accurate":
        return None
    return COUNT_LIMIT if total_mode != "none" and first_page else 0


def _bounded(n: int, limit: int | None) -> int | None:
    """A count taken with ``limit``: the total, or None when the limit was passed."""
    return n if limit is None or n <= limit else None


def _visible(conn: Connection, rtype: str, ids: Iterable[str], scope: Scope) -> list[Row]:
    ids = sorted({i for i in ids if FHIR_ID.match(i)})
    if not ids:
        return []
    conds = _scoped([resources.c.type == rtype, resources.c.id.in_(ids), resources.c.deleted == false()],
                    scope)
    return list(conn.execute(select(*_COLUMNS).where(*conds).order_by(resources.c.id)))


def _owner_predicate(conn: Connection, tokens: list[Token], scope: Scope) -> Callable[[dict], bool]:
    """Tasks whose owner is an Organization (visible in ``scope``) with one of the identifiers."""
    match = _token_predicate(SEARCH_PARAMS["Organization"]["identifier"], tokens)
    conds = _scoped([resources.c.type == "Organization", resources.c.deleted == false()], scope)
    org_ids = {row.id for row in conn.execute(
        select(resources.c.id, resources.c.content).where(*conds).execution_options(yield_per=500))
        if match(row.content)}
    refs = [Ref("Organization", i) for i in org_ids]
    return _reference_predicate("owner", refs)


def _sort_keys(sort: str) -> list:
    if sort == "_lastUpdated":
        return [resources.c.last_updated, resources.c.id]
    if sort == "-_lastUpdated":
        return [resources.c.last_updated.desc(), resources.c.id.desc()]
    return [resources.c.id.desc()] if sort == "-_id" else [resources.c.id]


def _after(cursor: Cursor, sort: str):
    """Rows after the cursor in the sort order (keyset paging: an update moves a row to the
    end of a _lastUpdated walk, never past the cursor, so a walk misses nothing)."""
    if sort in ("_id", "-_id"):
        return resources.c.id > cursor.id if sort == "_id" else resources.c.id < cursor.id
    at = cursor.last_updated
    key = tuple_(resources.c.last_updated, resources.c.id)
    return key > tuple_(at, cursor.id) if sort == "_lastUpdated" else key < tuple_(at, cursor.id)


def next_cursor(ps: ParsedSearch, result: SearchResult) -> Cursor | None:
    """The cursor of the page after this one, or None when this one is the last."""
    if not result.more or not result.matches:
        return None
    last = result.matches[-1]
    return Cursor(ps.sort, as_utc(last.last_updated), last.id)


def search(conn: Connection, ps: ParsedSearch, scope: Scope) -> SearchResult:
    """The page ``ps`` asks for, the total of matches, and the ``_include``d resources."""
    conds = [resources.c.type == ps.rtype, resources.c.deleted == false()]
    conds = _scoped(conds, scope, rtype=ps.rtype)
    for codes in ps.statuses:
        conds.append(resources.c.status.in_(sorted(codes)))
    if ps.ids is not None:
        conds.append(resources.c.id.in_(sorted(ps.ids)))
    for b in ps.dates:
        conds.append(_date_condition(resources.c.last_updated, b))
    if ps.patient_ids is not None:
        conds.append(resources.c.patient_id.in_(sorted(ps.patient_ids)))
    keys = _sort_keys(ps.sort)
    query = select(*_COLUMNS).where(*conds).order_by(*keys)
    page = query if ps.cursor is None else query.where(_after(ps.cursor, ps.sort))
    offset = 0 if ps.cursor is not None else ps.offset
    predicates = list(ps.predicates)
    predicates += [_owner_predicate(conn, tokens, scope) for tokens in ps.owner_tokens]

    total: int | None = None
    limit = count_limit(ps)
    if not predicates:
        if limit is None:
            total = conn.execute(select(func.count()).select_from(resources).where(*conds)).scalar_one()
        elif limit:  # an index-only scan that stops after limit + 1 entries
            some = select(resources.c.id).where(*conds).limit(limit + 1).subquery()
            total = _bounded(conn.execute(select(func.count()).select_from(some)).scalar_one(), limit)
        matches = list(conn.execute(page.limit(ps.count + 1).offset(offset))) if ps.count else []
    else:
        if limit != 0:
            found = 0
            for row in conn.execute(query.execution_options(yield_per=500)):
                if all(p(content_of(row)) for p in predicates):
                    found += 1
                    if limit is not None and found > limit:
                        break
            total = _bounded(found, limit)
        matches, skipped = [], 0
        if ps.count:
            for row in conn.execute(page.execution_options(yield_per=500)):
                if all(p(content_of(row)) for p in predicates):
                    if skipped < offset:
                        skipped += 1
                        continue
                    matches.append(row)
                    if len(matches) > ps.count:
                        break
    more = len(matches) > ps.count  # one more than a page was read to know
    matches = matches[:ps.count]

    included: list[Row] = []
    if ps.includes and matches:
        have = {(r.type, r.id) for r in matches}
        wanted: dict[str, set[str]] = {}
        for row in matches:
            content = content_of(row)
            for _param, element in ps.includes:
                for reference in references(content, element):
                    ref = Ref.parse(reference)
                    if ref is not None and ref.type and (ref.type, ref.id) not in have:
                        wanted.setdefault(ref.type, set()).add(ref.id)
        for rtype in sorted(wanted):
            included += _visible(conn, rtype, wanted[rtype], scope)
    if ps.revincludes and matches:
        included += _referring(conn, ps, matches, scope, {(r.type, r.id) for r in matches + included})
    return SearchResult(total, matches, included, more)


def _referring(conn: Connection, ps: ParsedSearch, matches: list[Row], scope: Scope,
               have: set[tuple[str, str]]) -> list[Row]:
    """The resources that refer to the matches (``_revinclude``), found through the Patient
    every resource of a plan carries."""
    targets = {f"{r.type}/{r.id}" for r in matches}
    patients = sorted({(r.id if r.type == "Patient" else _subject_id(content_of(r))) for r in matches} - {""})
    out: list[Row] = []
    for rtype, element in ps.revincludes:
        conds = _scoped([resources.c.type == rtype, resources.c.deleted == false(),
                         resources.c.patient_id.in_(patients)], scope)
        for row in conn.execute(select(*_COLUMNS).where(*conds).order_by(resources.c.id)):
            if (row.type, row.id) not in have and any(ref in targets
                                                      for ref in references(content_of(row), element)):
                have.add((row.type, row.id))
                out.append(row)
    return out


def _subject_id(resource: dict) -> str:
    subject = resource.get("subject") or resource.get("for") or {}
    return subject.get("reference", "").rpartition("/")[2]


# --------------------------------------------------------------------------------------------
# Reads and history
# --------------------------------------------------------------------------------------------


def read(conn: Connection, rtype: str, rid: str, scope: Scope) -> Row | None:
    """The current version (also a deleted one), or None when unknown or outside ``scope``."""
    if not FHIR_ID.match(rid):
        return None
    conds = _scoped([resources.c.type == rtype, resources.c.id == rid], scope)
    return conn.execute(select(*_COLUMNS, resources.c.deleted, resources.c.replaced_by).where(*conds)).first()


def _history_conditions(rtype: str, rid: str, scope: Scope) -> list:
    # The resource must be visible now, and each version must have been visible when written.
    current = _scoped([resources.c.type == rtype, resources.c.id == rid], scope)
    exists = select(resources.c.id).where(*current).exists()
    conds = [resource_history.c.type == rtype, resource_history.c.id == rid, exists]
    return _scoped(conds, scope, resource_history)


_HISTORY_COLUMNS = (resource_history.c.type, resource_history.c.id, resource_history.c.version_id,
                    resource_history.c.last_updated, cast(resource_history.c.content, Text).label("raw"))


def vread(conn: Connection, rtype: str, rid: str, version: str, scope: Scope) -> Row | None:
    if not FHIR_ID.match(rid) or not VERSION_ID.match(version):
        return None
    conds = _history_conditions(rtype, rid, scope) + [resource_history.c.version_id == int(version)]
    return conn.execute(select(*_HISTORY_COLUMNS).where(*conds)).first()


def history(conn: Connection, rtype: str, rid: str, scope: Scope, count: int = DEFAULT_COUNT,
            offset: int = 0) -> tuple[int, list[Row]]:
    """Versions newest first, and how many there are."""
    if not FHIR_ID.match(rid):
        return 0, []
    conds = _history_conditions(rtype, rid, scope)
    total = conn.execute(select(func.count()).select_from(resource_history).where(*conds)).scalar_one()
    rows = list(conn.execute(select(*_HISTORY_COLUMNS).where(*conds)
                             .order_by(resource_history.c.version_id.desc()).limit(count).offset(offset))) \
        if count else []
    return total, rows


# --------------------------------------------------------------------------------------------
# Type- and system-level history: every change since a point in time
# --------------------------------------------------------------------------------------------

_VERSION_KEY = re.compile(r"^([A-Z][A-Za-z]{1,39})/([A-Za-z0-9\-.]{1,64})/([0-9]{1,9})$")


@dataclass(frozen=True)
class HistoryCursor:
    """Where a history page ended: (lastUpdated, type, id, version) of its last entry."""

    last_updated: dt.datetime
    rtype: str
    id: str
    version: int

    def token(self) -> str:
        raw = json.dumps(["_history", self.last_updated.astimezone(dt.UTC).isoformat(),
                          f"{self.rtype}/{self.id}/{self.version}"], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def parse(cls, token: str) -> HistoryCursor:
        try:
            kind, stamp, key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            m = _VERSION_KEY.match(key) if kind == "_history" and isinstance(key, str) else None
            when = _page_time(stamp)
            if m is None:
                raise ValueError(key)
        except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError, RecursionError):
            raise SearchError("_cursor", "not a page of this history: follow the links of the previous page") from None
        return cls(when, m.group(1), m.group(2), int(m.group(3)))


@dataclass
class HistoryPage:
    total: int | None  # None: not counted for this page
    rows: list[Row]
    next: HistoryCursor | None


def history_since(conn: Connection, rtype: str | None, scope: Scope, since: dt.datetime | None,
                  count: int = DEFAULT_COUNT, cursor: HistoryCursor | None = None,
                  count_limit: int | None = None) -> HistoryPage:
    """Every version (of one type, or of every type) written at or after ``since`` that the
    scope sees, oldest first, in pages that follow ``cursor``: a client keeps the cursor (or
    the last ``lastUpdated``) and resumes from it, seeing every change once. ``count_limit``:
    how many versions to count for ``total`` (None: every one; 0: none, ``total`` is None;
    else ``total`` is None when there are more)."""
    h = resource_history
    current = _scoped([resources.c.type == h.c.type, resources.c.id == h.c.id], scope, rtype=rtype)
    conds = _scoped([select(resources.c.id).where(*current).exists()], scope, h, rtype=rtype)
    if rtype is not None:
        conds.append(h.c.type == rtype)
    if since is not None:
        conds.append(h.c.last_updated >= since)
    total: int | None = None
    if count_limit is None:
        total = conn.execute(select(func.count()).select_from(h).where(*conds)).scalar_one()
    elif count_limit:
        some = select(h.c.id).where(*conds).limit(count_limit + 1).subquery()
        total = _bounded(conn.execute(select(func.count()).select_from(some)).scalar_one(), count_limit)
    if cursor is not None:
        conds.append(tuple_(h.c.last_updated, h.c.type, h.c.id, h.c.version_id)
                     > tuple_(cursor.last_updated, cursor.rtype, cursor.id, cursor.version))
    rows = list(conn.execute(select(*_HISTORY_COLUMNS).where(*conds)
                             .order_by(h.c.last_updated, h.c.type, h.c.id, h.c.version_id).limit(count + 1))) \
        if count else []
    following = None
    if len(rows) > count:
        rows = rows[:count]
        last = rows[-1]
        following = HistoryCursor(as_utc(last.last_updated), last.type, last.id, last.version_id)
    return HistoryPage(total, rows, following)
