"""Danish working-day arithmetic ("hverdage") for weekday deadlines.

Only some deadlines count weekdays (domain-rules §3.1: D7, D9, D10); the §140 GOP
deadlines are calendar days and do not need this module.

Holidays
--------
Public holidays come from ``holidays.country_holidays("DK", language="da")`` (PUBLIC
category, package ``holidays`` 0.109). Checked against that version:

* 2023: Nytårsdag, Skærtorsdag, Langfredag, Påskedag, Anden påskedag, **Store bededag
  (5 May)**, Kristi himmelfartsdag, Pinsedag, Anden pinsedag, Juledag, Anden juledag.
* 2024 and 2026: the same list without Store bededag (abolished from 2024 by Act no. 214
  of 6 March 2023). The library implements the abolition itself, so this module adds no
  rule of its own for it; ``tests/test_calendar.py`` pins the behaviour for 1990–2030.

The library puts Arbejdernes kampdag, Grundlovsdag, Juleaftensdag and Nytårsaften in its
OPTIONAL category. Whether such a day is a day off is an organisation's choice
(domain-rules §6), so this module does not use that category. It keeps its own table,
``OPTIONAL_DAYS``, and a calendar lists the ones it treats as non-working in
``optional_days_off``. By default: Grundlovsdag, juleaftensdag and nytårsaftensdag.

Years outside the range the library covers for Denmark raise ``ValueError``. The
library would return no holidays at all for them, and a silent "no holidays" would be
wrong.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType

import holidays

__all__ = ["DEFAULT_OPTIONAL_DAYS_OFF", "OPTIONAL_DAYS", "DanishCalendar"]

# Optional days off: key -> (month, day, Danish name). Fixed dates every year.
OPTIONAL_DAYS: Mapping[str, tuple[int, int, str]] = MappingProxyType({
    "arbejdernes_kampdag": (5, 1, "Arbejdernes kampdag"),
    "grundlovsdag": (6, 5, "Grundlovsdag"),
    "juleaftensdag": (12, 24, "Juleaftensdag"),
    "nytaarsaftensdag": (12, 31, "Nytårsaftensdag"),
})

DEFAULT_OPTIONAL_DAYS_OFF: frozenset[str] = frozenset({"grundlovsdag", "juleaftensdag", "nytaarsaftensdag"})

_FIRST_YEAR: int = holidays.DK.start_year
_LAST_YEAR: int = holidays.DK.end_year

_SATURDAY = 5  # date.weekday(): Monday == 0


@functools.lru_cache(maxsize=512)
def _days_off(year: int, optional_days_off: frozenset[str]) -> Mapping[date, str]:
    """Every non-working holiday of ``year`` (weekends aside) with its Danish name."""
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        raise ValueError(f"year {year} is outside the supported range {_FIRST_YEAR}-{_LAST_YEAR}")
    public = holidays.country_holidays("DK", years=year, language="da")  # PUBLIC category only
    days: dict[date, str] = dict(public.items())
    for key in sorted(optional_days_off):
        month, day, name = OPTIONAL_DAYS[key]
        d = date(year, month, day)
        days[d] = f"{days[d]}; {name}" if d in days else name
    return MappingProxyType(days)


def _check_date(d: object) -> date:
    # datetime is a subclass of date but would never match the date keys of the holiday
    # table, so it is refused rather than silently treated as a working day.
    if not isinstance(d, date) or isinstance(d, datetime):
        raise TypeError(f"expected a datetime.date, got {type(d).__name__}")
    return d


@dataclass(frozen=True)
class DanishCalendar:
    """Danish working days: Monday–Friday that is neither a public holiday nor one of the
    configured optional days off. Immutable; all methods are pure."""

    optional_days_off: frozenset[str] = DEFAULT_OPTIONAL_DAYS_OFF

    def __post_init__(self) -> None:
        days = frozenset(self.optional_days_off)
        unknown = sorted(days - OPTIONAL_DAYS.keys())
        if unknown:
            raise ValueError(f"unknown optional days {unknown}; known: {sorted(OPTIONAL_DAYS)}")
        object.__setattr__(self, "optional_days_off", days)

    def holiday_name(self, d: date) -> str | None:
        """Danish name of the holiday (public or configured optional day) on ``d``, else None."""
        d = _check_date(d)
        return _days_off(d.year, self.optional_days_off).get(d)

    def is_holiday(self, d: date) -> bool:
        d = _check_date(d)
        return d in _days_off(d.year, self.optional_days_off)

    def is_working_day(self, d: date) -> bool:
        d = _check_date(d)
        return d.weekday() < _SATURDAY and not self.is_holiday(d)

    def add_working_days(self, d: date, n: int) -> date:
        """The n-th working day after ``d`` (``d`` itself is not counted).

        ``n == 0`` returns ``d`` when it is a working day, else the next working day.
        """
        d = _check_date(d)
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            while not self.is_working_day(d):
                d += timedelta(days=1)
            return d
        while n > 0:
            d += timedelta(days=1)
            if self.is_working_day(d):
                n -= 1
        return d

    def working_day_before(self, d: date) -> date:
        """The last working day strictly before ``d``."""
        d = _check_date(d) - timedelta(days=1)
        while not self.is_working_day(d):
            d -= timedelta(days=1)
        return d
