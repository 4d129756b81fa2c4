"""adapter.rules.deadline_text: the G-GOP free-text start deadline, discharge = day 0."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.rules.deadline_text import KINDS, ParsedDeadline, parse_deadline_text

MON = date(2026, 3, 2)  # a Monday


def d(month: int, day: int, year: int = 2026) -> date:
    return date(year, month, day)


# (text, kind, earliest, latest), all for discharge MON = 2026-03-02
CASES_MON = [
    # within: latest = discharge + N
    pytest.param("inden for 2 dage", "within", None, d(3, 4), id="inden-for-2-dage"),
    pytest.param("indenfor 2 dage efter udskrivelse", "within", None, d(3, 4), id="indenfor-efter-udskrivelse"),
    pytest.param("Senest 14 dage efter udskrivelse", "within", None, d(3, 16), id="senest-14-dage"),
    pytest.param("senest om 1 uge", "within", None, d(3, 9), id="senest-om-1-uge"),
    pytest.param("Inden for en uge", "within", None, d(3, 9), id="inden-for-en-uge"),
    pytest.param("inden for fjorten dage", "within", None, d(3, 16), id="number-word-fjorten"),
    pytest.param("INDEN FOR TRE DØGN", "within", None, d(3, 5), id="upper-case-doegn"),
    pytest.param("inden for 24 timer", "within", None, d(3, 3), id="24-timer-1-dag"),
    pytest.param("Tidsfrist: 14 dage", "within", None, d(3, 16), id="tidsfrist-colon"),
    pytest.param("senest dag 5", "within", None, d(3, 7), id="senest-dag-5"),
    pytest.param("i løbet af de første 2 uger", "within", None, d(3, 16), id="i-loebet-af"),
    pytest.param("ikke senere end om 2 uger", "within", None, d(3, 16), id="ikke-senere-end"),
    pytest.param("Genoptræningen bør påbegyndes senest 14 dage efter udskrivelsen", "within", None, d(3, 16),
                 id="sentence-senest"),
    pytest.param("senest 7 dage efter at patienten er udskrevet", "within", None, d(3, 9),
                 id="efter-at-patienten-er-udskrevet"),
    pytest.param("inden for 1 måned", "within", None, d(4, 2), id="1-maaned-calendar"),
    pytest.param("inden for 2-3 dage", "within", None, d(3, 5), id="upper-lead-range-uses-max"),
    # ASAP = within 1 day
    pytest.param("Hurtigst muligt", "within", None, d(3, 3), id="hurtigst-muligt"),
    pytest.param("straks", "within", None, d(3, 3), id="straks"),
    pytest.param("Uden ventetid", "within", None, d(3, 3), id="uden-ventetid"),
    pytest.param("Ingen ventetid", "within", None, d(3, 3), id="ingen-ventetid-is-asap"),
    pytest.param("umiddelbart efter udskrivelsen", "within", None, d(3, 3), id="umiddelbart"),
    pytest.param("hurtigst muligt, senest 3 dage", "within", None, d(3, 5), id="explicit-beats-asap"),
    # not_before: earliest = discharge + N
    pytest.param("tidligst om 3 uger", "not_before", d(3, 23), None, id="tidligst-om-3-uger"),
    pytest.param("Tidligst 14 dage efter udskrivelse", "not_before", d(3, 16), None, id="tidligst-14-dage"),
    pytest.param("opstart efter 3 uger", "not_before", d(3, 23), None, id="opstart-efter-3-uger"),
    pytest.param("Må ikke påbegyndes før om 4 uger", "not_before", d(3, 30), None, id="ikke-foer-om-4-uger"),
    pytest.param("udskudt 2 uger", "not_before", d(3, 16), None, id="udskudt-2-uger"),
    pytest.param("Udskudt opstart: 3 uger", "not_before", d(3, 23), None, id="udskudt-opstart-colon"),
    pytest.param("først efter 6 uger", "not_before", d(4, 13), None, id="foerst-efter-6-uger"),
    pytest.param("om 3 måneder", "not_before", d(6, 2), None, id="om-3-maaneder"),
    pytest.param("Opstart 14 dage efter udskrivelse", "not_before", d(3, 16), None, id="opstart-n-efter-udskrivelse"),
    pytest.param("fra dag 14", "not_before", d(3, 16), None, id="fra-dag-14"),
    pytest.param("efter 1 uge og 2 dage", "not_before", d(3, 11), None, id="compound-amount"),
    pytest.param("må ikke påbegyndes inden for 7 dage", "not_before", d(3, 10), None,
                 id="ikke-inden-for-7-dage-is-day-8"),
    pytest.param("ikke inden 14 dage", "not_before", d(3, 16), None, id="ikke-inden-14-dage"),
    pytest.param("Genoptræning 2 gange ugentligt i 6 uger, opstart efter 2 uger", "not_before", d(3, 16), None,
                 id="duration-ignored-start-used"),
    # absolute dates
    pytest.param("opstart efter 1. marts 2026", "on_or_after_date", d(3, 2), None, id="efter-date-plus-1"),
    pytest.param("efter 2026-03-01", "on_or_after_date", d(3, 2), None, id="efter-iso"),
    pytest.param("fra d. 15/3-2026", "on_or_after_date", d(3, 15), None, id="fra-d-slash-dash"),
    pytest.param("fra 15.03.2026", "on_or_after_date", d(3, 15), None, id="fra-dotted"),
    pytest.param("Fra d.15/3-26", "on_or_after_date", d(3, 15), None, id="two-digit-year"),
    pytest.param("tidligst 1. april", "on_or_after_date", d(4, 1), None, id="tidligst-no-year"),
    pytest.param("Tidligst 1. apr.", "on_or_after_date", d(4, 1), None, id="month-abbreviation"),
    pytest.param("fra 15. sept. 2026", "on_or_after_date", d(9, 15), None, id="sept-abbreviation"),
    pytest.param("fra mandag d. 16. marts", "on_or_after_date", d(3, 16), None, id="weekday-name"),
    pytest.param("ikke før 1. april", "on_or_after_date", d(4, 1), None, id="ikke-foer-date"),
    pytest.param("efter 15/3", "on_or_after_date", d(3, 16), None, id="efter-day-month-no-year"),
    pytest.param("Fra 1 marts", "on_or_after_date", d(3, 1, 2027), None, id="no-year-before-discharge-next-year"),
    pytest.param("senest 1. april 2026", "within", None, d(4, 1), id="senest-date"),
    pytest.param("inden 1. april", "within", None, d(4, 1), id="inden-date-no-year"),
    pytest.param("t.o.m. 15.04.2026", "within", None, d(4, 15), id="tom-date"),
    # ranges
    pytest.param("ca. 2-4 uger", "range", d(3, 16), d(3, 30), id="ca-2-4-uger"),
    pytest.param("om 2 til 4 uger", "range", d(3, 16), d(3, 30), id="om-2-til-4-uger"),
    pytest.param("efter ca. 2 til 4 uger", "range", d(3, 16), d(3, 30), id="efter-ca-2-til-4-uger"),
    pytest.param("Opstart kan passende ske efter ca. 2 til 4 uger", "range", d(3, 16), d(3, 30),
                 id="childrens-annex-wording"),
    pytest.param("2-3 uger efter udskrivelse", "range", d(3, 16), d(3, 23), id="2-3-uger-efter-udskrivelse"),
    pytest.param("mellem 2 og 4 uger", "range", d(3, 16), d(3, 30), id="mellem-og"),
    pytest.param("ca. 2–4 uger", "range", d(3, 16), d(3, 30), id="en-dash"),
    pytest.param("tidligst om 2-3 uger", "range", d(3, 16), d(3, 23), id="tidligst-range"),
    pytest.param("tidligst om 2 uger og senest om 4 uger", "range", d(3, 16), d(3, 30), id="two-clauses"),
    pytest.param("Tidligst efter 1/4-2026, senest 15/4-2026", "range", d(4, 2), d(4, 15), id="two-dates"),
    pytest.param("inden for 14 dage efter udskrivelse, dog tidligst om 1 uge", "range", d(3, 9), d(3, 16),
                 id="upper-and-lower-relative"),
    # none
    pytest.param("ingen", "none", None, None, id="ingen"),
    pytest.param("Ingen.", "none", None, None, id="ingen-dot"),
    pytest.param("Ingen særlig tidsfrist", "none", None, None, id="ingen-saerlig-tidsfrist"),
    pytest.param("Der er ingen tidsfrist", "none", None, None, id="der-er-ingen-tidsfrist"),
    pytest.param("ikke relevant", "none", None, None, id="ikke-relevant"),
    pytest.param("", "none", None, None, id="empty"),
    pytest.param("  \n\t ", "none", None, None, id="whitespace"),
    pytest.param("Ikke akut", "none", None, None, id="ikke-akut"),
    pytest.param("Ingen særlig tidsfrist ud over lovens 7 dage", "none", None, None, id="bare-amount-ignored"),
    # explicit deadline after a "none" phrase in another clause
    pytest.param("Ingen særlig tidsfrist, men gerne inden for 14 dage", "within", None, d(3, 16),
                 id="none-phrase-then-deadline"),
    # unparsed
    pytest.param("Fri tekst", "unparsed", None, None, id="fri-tekst"),
    pytest.param("aftales med patienten", "unparsed", None, None, id="aftales"),
    pytest.param("efter 1. januar 2026", "unparsed", None, None, id="date-before-discharge"),
    pytest.param("senest 1. marts 2026", "unparsed", None, None, id="latest-before-discharge"),
    pytest.param("senest 31/2-2026", "unparsed", None, None, id="invalid-date"),
    pytest.param("14 dage", "unparsed", None, None, id="bare-amount"),
    pytest.param("ca. 3 uger", "unparsed", None, None, id="bare-approximate-amount"),
    pytest.param("inden for 5 hverdage", "unparsed", None, None, id="working-days"),
    pytest.param("tidligst 6 uger efter operationen", "unparsed", None, None, id="other-anchor-operation"),
    pytest.param("Tidligst 6 uger postoperativt", "unparsed", None, None, id="other-anchor-postoperativt"),
    pytest.param("inden for 14 dage fra modtagelse af planen", "unparsed", None, None, id="other-anchor-receipt"),
    pytest.param("senest 2 dage før udskrivelse", "unparsed", None, None, id="before-discharge-relative"),
    pytest.param("inden for 1,5 uge", "unparsed", None, None, id="decimal-not-read-as-5"),
    pytest.param("ikke efter 2 uger", "unparsed", None, None, id="unread-negation"),
    pytest.param("Ikke hurtigst muligt", "unparsed", None, None, id="negated-asap"),
    pytest.param("efter 3 uger, senest efter 2 uger", "unparsed", None, None, id="contradiction"),
    # weeks (ISO, the first that ends on or after discharge) and parts of a month
    pytest.param("Opstart: uge 12", "range", d(3, 16), d(3, 22), id="week-number-is-its-monday-to-sunday"),
    pytest.param("i uge 10", "range", d(3, 2), d(3, 8), id="week-of-discharge-starts-at-discharge"),
    pytest.param("uge 9", "range", d(3, 1, 2027), d(3, 7, 2027), id="past-week-is-next-years"),
    pytest.param("fra uge 12", "on_or_after_date", d(3, 16), None, id="from-week-monday"),
    pytest.param("efter uge 12", "on_or_after_date", d(3, 23), None, id="after-week-next-monday"),
    pytest.param("senest uge 12", "within", None, d(3, 22), id="by-week-sunday"),
    pytest.param("inden uge 12", "within", None, d(3, 15), id="before-week-previous-sunday"),
    pytest.param("opstart uge 12-14", "range", d(3, 16), d(4, 5), id="week-range"),
    pytest.param("primo april", "range", d(4, 1), d(4, 10), id="primo-month"),
    pytest.param("medio april", "range", d(4, 11), d(4, 20), id="medio-month"),
    pytest.param("ultimo februar", "range", d(2, 21, 2027), d(2, 28, 2027), id="ultimo-past-month-next-year"),
    pytest.param("ultimo marts", "range", d(3, 21), d(3, 31), id="ultimo-month"),
    pytest.param("Tidligst primo april", "on_or_after_date", d(4, 1), None, id="from-month-part"),
    pytest.param("i starten af april", "range", d(4, 1), d(4, 10), id="starten-af-is-primo"),
    pytest.param("senest i slutningen af april", "within", None, d(4, 30), id="by-end-of-month-part"),
    pytest.param("fra juli", "on_or_after_date", d(7, 1), None, id="from-whole-month"),
    pytest.param("opstart i maj", "range", d(5, 1), d(5, 31), id="start-in-whole-month"),
    pytest.param("opereret i juli", "unparsed", None, None, id="bare-i-month-is-not-a-deadline"),
    # a date after an event the start waits for
    pytest.param("efter endt strålebehandling 20/3", "on_or_after_date", d(3, 21), None,
                 id="after-event-on-date-is-the-day-after"),
    pytest.param("når gipsen er fjernet d. 16/3", "on_or_after_date", d(3, 16), None,
                 id="when-event-on-date-is-that-date"),
    pytest.param("efter gipsfjernelse den 16. marts", "on_or_after_date", d(3, 17), None,
                 id="after-event-named-date"),
    pytest.param("når gipsen er fjernet", "unparsed", None, None, id="event-without-date-needs-reading"),
    pytest.param("efter endt strålebehandling", "unparsed", None, None, id="treatment-without-date-needs-reading"),
]


def test_asap_days_is_a_setting() -> None:
    assert parse_deadline_text("hurtigst muligt", MON).latest == d(3, 3)
    r = parse_deadline_text("hurtigst muligt", MON, asap_days=2)
    assert (r.kind, r.latest, r.days_max) == ("within", d(3, 4), 2)
    assert parse_deadline_text("hurtigst muligt", MON, asap_days=0).latest == MON


@pytest.mark.parametrize(("text", "kind", "earliest", "latest"), CASES_MON)
def test_phrasings_discharge_monday(text: str, kind: str, earliest: date | None, latest: date | None) -> None:
    r = parse_deadline_text(text, MON)
    assert (r.kind, r.earliest, r.latest) == (kind, earliest, latest)
    assert r.text == text
    assert r.matched is None or r.matched in text


# (text, discharge, kind, earliest, latest) for other discharge dates
CASES_OTHER = [
    pytest.param("tidligst 5. januar", date(2026, 12, 28), "on_or_after_date", date(2027, 1, 5), None,
                 id="year-boundary-no-year"),
    pytest.param("senest 2. januar", date(2026, 12, 28), "within", None, date(2027, 1, 2),
                 id="year-boundary-senest"),
    pytest.param("inden for 7 dage", date(2026, 12, 28), "within", None, date(2027, 1, 4),
                 id="year-boundary-relative"),
    pytest.param("om 1 måned", date(2026, 1, 31), "not_before", date(2026, 2, 28), None,
                 id="month-end-clamped"),
    pytest.param("om 1 måned", date(2028, 1, 31), "not_before", date(2028, 2, 29), None,
                 id="month-end-leap-year"),
    pytest.param("tidligst om 2 måneder", date(2026, 12, 31), "not_before", date(2027, 2, 28), None,
                 id="months-over-year-end"),
    pytest.param("efter 29. februar", date(2026, 3, 2), "on_or_after_date", date(2028, 3, 1), None,
                 id="29-feb-next-leap-year"),
    pytest.param("efter 1. marts", date(2026, 3, 1), "on_or_after_date", date(2026, 3, 2), None,
                 id="efter-discharge-day"),
    pytest.param("senest 1. marts", date(2026, 3, 1), "within", None, date(2026, 3, 1),
                 id="senest-discharge-day"),
    pytest.param("inden for 0 dage", date(2026, 3, 1), "within", None, date(2026, 3, 1),
                 id="zero-days"),
    pytest.param("inden for 14 dage", date(9999, 12, 25), "unparsed", None, None,
                 id="past-date-max"),
]


@pytest.mark.parametrize(("text", "discharge", "kind", "earliest", "latest"), CASES_OTHER)
def test_phrasings_other_discharge_dates(text: str, discharge: date, kind: str, earliest: date | None,
                                         latest: date | None) -> None:
    r = parse_deadline_text(text, discharge)
    assert (r.kind, r.earliest, r.latest) == (kind, earliest, latest)


DETAILS = [
    pytest.param("Senest 14 dage efter udskrivelse", None, 14, "Senest 14 dage efter udskrivelse",
                 id="within-days"),
    pytest.param("Opstart kan ske tidligst om 3 uger.", 21, None, "tidligst om 3 uger", id="not-before-days"),
    pytest.param("ca. 2-4 uger", 14, 28, "ca. 2-4 uger", id="range-days"),
    pytest.param("om 1 måned", 31, None, "om 1 måned", id="month-as-days"),
    pytest.param("hurtigst muligt", None, 1, "hurtigst muligt", id="asap-one-day"),
    pytest.param("fra 15.03.2026", None, None, "fra 15.03.2026", id="absolute-has-no-days"),
    pytest.param("må ikke påbegyndes inden for 7 dage", 8, None, "ikke påbegyndes inden for 7 dage",
                 id="negated-within-days"),
    pytest.param("Der er ingen tidsfrist", None, None, "ingen tidsfrist", id="none-phrase"),
    pytest.param("efter 1. januar 2026", None, None, "efter 1. januar 2026", id="unparsed-shows-culprit"),
    pytest.param("Fri tekst", None, None, None, id="unparsed-no-culprit"),
]


@pytest.mark.parametrize(("text", "days_min", "days_max", "matched"), DETAILS)
def test_explanation_fields(text: str, days_min: int | None, days_max: int | None, matched: str | None) -> None:
    r = parse_deadline_text(text, MON)
    assert (r.days_min, r.days_max, r.matched) == (days_min, days_max, matched)


def test_result_is_frozen() -> None:
    r = parse_deadline_text("inden for 2 dage", MON)
    with pytest.raises(AttributeError):
        r.kind = "none"  # type: ignore[misc]
    assert r == ParsedDeadline("within", None, d(3, 4), None, 2, "inden for 2 dage", "inden for 2 dage")


def test_rejects_non_str_and_datetime() -> None:
    with pytest.raises(TypeError):
        parse_deadline_text(None, MON)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_deadline_text("inden for 2 dage", datetime(2026, 3, 2, 10, 0))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------

NUMBERS = st.one_of(st.integers(min_value=0, max_value=120).map(str),
                    st.sampled_from(["en", "et", "to", "tre", "fire", "fem", "seks", "syv", "otte", "ni",
                                     "ti", "elleve", "tolv", "fjorten"]))
UNITS = st.sampled_from(["dag", "dage", "døgn", "uge", "uger", "måned", "måneder", "mdr.", "timer",
                         "hverdage", "år"])
LEADS = st.sampled_from(["", "inden for", "indenfor", "senest", "senest om", "tidligst", "tidligst om",
                         "opstart efter", "efter", "om", "udskudt", "først efter", "ca.", "må ikke påbegyndes før",
                         "ikke inden for", "ikke før", "i løbet af", "Tidsfrist:", "ikke", "hurtigst muligt,"])
TAILS = st.sampled_from(["", " efter udskrivelse", " efter udskrivningen", " efter operationen",
                         " postoperativt", " fra modtagelse", ".", ""])
SEPARATORS = st.sampled_from(["-", "–", " til ", " eller ", "/"])
MONTHS = st.sampled_from(["januar", "jan.", "februar", "feb.", "marts", "mar.", "april", "apr.", "maj",
                          "juni", "jun.", "juli", "jul.", "august", "aug.", "september", "sep.", "sept.",
                          "oktober", "okt.", "november", "nov.", "december", "dec."])
DATE_LEADS = st.sampled_from(["efter", "fra", "fra d.", "tidligst", "senest", "inden", "opstart efter",
                              "ikke før", "t.o.m.", ""])
DAYS = st.integers(min_value=0, max_value=32)
YEARS = st.one_of(st.just(""), st.integers(min_value=2019, max_value=2032).map(str),
                  st.integers(min_value=19, max_value=32).map(str))
FIXED = st.sampled_from(["hurtigst muligt", "straks", "uden ventetid", "ingen", "Ingen særlig tidsfrist",
                         "ikke relevant", "Fri tekst", "aftales med patienten", "", "  ", "Der er ingen tidsfrist",
                         "Ikke hurtigst muligt", "ingen ventetid"])


@st.composite
def relative_phrase(draw: st.DrawFn) -> str:
    lead, n, unit, tail = draw(LEADS), draw(NUMBERS), draw(UNITS), draw(TAILS)
    if draw(st.booleans()):
        n = f"{n}{draw(SEPARATORS)}{draw(NUMBERS)}"
    return f"{lead} {n} {unit}{tail}".strip()


@st.composite
def date_phrase(draw: st.DrawFn) -> str:
    lead, day, year = draw(DATE_LEADS), draw(DAYS), draw(YEARS)
    style = draw(st.integers(min_value=0, max_value=3))
    month = draw(st.integers(min_value=0, max_value=13))
    if style == 0:
        body = f"{day}. {draw(MONTHS)} {year}"
    elif style == 1:
        body = f"{day}/{month}-{year}" if year else f"{day}/{month}"
    elif style == 2:
        body = f"{day:02d}.{month:02d}.{year}" if year else f"{day}.{month}."
    else:
        body = f"{year or '2026'}-{month:02d}-{day:02d}"
    return f"{lead} {body}".strip()


PHRASE = st.one_of(relative_phrase(), date_phrase(), FIXED)
JOINERS = st.sampled_from([", ", " og ", ". ", " ", "; dog ", " - ", "\n"])


@st.composite
def danish_text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(PHRASE, min_size=1, max_size=3))
    text = parts[0]
    for p in parts[1:]:
        text += draw(JOINERS) + p
    if draw(st.booleans()):
        text = text.upper() if draw(st.booleans()) else text.capitalize()
    return text


DISCHARGES = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


def check_invariants(r: ParsedDeadline, text: str, discharge: date) -> None:
    assert r.kind in KINDS
    assert r.text == text
    assert r.matched is None or r.matched in text
    for x in (r.earliest, r.latest):
        assert x is None or (isinstance(x, date) and x >= discharge)
    if r.earliest is not None and r.latest is not None:
        assert r.earliest <= r.latest
    shape = {  # which of (earliest, latest) each kind sets
        "within": (False, True), "not_before": (True, False), "on_or_after_date": (True, False),
        "range": (True, True), "none": (False, False), "unparsed": (False, False),
    }[r.kind]
    assert (r.earliest is not None, r.latest is not None) == shape
    if r.days_min is not None:
        assert r.earliest == discharge + timedelta(days=r.days_min)
    if r.days_max is not None:
        assert r.latest == discharge + timedelta(days=r.days_max)


@settings(max_examples=1500, deadline=None)
@given(text=danish_text(), discharge=DISCHARGES)
def test_generated_danish_phrases(text: str, discharge: date) -> None:
    r = parse_deadline_text(text, discharge)
    check_invariants(r, text, discharge)
    assert parse_deadline_text(text, discharge) == r  # deterministic


@settings(max_examples=1000, deadline=None)
@given(text=st.text(max_size=200), discharge=st.dates())
def test_arbitrary_unicode_never_raises(text: str, discharge: date) -> None:
    r = parse_deadline_text(text, discharge)
    check_invariants(r, text, discharge)


@settings(max_examples=500, deadline=None)
@given(noise=st.lists(st.one_of(st.text(max_size=8), st.sampled_from(
    ["inden", "for", "ikke", "ingen", "tidligst", "senest", "om", "efter", "ca.", "2", "-", "4", "uger",
     "dage", "1.", "april", "/", "2026", "hurtigst", "muligt", "udskrivelse", ",", "og", "mellem", "d."])),
    max_size=12), discharge=DISCHARGES)
def test_keyword_soup_never_raises(noise: list[str], discharge: date) -> None:
    text = " ".join(noise)
    check_invariants(parse_deadline_text(text, discharge), text, discharge)


UNIT_DAYS = {"dage": 1, "døgn": 1, "uger": 7}


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=0, max_value=200), unit=st.sampled_from(sorted(UNIT_DAYS)), discharge=DISCHARGES,
       lead=st.sampled_from(["inden for", "indenfor", "senest", "senest om"]))
def test_within_n_units(n: int, unit: str, discharge: date, lead: str) -> None:
    r = parse_deadline_text(f"{lead} {n} {unit}", discharge)
    assert r.kind == "within"
    assert r.latest == discharge + timedelta(days=n * UNIT_DAYS[unit])
    assert r.days_max == n * UNIT_DAYS[unit]


@settings(max_examples=300, deadline=None)
@given(lo=st.integers(min_value=0, max_value=20), width=st.integers(min_value=0, max_value=10),
       discharge=DISCHARGES, sep=SEPARATORS.filter(lambda s: s != "/"))
def test_ranges_in_weeks(lo: int, width: int, discharge: date, sep: str) -> None:
    r = parse_deadline_text(f"ca. {lo}{sep}{lo + width} uger", discharge)
    assert (r.kind, r.earliest, r.latest) == (
        "range", discharge + timedelta(weeks=lo), discharge + timedelta(weeks=lo + width))


MONTH_NAMES_DA = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september",
                  "oktober", "november", "december")


@settings(max_examples=300, deadline=None)
@given(discharge=DISCHARGES, offset=st.integers(min_value=0, max_value=400))
def test_absolute_dates_in_all_formats(discharge: date, offset: int) -> None:
    target = discharge + timedelta(days=offset)
    formats = [f"{target.day}. {MONTH_NAMES_DA[target.month - 1]} {target.year}",
               f"{target.day}/{target.month}-{target.year}", f"{target:%d.%m.%Y}", target.isoformat()]
    for body in formats:
        assert parse_deadline_text(f"fra {body}", discharge).earliest == target, body
        assert parse_deadline_text(f"senest {body}", discharge).latest == target, body
        after = parse_deadline_text(f"efter {body}", discharge)
        assert (after.kind, after.earliest) == ("on_or_after_date", target + timedelta(days=1)), body
        before = parse_deadline_text(f"fra {body}", target + timedelta(days=1))
        assert before.kind == "unparsed", body


@pytest.mark.parametrize("text,discharge,latest", [
    ("Hurtig opstart, senest 3 hverdage efter udskrivelse", date(2026, 4, 1), date(2026, 4, 9)),  # over Easter
    ("senest 2 hverdage efter udskrivelse", date(2026, 3, 6), date(2026, 3, 10)),  # Friday → Tuesday
    ("inden for 5 arbejdsdage", date(2026, 12, 22), date(2027, 1, 4)),  # 24–26 and 31 Dec, 1 Jan off
], ids=["easter", "weekend", "christmas"])
def test_working_days_count_with_the_calendar(text, discharge, latest):
    from adapter.rules.calendar import DanishCalendar

    parsed = parse_deadline_text(text, discharge, DanishCalendar())
    assert (parsed.kind, parsed.latest) == ("within", latest)
    assert parse_deadline_text(text, discharge).kind == "unparsed"  # no calendar: not used


# Pieces of deadline texts the date and amount patterns look for, and what lies around them.
_PIECES = ["14", "3", "2026", "12", "1.", "/", "-", ".", ",", " ", "dage", "dag", "uger", "uge", "mdr.",
           "måned", "timer", "hverdage", "jan", "januar", "feb.", "okt", "marts", "to", "tre", "en", "½",
           "inden for", "senest", "efter", "fra", "ikke før", "mellem", "og", "til", "udskrivelse", "d.",
           "den", "mandag", "5/6", "5.6", "2026-03-04", "7 . marts"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PIECES), st.sampled_from(["", " ", "  "])), min_size=1, max_size=9))
def test_the_cheap_looks_never_miss_a_date_or_an_amount_the_full_patterns_find(pieces):
    """The date and amount patterns run only when a cheaper pattern finds what every match of
    theirs contains: it must find something in every text they match."""
    from adapter.rules import deadline_text as dt_

    text = "".join(p + sep for p, sep in pieces)
    if dt_._DATE_RE.search(text):
        assert dt_._DATE_HINT_RE.search(text), text
    if dt_._RELATIVE_RE.search(text):
        assert dt_._QTY_PART_RE.search(text), text
