"""adapter.rules.calendar: Danish holidays and working-day arithmetic."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.rules.calendar import DEFAULT_OPTIONAL_DAYS_OFF, DanishCalendar

CAL = DanishCalendar()
NO_OPTIONAL = DanishCalendar(optional_days_off=frozenset())


def easter_sunday(year: int) -> date:
    """Gregorian Easter (anonymous algorithm), independent of the holidays package."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_offset = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_offset) // 451
    month, day = divmod(h + weekday_offset - 7 * m + 114, 31)
    return date(year, month, day + 1)


HOLIDAYS = [
    pytest.param(date(2026, 1, 1), "Nytårsdag", id="nytaarsdag-2026"),
    pytest.param(date(2026, 4, 2), "Skærtorsdag", id="skaertorsdag-2026"),
    pytest.param(date(2026, 4, 3), "Langfredag", id="langfredag-2026"),
    pytest.param(date(2026, 4, 5), "Påskedag", id="paaskedag-2026"),
    pytest.param(date(2026, 4, 6), "Anden påskedag", id="2-paaskedag-2026"),
    pytest.param(date(2026, 5, 14), "Kristi himmelfartsdag", id="kristi-himmelfart-2026"),
    pytest.param(date(2026, 5, 24), "Pinsedag", id="pinsedag-2026"),
    pytest.param(date(2026, 5, 25), "Anden pinsedag", id="2-pinsedag-2026"),
    pytest.param(date(2026, 6, 5), "Grundlovsdag", id="grundlovsdag-2026-default"),
    pytest.param(date(2026, 12, 24), "Juleaftensdag", id="juleaften-2026"),
    pytest.param(date(2026, 12, 25), "Juledag", id="juledag-2026"),
    pytest.param(date(2026, 12, 26), "Anden juledag", id="2-juledag-2026"),
    pytest.param(date(2026, 12, 31), "Nytårsaftensdag", id="nytaarsaften-2026"),
    pytest.param(date(2023, 5, 5), "Store bededag", id="store-bededag-2023"),
    pytest.param(date(2022, 5, 13), "Store bededag", id="store-bededag-2022"),
    pytest.param(date(2027, 3, 25), "Skærtorsdag", id="skaertorsdag-2027"),
]


@pytest.mark.parametrize(("d", "name"), HOLIDAYS)
def test_holiday(d: date, name: str) -> None:
    assert CAL.is_holiday(d)
    assert CAL.holiday_name(d) == name
    assert not CAL.is_working_day(d)


NOT_HOLIDAYS = [
    pytest.param(date(2024, 4, 26), id="store-bededag-abolished-2024"),
    pytest.param(date(2025, 5, 16), id="store-bededag-abolished-2025"),
    pytest.param(date(2026, 5, 1), id="arbejdernes-kampdag-not-off-by-default"),
    pytest.param(date(2026, 4, 1), id="wednesday-before-easter"),
    pytest.param(date(2026, 4, 7), id="tuesday-after-easter"),
    pytest.param(date(2026, 12, 23), id="lillejuleaften"),
    pytest.param(date(2026, 12, 28), id="monday-between-christmas-and-new-year"),
]


@pytest.mark.parametrize("d", NOT_HOLIDAYS)
def test_not_holiday(d: date) -> None:
    assert not CAL.is_holiday(d)
    assert CAL.holiday_name(d) is None
    assert CAL.is_working_day(d) == (d.weekday() < 5)


@pytest.mark.parametrize("year", range(1990, 2031))
def test_store_bededag_until_2023_only(year: int) -> None:
    store_bededag = easter_sunday(year) + timedelta(days=26)  # 4th Friday after Easter
    assert store_bededag.weekday() == 4
    assert CAL.is_holiday(store_bededag) == (year <= 2023)
    assert (CAL.holiday_name(store_bededag) == "Store bededag") == (year <= 2023)


@pytest.mark.parametrize("year", range(2000, 2031))
def test_movable_feasts_follow_easter(year: int) -> None:
    easter = easter_sunday(year)
    for offset in (-3, -2, 0, 1, 39, 49, 50):
        assert CAL.is_holiday(easter + timedelta(days=offset)), (year, offset)


