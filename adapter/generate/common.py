"""Shared pieces of the synthetic message generator: the result type, the municipality table,
people, addresses, phone numbers, dates, unique identifiers and a few XML helpers.

Nothing here reads the clock or the environment; every random choice comes from the
``random.Random`` passed in, so a seed fixes the output.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # no hints in lxml; lxml-stubs mistypes it

from adapter.data import MAPPINGS_DIR

from . import catalog
from .ids import make_cpr, org_gln

DEFAULT_MUNICIPALITIES_CSV = MAPPINGS_DIR / "municipalities.csv"


@dataclass(frozen=True)
class GeneratedMessage:
    """One synthetic MedCom message.

    ``facts`` records the key values the message was built from, so tests can check what the
    adapter makes of it without parsing the XML themselves.
    """

    filename: str
    kind: str  # "ggop" | "xdis91"
    xml: bytes
    facts: dict[str, Any] = field(hash=False, compare=True)


# ---------------------------------------------------------------------------------------------
# Municipalities
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Municipality:
    code: str  # four digits, e.g. "0461"
    name: str  # e.g. "Odense"
    region_code: str
    region_name: str

    @property
    def organisation_name(self) -> str:
        return f"{self.name} Kommune"

    @property
    def gln(self) -> str:
        return org_gln(f"kommune:{self.code}")

    def towns(self) -> tuple[tuple[str, str, str], ...]:
        return catalog.MUNICIPALITY_TOWNS.get(self.code, (("", self.name, ""),))


def load_municipalities(path: Path | None = None) -> list[Municipality]:
    """Read ``kommunekode,navn,regionskode,regionsnavn`` rows (the project's mapping table)."""
    csv_path = Path(path) if path is not None else DEFAULT_MUNICIPALITIES_CSV
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"municipality table not found at {csv_path}; pass municipalities_csv=..."
        )
    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    result = []
    for row in rows:
        code = (row.get("kommunekode") or "").strip()
        if not code:
            continue
        result.append(
            Municipality(
                code=code.zfill(4),
                name=(row.get("navn") or "").strip(),
                region_code=(row.get("regionskode") or "").strip(),
                region_name=(row.get("regionsnavn") or "").strip(),
            )
        )
    if not result:
        raise ValueError(f"no municipalities in {csv_path}")
    return result


# ---------------------------------------------------------------------------------------------
# Generation context
# ---------------------------------------------------------------------------------------------


