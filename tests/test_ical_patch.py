"""patch_event: a CRM-side edit keeps everything the client put in the object."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.ical import (
    EventPatch,
    InvalidCalendarObject,
    PatchRefused,
    parse_event,
    patch_event,
)
from gateway.ical.contentlines import logical_lines

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
NOW = datetime(2024, 6, 20, 9, 15, 30, tzinfo=UTC)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")


def changed_lines(before: str, after: str) -> tuple[set[str], set[str]]:
    """(removed, added) unfolded content lines."""
    old = [line.text for line in logical_lines(before)]
    new = [line.text for line in logical_lines(after)]
    removed: set[str] = set()
    added: set[str] = set()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new).get_opcodes():
        if tag != "equal":
            removed.update(old[i1:i2])
            added.update(new[j1:j2])
    return removed, added


def test_title_change_keeps_alarms_and_apple_properties() -> None:
    before = fixture("apple_timed_alarm.ics")
    after = patch_event(before, EventPatch(title="Quarterly review (moved room)"), NOW)
    removed, added = changed_lines(before, after)
    assert removed == {
        "SUMMARY:Quarterly review with ACME",
        "SEQUENCE:1",
        "LAST-MODIFIED:20240603T081601Z",
        "DTSTAMP:20240603T081601Z",
    }
    assert added == {
        "SUMMARY:Quarterly review (moved room)",
        "SEQUENCE:2",
        "LAST-MODIFIED:20240620T091530Z",
        "DTSTAMP:20240620T091530Z",
    }
    # The folded X-APPLE-STRUCTURED-LOCATION and the VALARM are kept byte for byte.
    for kept in ("X-APPLE-STRUCTURED-LOCATION", "ACKNOWLEDGED:20240612T074512Z", "X-WR-ALARMUID"):
        assert kept in after
    assert after.count("\r\n") == before.count("\r\n")
    assert "\r\n" in after and "\n" not in after.replace("\r\n", "")


def test_thunderbird_snooze_state_survives() -> None:
    before = fixture("thunderbird_invitation_snoozed.ics")
    after = patch_event(before, EventPatch(description="New agenda"), NOW)
    for kept in (
        "X-MOZ-LASTACK:20240611T065902Z",
        "X-MOZ-SNOOZE-TIME:20240612T121000Z",
        "X-MOZ-GENERATION:4",
        "BEGIN:VALARM",
    ):
        assert kept in after
    data = parse_event(after)
    assert data.description == "New agenda"
    assert data.sequence == 3
    assert len(data.attendees) == 3


def test_overrides_are_kept_and_only_the_master_changes() -> None:
    before = fixture("davx5_weekly_with_overrides.ics")
    after = patch_event(before, EventPatch(location="Meeting room 5"), NOW)
    _, added = changed_lines(before, after)
    # Only the master's LOCATION changed; the override's copy is its own.
    assert "LOCATION:Meeting room 2" in after
    assert "LOCATION:Meeting room 5" in added
    assert after.count("RECURRENCE-ID") == 3
    assert after.count("SEQUENCE:1\r\n") == 3  # master's new one + two overrides
    data = parse_event(after)
    assert data.location == "Meeting room 5" and data.sequence == 1
    assert data.span_end == parse_event(before).span_end


def test_missing_properties_are_added_before_the_alarm() -> None:
    before = fixture("apple_all_day.ics")  # no DESCRIPTION, no LAST-MODIFIED
    after = patch_event(before, EventPatch(description="Booth 12"), NOW)
    lines = [line.text for line in logical_lines(after)]
    assert lines.index("DESCRIPTION:Booth 12") < lines.index("BEGIN:VALARM")
    assert lines.index("LAST-MODIFIED:20240620T091530Z") < lines.index("BEGIN:VALARM")


def test_clearing_fields_removes_them_and_their_shadows() -> None:
    before = fixture("caldavsynchronizer_windows_tz.ics")
    after = patch_event(before, EventPatch(description=None, location=None, title=""), NOW)
    for gone in ("DESCRIPTION:Lieferplan", "X-ALT-DESC", "LOCATION:", "SUMMARY"):
        assert gone not in after
    assert "DESCRIPTION:Reminder" in after  # the alarm's own DESCRIPTION stays
    data = parse_event(after)
    assert (data.title, data.description, data.location) == ("", None, None)
    assert "X-MICROSOFT-CDO-BUSYSTATUS:BUSY" in after


def test_new_location_drops_apples_stale_map_pin() -> None:
    after = patch_event(fixture("apple_timed_alarm.ics"), EventPatch(location="Online"), NOW)
    assert "X-APPLE-STRUCTURED-LOCATION" not in after
    assert parse_event(after).location == "Online"


def test_moving_an_outlook_event_rewrites_it_in_iana_time() -> None:
    before = fixture("caldavsynchronizer_windows_tz.ics")
    after = patch_event(
        before,
        EventPatch(start=datetime(2024, 10, 9, 12, tzinfo=UTC), tzid="Europe/Berlin"),
        NOW,
    )
    assert "DTSTART;TZID=Europe/Berlin:20241009T140000" in after
    assert "DTEND;TZID=Europe/Berlin:20241009T143000" in after  # the length is kept
    assert "TZID:Europe/Berlin" in after  # its VTIMEZONE was added
    assert "W. Europe Standard Time" not in after  # the orphaned one was dropped
    data = parse_event(after)
    assert (data.start, data.end) == (
        datetime(2024, 10, 9, 12, tzinfo=UTC),
        datetime(2024, 10, 9, 12, 30, tzinfo=UTC),
    )
    assert data.sequence == 4
    assert "BEGIN:VALARM" in after


def test_making_an_event_all_day() -> None:
    before = fixture("thunderbird_invitation_snoozed.ics")
    after = patch_event(
        before,
        EventPatch(
            start=datetime(2024, 6, 13, tzinfo=UTC),
            end=datetime(2024, 6, 14, tzinfo=UTC),
            all_day=True,
        ),
        NOW,
    )
    assert "DTSTART;VALUE=DATE:20240613" in after and "DTEND;VALUE=DATE:20240614" in after
    assert "BEGIN:VTIMEZONE" not in after  # nothing refers to Europe/Berlin any more
    data = parse_event(after)
    assert data.all_day and data.start == datetime(2024, 6, 13, tzinfo=UTC)


def test_duration_is_replaced_by_dtend_when_moving() -> None:
    before = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:d\r\n"
        "DTSTAMP:20240101T000000Z\r\nDTSTART:20240101T090000Z\r\nDURATION:PT1H\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    after = patch_event(before, EventPatch(start=datetime(2024, 1, 2, 9, tzinfo=UTC)), NOW)
    assert "DURATION" not in after
    assert "DTEND:20240102T100000Z" in after
    assert "SEQUENCE:1" in after


def test_patch_is_deterministic() -> None:
    before = fixture("apple_timed_alarm.ics")
    changes = EventPatch(title="Same", start=datetime(2024, 6, 13, 8, tzinfo=UTC))
    assert patch_event(before, changes, NOW) == patch_event(before, changes, NOW)


@pytest.mark.parametrize(
    ("name", "changes", "reason"),
    [
        (
            "davx5_weekly_with_overrides.ics",
            EventPatch(start=datetime(2024, 6, 4, 8, tzinfo=UTC)),
            "recurring series",
        ),
        ("exchange_override_only_invitation.ics", EventPatch(title="x"), "only holds overrides"),
        (
            "apple_timed_alarm.ics",
            EventPatch(end=datetime(2024, 6, 1, tzinfo=UTC)),
            "end is before the start",
        ),
        ("apple_timed_alarm.ics", EventPatch(tzid="Mars/Base"), "unknown IANA time zone"),
    ],
)
def test_refused_patches(name: str, changes: EventPatch, reason: str) -> None:
    with pytest.raises(PatchRefused, match=reason):
        patch_event(fixture(name), changes, NOW)


def test_invalid_stored_object_is_reported() -> None:
    with pytest.raises(InvalidCalendarObject):
        patch_event(fixture("bad_no_dtstart.ics"), EventPatch(title="x"), NOW)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        patch_event(fixture("apple_all_day.ics"), EventPatch(title="x"), datetime(2024, 1, 1))