OPTIONAL = [
    pytest.param("grundlovsdag", date(2026, 6, 5), id="grundlovsdag-fri-2026"),
    pytest.param("juleaftensdag", date(2026, 12, 24), id="juleaften-thu-2026"),
    pytest.param("nytaarsaftensdag", date(2026, 12, 31), id="nytaarsaften-thu-2026"),
    pytest.param("arbejdernes_kampdag", date(2026, 5, 1), id="1-maj-fri-2026"),
]


@pytest.mark.parametrize(("key", "d"), OPTIONAL)
def test_optional_days_are_configurable(key: str, d: date) -> None:
    assert d.weekday() < 5
    assert DanishCalendar(optional_days_off=frozenset({key})).is_holiday(d)
    assert not DanishCalendar(optional_days_off=frozenset({key})).is_working_day(d)
    assert NO_OPTIONAL.is_working_day(d)
    assert NO_OPTIONAL.holiday_name(d) is None
    without = DanishCalendar(optional_days_off=DEFAULT_OPTIONAL_DAYS_OFF - {key})
    assert without.is_working_day(d)


def test_default_optional_days() -> None:
    assert CAL.optional_days_off == frozenset({"grundlovsdag", "juleaftensdag", "nytaarsaftensdag"})


def test_grundlovsdag_removed_from_optional_days_is_a_working_day() -> None:
    cal = DanishCalendar(optional_days_off=frozenset({"juleaftensdag", "nytaarsaftensdag"}))
    assert CAL.is_holiday(date(2026, 6, 5))
    assert not cal.is_holiday(date(2026, 6, 5))
    assert cal.is_working_day(date(2026, 6, 5))
    assert cal.add_working_days(date(2026, 6, 4), 1) == date(2026, 6, 5)
    assert CAL.add_working_days(date(2026, 6, 4), 1) == date(2026, 6, 8)


def test_optional_days_accept_any_set_and_reject_unknown_names() -> None:
    assert DanishCalendar(optional_days_off={"grundlovsdag"}).optional_days_off == frozenset({"grundlovsdag"})
    with pytest.raises(ValueError, match="unknown optional days"):
        DanishCalendar(optional_days_off=frozenset({"grundlovsdag", "fastelavn"}))


def test_optional_day_on_a_public_holiday_keeps_both_names() -> None:
    # 5 June 2022 was both Pinsedag and Grundlovsdag.
    assert CAL.holiday_name(date(2022, 6, 5)) == "Pinsedag; Grundlovsdag"
    assert NO_OPTIONAL.holiday_name(date(2022, 6, 5)) == "Pinsedag"


ADD = [
    pytest.param(date(2026, 4, 1), 1, date(2026, 4, 7), id="wed-before-easter+1"),
    pytest.param(date(2026, 4, 1), 2, date(2026, 4, 8), id="wed-before-easter+2"),
    pytest.param(date(2026, 3, 31), 5, date(2026, 4, 10), id="tue-before-easter+5"),
    pytest.param(date(2026, 4, 2), 0, date(2026, 4, 7), id="skaertorsdag+0-next-working-day"),
    pytest.param(date(2026, 4, 7), 0, date(2026, 4, 7), id="working-day+0-itself"),
    pytest.param(date(2026, 3, 7), 0, date(2026, 3, 9), id="saturday+0-monday"),
    pytest.param(date(2026, 12, 23), 1, date(2026, 12, 28), id="lillejuleaften+1"),
    pytest.param(date(2026, 12, 23), 4, date(2027, 1, 4), id="lillejuleaften+4-over-new-year"),
    pytest.param(date(2026, 12, 22), 2, date(2026, 12, 28), id="tue-before-christmas+2"),
    pytest.param(date(2026, 12, 30), 1, date(2027, 1, 4), id="30-dec+1-skips-nytaarsaften-and-nytaarsdag"),
    pytest.param(date(2026, 3, 6), 1, date(2026, 3, 9), id="friday+1-monday"),
    pytest.param(date(2026, 3, 2), 5, date(2026, 3, 9), id="monday+5-next-monday"),
    pytest.param(date(2026, 5, 13), 1, date(2026, 5, 15), id="over-kristi-himmelfart"),
    pytest.param(date(2026, 5, 22), 1, date(2026, 5, 26), id="over-pinse"),
    pytest.param(date(2023, 5, 4), 1, date(2023, 5, 8), id="over-store-bededag-2023"),
    pytest.param(date(2024, 4, 25), 1, date(2024, 4, 26), id="no-store-bededag-2024"),
]