class IdPool:
    """Hands out identifiers that are unique within one batch (membership checks only, so the
    order of draws, and hence the output, depends on the seed alone)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def digits(self, rng: random.Random, length: int = 14) -> str:
        while True:
            value = str(rng.randint(10 ** (length - 1), 10**length - 1))
            if value not in self._used:
                self._used.add(value)
                return value


@dataclass
class Context:
    municipalities: list[Municipality]
    start_date: date
    ids: IdPool = field(default_factory=IdPool)
    window_days: int = 365

    def municipality_by_code(self, code: str) -> Municipality:
        for m in self.municipalities:
            if m.code == code:
                return m
        raise KeyError(code)


def make_context(municipalities_csv: Path | None = None,
                 start_date: date = date(2026, 1, 5)) -> Context:
    return Context(load_municipalities(municipalities_csv), start_date)


# ---------------------------------------------------------------------------------------------
# People and places
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    street: str
    suburb: str  # "" when none
    district: str
    postcode: str


@dataclass(frozen=True)
class Person:
    given: str
    surname: str
    male: bool
    birth_date: date | None = None
    cpr: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.given} {self.surname}"


def era(birth_year: int) -> str:
    if birth_year < 1955:
        return "old"
    if birth_year < 1980:
        return "mid"
    if birth_year < 2005:
        return "young"
    return "child"


def given_name(rng: random.Random, male: bool, birth_year: int, middle: bool | None = None) -> str:
    sex = "m" if male else "f"
    name = rng.choice(catalog.GIVEN_NAMES[(sex, era(birth_year))])
    if middle is None:
        middle = rng.random() < 0.15
    if middle:
        second = rng.choice(catalog.MIDDLE_NAMES[sex])
        if second != name:
            name = f"{name} {second}"
    return name


def surname(rng: random.Random) -> str:
    name = rng.choice(catalog.SURNAMES)
    if rng.random() < 0.08:
        other = rng.choice(catalog.SURNAMES)
        if other != name:
            name = f"{other} {name}"
    return name


def make_person(rng: random.Random, birth_date: date, male: bool, *, family: str | None = None,
                mod11_valid: bool | None = None) -> Person:
    if mod11_valid is None:
        mod11_valid = rng.random() < 0.5
    cpr = make_cpr(rng, birth_date, mod11_valid, male=male)
    return Person(
        given=given_name(rng, male, birth_date.year),
        surname=family or surname(rng),
        male=male,
        birth_date=birth_date,
        cpr=cpr,
    )


def staff_person(rng: random.Random) -> Person:
    male = rng.random() < 0.4
    year = rng.randint(1962, 1998)
    return Person(given=given_name(rng, male, year, middle=False), surname=surname(rng), male=male)


def make_address(rng: random.Random, municipality: Municipality, *,
                 town: tuple[str, str, str] | None = None) -> Address:
    postcode, district, suburb = town or rng.choice(municipality.towns())
    street = f"{rng.choice(catalog.STREETS)} {rng.randint(1, 120)}"
    r = rng.random()
    if r < 0.12:
        street += f", {rng.randint(1, 4)}. {rng.choice(('tv', 'th', 'mf'))}"
    elif r < 0.18:
        street += ", st. " + rng.choice(("tv", "th"))
    elif r < 0.22:
        street += rng.choice(("A", "B", "C"))
    return Address(street=street, suburb=suburb, district=district, postcode=postcode)


MOBILE_PREFIXES = ("20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "40",
                   "41", "42", "50", "51", "52", "53", "60", "61", "71", "81", "91", "92", "93")
LANDLINE_PREFIXES = ("32", "33", "35", "36", "38", "39", "43", "44", "45", "46", "47", "48", "49",
                     "54", "55", "56", "57", "58", "59", "62", "63", "64", "65", "66", "69", "72",
                     "73", "74", "75", "76", "86", "87", "89", "96", "97", "98", "99")


def phone(rng: random.Random, kind: str = "mobil", style: str | None = None) -> str:
    """A Danish phone number; ``kind`` mobil or fastnet/arbejde. Styles as seen in MedCom files:
    "+4523321234", "23 32 12 34", "23321234"."""
    prefix = rng.choice(MOBILE_PREFIXES if kind == "mobil" else LANDLINE_PREFIXES)
    digits = prefix + "".join(str(rng.randrange(10)) for _ in range(6))
    style = style or rng.choices(("e164", "spaced", "plain"), (5, 3, 2))[0]
    if style == "e164":
        return "+45" + digits
    if style == "spaced":
        return " ".join(digits[i:i + 2] for i in range(0, 8, 2))
    return digits


def org_phone(key: str) -> str:
    """A stable switchboard number for an organisation."""
    n = int(org_gln("phone:" + key)[3:11])
    return "+45" + str(LANDLINE_PREFIXES[n % len(LANDLINE_PREFIXES)]) + f"{n % 1_000_000:06d}"


def email_for(person: Person, rng: random.Random) -> str:
    table = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "é": "e", " ": ".", "-": ""})
    local = f"{person.given.split()[0]}.{person.surname.split()[-1]}".lower().translate(table)
    if rng.random() < 0.4:
        local += str(rng.randint(1, 99))
    return f"{local}@{rng.choice(('example.dk', 'example.com', 'example.net'))}"


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def birth_date_for_age(rng: random.Random, on: date, years: int) -> date:
    """A birth date such that the person is exactly ``years`` old on ``on``."""
    latest = _safe_date(on.year - years, on.month, on.day)  # birthday today -> exactly `years`
    earliest = _safe_date(on.year - years - 1, on.month, on.day) + timedelta(days=1)
    span = (latest - earliest).days
    return earliest + timedelta(days=rng.randint(0, span))


def _safe_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:  # 29 February in a non-leap year
        return date(year, month, 28)


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return date(year, month, day + 1)


def special_days(year: int) -> list[date]:
    """Days that stress deadline arithmetic: Easter (Thursday to Monday), Ascension, Whitsun,
    Constitution Day, Christmas and New Year."""
    easter = easter_sunday(year)
    days = [easter + timedelta(days=n) for n in (-3, -2, -1, 0, 1, 39, 49, 50)]
    days += [date(year, 1, 1), date(year, 6, 5), date(year, 12, 23), date(year, 12, 24),
             date(year, 12, 25), date(year, 12, 26), date(year, 12, 31)]
    return sorted(days)


def pick_day(rng: random.Random, ctx: Context, special_share: float = 0.12) -> date:
    """A day in the generation window; a share of them on holidays, Easter or Christmas."""
    end = ctx.start_date + timedelta(days=ctx.window_days - 1)
    if rng.random() < special_share:
        candidates = [d for y in (ctx.start_date.year, ctx.start_date.year + 1)
                      for d in special_days(y) if ctx.start_date <= d <= end]
        if candidates:
            return rng.choice(candidates)
    return ctx.start_date + timedelta(days=rng.randrange(ctx.window_days))


def pick_discharge_time(rng: random.Random) -> time:
    r = rng.random()
    if r < 0.33:
        hour = rng.randint(8, 11)
    elif r < 0.75:
        hour = rng.randint(12, 15)
    elif r < 0.9:
        hour = rng.randint(16, 19)
    else:  # late-evening discharge
        hour = rng.randint(20, 23)
    minute = rng.randrange(0, 60, 5) if rng.random() < 0.8 else rng.randrange(60)
    return time(hour, minute)


def clamp_time(dt: datetime, earliest: time, latest: time) -> datetime:
    t = dt.time()
    if t < earliest:
        return datetime.combine(dt.date(), earliest)
    if t > latest:
        return datetime.combine(dt.date(), latest)
    return dt


def hhmm(dt: datetime | time) -> str:
    return dt.strftime("%H:%M")


def iso_minutes(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M")


def danish_date(d: date, style: str = "long") -> str:
    if style == "long":
        return f"{d.day}. {catalog.DEADLINE_MONTHS[d.month - 1]} {d.year}"
    if style == "dotted":
        return d.strftime("%d.%m.%Y")
    return d.isoformat()


# ---------------------------------------------------------------------------------------------
# XML
# ---------------------------------------------------------------------------------------------

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

# Formatted text is a list of items: a str is text, ("Break",) a line break, ("Bold", "t") and
# ("Italic", "t") marked-up text.
FormattedText = list


def sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        el.text = text
    return el


def opt(parent: etree._Element, ns: str, name: str, text: str | None) -> etree._Element | None:
    """Like :func:`sub`, but writes nothing for an empty value (optional leaves)."""
    return sub(parent, ns, name, text) if text else None


def fill_formatted(el: etree._Element, items: FormattedText, markup_ns: str) -> None:
    """Write mixed content: plain text, ``Break`` and ``Bold``/``Italic`` elements in
    ``markup_ns``."""
    last: etree._Element | None = None
    for item in items:
        if isinstance(item, str):
            if last is None:
                el.text = (el.text or "") + item
            else:
                last.tail = (last.tail or "") + item
            continue
        tag = item[0]
        child = etree.SubElement(el, f"{{{markup_ns}}}{tag}")
        if len(item) > 1:
            child.text = item[1]
        last = child


def lines_to_formatted(lines: Sequence[str]) -> FormattedText:
    """Sentences separated by ``Break``."""
    out: FormattedText = []
    for i, line in enumerate(lines):
        if i:
            out.append(("Break",))
        out.append(line)
    return out


def serialise(root: etree._Element) -> bytes:
    body = etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    return XML_DECLARATION + body


def check_len(value: str, limit: int, what: str) -> str:
    if not value or len(value) > limit:
        raise ValueError(f"{what} must have 1-{limit} characters: {value!r}")
    return value
