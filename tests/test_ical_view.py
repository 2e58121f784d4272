"""view_for: what a read-only calendar shows of someone else's entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ical import parse_event, view_for

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
WITH_ALARMS = [
    "apple_timed_alarm.ics",
    "apple_all_day.ics",
    "thunderbird_invitation_snoozed.ics",
    "caldavsynchronizer_windows_tz.ics",
    "davx5_weekly_with_overrides.ics",
]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.ics")))
def test_nothing_to_drop_returns_the_identical_string(name: str) -> None:
    text = fixture(name)
    assert view_for(text, drop_alarms=False, drop_attendees=False) is text


@pytest.mark.parametrize(
    "name", ["outlook_customized_tz.ics", "outlook_birthday_yearly.ics", "apple_all_day.ics"]
)
def test_object_without_attendees_is_returned_as_is(name: str) -> None:
    text = fixture(name)
    assert view_for(text, drop_alarms=False, drop_attendees=True) is text


def test_object_without_alarms_is_returned_as_is() -> None:
    text = fixture("exchange_override_only_invitation.ics")
    assert view_for(text, drop_alarms=True, drop_attendees=False) is text


@pytest.mark.parametrize("name", WITH_ALARMS)
def test_alarms_are_dropped_and_everything_else_kept(name: str) -> None:
    text = fixture(name)
    view = view_for(text, drop_alarms=True, drop_attendees=False)
    assert "VALARM" not in view
    start = text.index("BEGIN:VALARM")
    end = text.index("END:VALARM\r\n", start) + len("END:VALARM\r\n")
    assert view == text[:start] + text[end:]  # only the alarm's bytes are gone
    assert parse_event(view) == parse_event(text)


def test_attendees_are_dropped_including_folded_lines() -> None:
    text = fixture("thunderbird_invitation_snoozed.ics")
    view = view_for(text, drop_alarms=False, drop_attendees=True)
    assert "ATTENDEE" not in view
    assert "ORGANIZER;RSVP=FALSE;CN=Maria Sales" in view
    assert "BEGIN:VALARM" in view
    assert " NT:mailto" not in view and " ia.sales@example.com" not in view  # continuations
    data = parse_event(view)
    assert data.attendees == ()
    assert data.organizer_email == "maria.sales@example.com"


def test_both_dropped_from_a_series_with_overrides() -> None:
    text = fixture("davx5_weekly_with_overrides.ics")
    view = view_for(text, drop_alarms=True, drop_attendees=True)
    assert "ATTENDEE" not in view and "VALARM" not in view
    assert view.count("RECURRENCE-ID") == 3
    assert view.endswith("END:VCALENDAR\r\n")


def test_view_keeps_lf_only_text_as_it_is() -> None:
    text = fixture("apple_all_day.ics").replace("\r\n", "\n")
    view = view_for(text, drop_alarms=True, drop_attendees=False)
    assert "\r" not in view and "VALARM" not in view and "SUMMARY:Trade fair Hannover\n" in view


@given(
    drop_alarms=st.booleans(),
    drop_attendees=st.booleans(),
    name=st.sampled_from(WITH_ALARMS),
)
def test_view_is_a_subsequence_of_the_lines(
    drop_alarms: bool, drop_attendees: bool, name: str
) -> None:
    text = fixture(name)
    view = view_for(text, drop_alarms=drop_alarms, drop_attendees=drop_attendees)
    lines = iter(text.splitlines(keepends=True))
    # Every line of the view appears in the original, in order: nothing is rewritten.
    assert all(any(line == original for original in lines) for line in view.splitlines(True))
    assert view_for(text, drop_alarms=drop_alarms, drop_attendees=drop_attendees) == view