@pytest.mark.parametrize(("start", "n", "expected"), ADD)
def test_add_working_days(start: date, n: int, expected: date) -> None:
    assert CAL.add_working_days(start, n) == expected


def test_add_working_days_over_christmas_without_optional_days() -> None:
    # 24 and 31 Dec count as working days when not configured as days off.
    assert NO_OPTIONAL.add_working_days(date(2026, 12, 23), 1) == date(2026, 12, 24)
    assert NO_OPTIONAL.add_working_days(date(2026, 12, 30), 1) == date(2026, 12, 31)


BEFORE = [
    pytest.param(date(2026, 3, 9), date(2026, 3, 6), id="monday->friday"),
    pytest.param(date(2026, 4, 7), date(2026, 4, 1), id="tue-after-easter->wed-before"),
    pytest.param(date(2026, 4, 6), date(2026, 4, 1), id="2-paaskedag->wed-before"),
    pytest.param(date(2026, 3, 4), date(2026, 3, 3), id="wednesday->tuesday"),
    pytest.param(date(2026, 3, 8), date(2026, 3, 6), id="sunday->friday"),
    pytest.param(date(2027, 1, 4), date(2026, 12, 30), id="first-monday-2027->30-dec"),
    pytest.param(date(2026, 5, 26), date(2026, 5, 22), id="after-pinse->friday-before"),
    pytest.param(date(2026, 6, 8), date(2026, 6, 4), id="monday-after-grundlovsdag->thursday"),
]


@pytest.mark.parametrize(("d", "expected"), BEFORE)
def test_working_day_before(d: date, expected: date) -> None:
    assert CAL.working_day_before(d) == expected


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        CAL.add_working_days(date(2026, 3, 2), -1)
    with pytest.raises(TypeError):
        CAL.add_working_days(date(2026, 3, 2), 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CAL.is_working_day(datetime(2026, 3, 2, 12, 0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside the supported range"):
        CAL.is_holiday(date(2101, 1, 3))


def test_calendar_is_immutable_and_hashable() -> None:
    with pytest.raises(AttributeError):
        CAL.optional_days_off = frozenset()  # type: ignore[misc]
    assert DanishCalendar() == CAL
    assert hash(CAL) == hash(DanishCalendar())


dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31))
optional_sets = st.frozensets(st.sampled_from(["arbejdernes_kampdag", "grundlovsdag",
                                               "juleaftensdag", "nytaarsaftensdag"]))


@settings(max_examples=300, deadline=None)
@given(d=dates, n=st.integers(min_value=0, max_value=60), opt=optional_sets)
def test_add_working_days_properties(d: date, n: int, opt: frozenset[str]) -> None:
    cal = DanishCalendar(optional_days_off=opt)
    result = cal.add_working_days(d, n)
    assert cal.is_working_day(result)
    if n >= 1:
        assert result > d
        # exactly n working days in (d, result]
        count = sum(cal.is_working_day(d + timedelta(days=k))
                    for k in range(1, (result - d).days + 1))
        assert count == n
    else:
        assert result >= d
    following = cal.add_working_days(d, n + 1)
    # monotonic in n; strictly from n = 1 on. From a non-working day, n = 0 and n = 1
    # both give the next working day.
    assert following > result if n >= 1 or cal.is_working_day(d) else following == result
    assert cal.working_day_before(result + timedelta(days=1)) == result


@settings(max_examples=300, deadline=None)
@given(d=dates, opt=optional_sets)
def test_working_day_before_properties(d: date, opt: frozenset[str]) -> None:
    cal = DanishCalendar(optional_days_off=opt)
    prev = cal.working_day_before(d)
    assert prev < d
    assert cal.is_working_day(prev)
    assert not any(cal.is_working_day(prev + timedelta(days=k)) for k in range(1, (d - prev).days))
    assert cal.add_working_days(prev, 1) >= d


@settings(max_examples=200, deadline=None)
@given(d=dates)
def test_working_day_definition(d: date) -> None:
    assert CAL.is_working_day(d) == (d.weekday() < 5 and not CAL.is_holiday(d))
    assert CAL.is_holiday(d) == (CAL.holiday_name(d) is not None)
    # more optional days off can only remove working days
    assert not CAL.is_working_day(d) or NO_OPTIONAL.is_working_day(d)
