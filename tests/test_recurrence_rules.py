"""Bounded rule expansion (gateway/ical/rules.py): same instances as dateutil, bounded work.

Properties over generated rules: the metered search gives exactly dateutil's instances, and
starting at a later period (a far-future window) gives exactly the instances from there on.
Then the two hostile rules clients can send, which must stop at the cap or the horizon.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ical import (
    InvalidCalendarObject,
    bounded_occurrences,
    overlaps_window,
    parse_event,
)
from gateway.ical.budget import WORK_UNITS, Budget
from gateway.ical.rules import build_rule
from gateway.ical.timezones import ZoneResolver
from gateway.ical.timing import When, from_local

BERLIN = ZoneInfo("Europe/Berlin")
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@st.composite
def rules(draw: st.DrawFn) -> str:
    """Rules that match at least once a year (so plain dateutil ends quickly past UNTIL)."""
    frequency = draw(st.sampled_from(["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY"]))
    parts = [f"FREQ={frequency}", f"INTERVAL={draw(st.integers(1, 3))}"]
    if frequency != "HOURLY" and draw(st.booleans()):
        months = draw(st.sets(st.integers(1, 12), min_size=1, max_size=4))
        parts.append("BYMONTH=" + ",".join(map(str, sorted(months))))
    choice = draw(st.sampled_from(["none", "days", "monthdays", "setpos"]))
    if choice == "days":
        days = draw(st.sets(st.sampled_from(DAYS), min_size=1, max_size=3))
        parts.append("BYDAY=" + ",".join(sorted(days)))
    elif choice == "monthdays":
        month_days = draw(st.sets(st.integers(1, 28) | st.integers(-28, -1), min_size=1,
                                  max_size=3))
        parts.append("BYMONTHDAY=" + ",".join(map(str, sorted(month_days))))
    elif choice == "setpos" and frequency in ("YEARLY", "MONTHLY"):
        parts.append("BYDAY=MO,TU,WE,TH,FR;BYSETPOS=" + draw(st.sampled_from(["1", "-1", "2"])))
    if frequency == "HOURLY":
        minutes = draw(st.sets(st.integers(0, 59), min_size=1, max_size=3))
        parts.append("BYMINUTE=" + ",".join(map(str, sorted(minutes))))
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(DAYS))}")
    return ";".join(parts)


starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda moment: moment.replace(microsecond=0))


def when(wall: datetime) -> When:
    return from_local(wall, ZoneResolver({}).resolve("Europe/Berlin"))


def dateutil_starts(rule: str, start: datetime, stop: datetime) -> list[datetime]:
    return list(rrulestr(rule, dtstart=start.replace(tzinfo=BERLIN)).replace(until=stop))


@settings(max_examples=150, deadline=None)
@given(rules(), starts, st.integers(1, 400))
def test_metered_search_gives_dateutils_instances(rule: str, start: datetime, days: int) -> None:
    stop = (start + timedelta(days=days)).replace(tzinfo=BERLIN)
    built = build_rule(rule, when(start))
    ours = list(built.starts(stop, Budget(10**9)))
    assert ours == dateutil_starts(rule, start, stop)


@settings(max_examples=150, deadline=None)
@given(rules(), starts, st.integers(1, 3000), st.integers(1, 60))
def test_starting_at_a_later_period_gives_the_same_instances(
    rule: str, start: datetime, skip_days: int, window_days: int
) -> None:
    after = (start + timedelta(days=skip_days)).replace(tzinfo=BERLIN)
    stop = after + timedelta(days=window_days)
    built = build_rule(rule, when(start))
    ours = [moment for moment in built.starts(stop, Budget(10**9), after) if moment >= after]
    assert ours == [moment for moment in dateutil_starts(rule, start, stop) if moment >= after]


def series(rule: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//T//EN\r\nBEGIN:VEVENT\r\nUID:s@t\r\n"
            "DTSTAMP:20261201T090000Z\r\nDTSTART:20261207T090000Z\r\n"
            f"DTEND:20261207T091500Z\r\nRRULE:{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


EVERY_MINUTE = "FREQ=HOURLY;BYMINUTE=" + ",".join(str(minute) for minute in range(60))
NEVER = "FREQ=DAILY;BYWEEKNO=53;BYMONTH=1;BYDAY=MO"


def test_an_every_minute_rule_stops_at_the_cap_and_says_where() -> None:
    began = time.process_time()
    found = bounded_occurrences(series(EVERY_MINUTE), datetime(2026, 12, 7, tzinfo=UTC),
                                datetime(2029, 12, 7, tzinfo=UTC), limit=2000)
    assert time.process_time() - began < 1  # before: 26 s (over a minute on a busy machine)
    assert 1 < len(found.spans) <= 2000
    assert found.complete_until is not None
    # Complete up to there: one instance a minute from DTSTART.
    first = datetime(2026, 12, 7, 9, tzinfo=UTC)
    complete = [span for span in found.spans if span[0] < found.complete_until]
    assert [span[0] for span in complete] == [
        first + timedelta(minutes=minute) for minute in range(len(complete))]


def test_a_rule_with_no_match_left_stops_at_the_horizon() -> None:
    began = time.process_time()
    with pytest.raises(InvalidCalendarObject, match="too costly"):
        parse_event(series(NEVER))
    found = bounded_occurrences(series(NEVER), datetime(2026, 12, 7, tzinfo=UTC),
                                datetime(2029, 12, 7, tzinfo=UTC))
    assert time.process_time() - began < 1  # before: 28-34 s
    assert found.spans == [(datetime(2026, 12, 7, 9, tzinfo=UTC),
                            datetime(2026, 12, 7, 9, 15, tzinfo=UTC))]  # DTSTART only
    assert found.complete_until is None


def test_a_far_window_of_a_dense_rule_is_undecided_rather_than_slow() -> None:
    began = time.process_time()
    answer = overlaps_window(series(EVERY_MINUTE), datetime(2090, 1, 2, tzinfo=UTC),
                             datetime(2090, 1, 9, tzinfo=UTC))
    assert time.process_time() - began < 1
    assert answer is True  # the first minute of the window is found past the skipped years


def test_the_budget_is_what_the_readme_says() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"{WORK_UNITS:,}" in readme
