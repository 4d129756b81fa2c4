"""Danish time: every deadline, receipt and MedCom date is Europe/Copenhagen local time,
and every stored time is UTC. The one place that names the zone and converts between them.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

DANISH_TIME = ZoneInfo("Europe/Copenhagen")
# The dates a MedCom message may carry: outside them a date is a typing error (year 0001 or
# 9999), and every computation on it (deadlines, receipts, FHIR instants) stays in range.
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2099, 12, 31)


def sane_date(value: str | None) -> dt.date | None:
    """A YYYY-MM-DD date within EARLIEST_DATE…LATEST_DATE, else None."""
    if not value or len(value) != 10:
        return None
    try:
        d = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return d if EARLIEST_DATE <= d <= LATEST_DATE else None


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC (the default clock of every process)."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A stored time as aware UTC (SQLite gives back naive UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def as_danish(value: dt.datetime) -> dt.datetime:
    """An aware datetime in Danish time; a naive one is read as Danish local time."""
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value.replace(tzinfo=DANISH_TIME) if value.tzinfo is None else value.astimezone(DANISH_TIME)


def iso_instant(value: dt.datetime) -> str:
    """A FHIR instant in Danish time with its offset, to the second."""
    return value.astimezone(DANISH_TIME).isoformat(timespec="seconds")


def local_datetime(date: str | None, time: str | None) -> dt.datetime | None:
    """MedCom date + hh:mm are Danish local time (None for a date outside the sane window)."""
    d = sane_date(date)
    if d is None:
        return None
    try:
        t = dt.time.fromisoformat(time) if time else dt.time(0, 0)
    except ValueError:
        return None
    return dt.datetime.combine(d, t, tzinfo=DANISH_TIME)


def fhir_datetime(date: str | None, time: str | None) -> str | None:
    """A FHIR dateTime: the date alone when no time is given, else with the Danish offset."""
    if not date:
        return None
    if not time:
        d = sane_date(date)
        return d.isoformat() if d else None
    value = local_datetime(date, time)
    return value.isoformat(timespec="seconds") if value else None
