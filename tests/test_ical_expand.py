"""occurrences: the instances of an object in a window, for the occurrence index."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.ical import InvalidCalendarObject, occurrences

FIXTURES = Path(__file__).parent / "fixtures" / "ics"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def event(body: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:x\r\n"
        f"DTSTAMP:20240101T000000Z\r\n{body}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


SERIES = "davx5_weekly_with_overrides.ics"


def test_weekly_series_with_overrides_and_exdate() -> None:
    assert occurrences(fixture(SERIES), utc(2024, 1, 1), utc(2025, 1, 1)) == [
        (utc(2024, 6, 3, 8), utc(2024, 6, 3, 9)),
        (utc(2024, 6, 12, 13), utc(2024, 6, 12, 14)),  # 10 June moved to Wednesday 15:00
        # 17 June: EXDATE
        (utc(2024, 6, 24, 8), utc(2024, 6, 24, 9)),
        # 1 July moved out to 5 August
        (utc(2024, 7, 8, 8), utc(2024, 7, 8, 9)),  # the CANCELLED override is still data
        (utc(2024, 7, 15, 8), utc(2024, 7, 15, 9)),
        (utc(2024, 7, 22, 8), utc(2024, 7, 22, 9)),
        # 29 July 10:00 CEST is after UNTIL 07:59:59Z
        (utc(2024, 8, 5, 8), utc(2024, 8, 5, 9)),
    ]


def test_override_moved_out_of_the_window_leaves_it_empty() -> None:
    # The week of 1 July: its instance moved to August, 8 July is the next one.
    assert occurrences(fixture(SERIES), utc(2024, 6, 30), utc(2024, 7, 7)) == []


def test_override_moved_into_the_window_is_found() -> None:
    assert occurrences(fixture(SERIES), utc(2024, 8, 1), utc(2024, 8, 10)) == [
        (utc(2024, 8, 5, 8), utc(2024, 8, 5, 9))
    ]
    assert occurrences(fixture(SERIES), utc(2024, 6, 11), utc(2024, 6, 13)) == [
        (utc(2024, 6, 12, 13), utc(2024, 6, 12, 14))
    ]


def test_exdate_leaves_a_gap() -> None:
    assert occurrences(fixture(SERIES), utc(2024, 6, 16), utc(2024, 6, 18)) == []


def test_never_ending_rule_terminates_and_keeps_wall_time_across_dst() -> None:
    began = time.perf_counter()
    found = occurrences(
        fixture("thunderbird_weekly_forever.ics"), utc(2090, 3, 1), utc(2090, 3, 31)
    )
    assert time.perf_counter() - began < 5
    assert len(found) == 9  # Tuesdays and Thursdays of March 2090
    # 09:00 New York time: EST (14:00Z) before 12 March 2090, EDT (13:00Z) after.
    assert found[0] == (utc(2090, 3, 2, 14), utc(2090, 3, 2, 14, 15))
    assert found[-1] == (utc(2090, 3, 30, 13), utc(2090, 3, 30, 13, 15))


def test_yearly_all_day_birthday() -> None:
    found = occurrences(fixture("outlook_birthday_yearly.ics"), utc(2030, 1, 1), utc(2031, 1, 1))
    assert found == [(utc(2030, 2, 2), utc(2030, 2, 3))]


def test_override_only_invitation_has_just_its_instances() -> None:
    found = occurrences(
        fixture("exchange_override_only_invitation.ics"), utc(2024, 1, 1), utc(2025, 1, 1)
    )
    assert found == [
        (utc(2024, 9, 17, 7, 30), utc(2024, 9, 17, 8, 30)),
        (utc(2024, 10, 15, 7), utc(2024, 10, 15, 8)),
    ]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ((utc(2024, 6, 12, 9, 30), utc(2024, 6, 13)), False),  # starts at its end
        ((utc(2024, 6, 12), utc(2024, 6, 12, 8)), False),  # ends at its start
        ((utc(2024, 6, 12, 9, 29), utc(2024, 6, 13)), True),
        ((utc(2024, 6, 12), utc(2024, 6, 12, 8, 1)), True),
    ],
)
def test_rfc4791_overlap_of_a_timed_event(
    window: tuple[datetime, datetime], expected: bool
) -> None:
    found = occurrences(fixture("apple_timed_alarm.ics"), *window)
    assert bool(found) is expected


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ((utc(2024, 1, 1, 9), utc(2024, 1, 1, 10)), True),  # start <= DTSTART
        ((utc(2024, 1, 1, 8), utc(2024, 1, 1, 9)), False),  # end > DTSTART fails
        ((utc(2024, 1, 1, 8), utc(2024, 1, 1, 9, 0, 1)), True),
    ],
)
def test_rfc4791_overlap_of_a_zero_length_event(
    window: tuple[datetime, datetime], expected: bool
) -> None:
    found = occurrences(event("DTSTART:20240101T090000Z"), *window)
    assert bool(found) is expected


def test_rdate_periods_and_dates_add_instances() -> None:
    text = event(
        "DTSTART:20240101T090000Z\r\nDTEND:20240101T100000Z\r\n"
        "RDATE;VALUE=PERIOD:20240105T120000Z/PT3H\r\nRDATE:20240103T090000Z"
    )
    assert occurrences(text, utc(2024, 1, 1), utc(2024, 2, 1)) == [
        (utc(2024, 1, 1, 9), utc(2024, 1, 1, 10)),
        (utc(2024, 1, 3, 9), utc(2024, 1, 3, 10)),
        (utc(2024, 1, 5, 12), utc(2024, 1, 5, 15)),
    ]


def test_exdate_on_the_first_instance_and_all_day_series() -> None:
    text = event(
        "DTSTART;VALUE=DATE:20240101\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEXDATE;VALUE=DATE:20240101"
    )
    assert occurrences(text, utc(2023, 12, 1), utc(2024, 2, 1)) == [
        (utc(2024, 1, 2), utc(2024, 1, 3)),
        (utc(2024, 1, 3), utc(2024, 1, 4)),
    ]


def test_this_and_future_override_shifts_later_instances() -> None:
    text = event(
        "DTSTART:20240101T090000Z\r\nDTEND:20240101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=4\r\n"
        "END:VEVENT\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20240101T000000Z\r\n"
        "RECURRENCE-ID;RANGE=THISANDFUTURE:20240102T090000Z\r\n"
        "DTSTART:20240102T110000Z\r\nDTEND:20240102T113000Z"
    )
    assert occurrences(text, utc(2024, 1, 1), utc(2024, 2, 1)) == [
        (utc(2024, 1, 1, 9), utc(2024, 1, 1, 10)),
        (utc(2024, 1, 2, 11), utc(2024, 1, 2, 11, 30)),
        (utc(2024, 1, 3, 11), utc(2024, 1, 3, 11, 30)),
        (utc(2024, 1, 4, 11), utc(2024, 1, 4, 11, 30)),
    ]


def test_windows_tzid_series_is_expanded_in_its_zone() -> None:
    text = fixture("caldavsynchronizer_windows_tz.ics").replace(
        "STATUS:CONFIRMED\r\n", "STATUS:CONFIRMED\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n"
    )
    starts = [start for start, _ in occurrences(text, utc(2024, 10, 1), utc(2024, 11, 1))]
    # 10:00 Berlin: CEST until 27 October, CET after.
    assert starts == [utc(2024, 10, 8, 8), utc(2024, 10, 15, 8), utc(2024, 10, 22, 8),
                      utc(2024, 10, 29, 9)]


def test_empty_window_and_invalid_input() -> None:
    assert occurrences(fixture(SERIES), utc(2024, 7, 1), utc(2024, 7, 1)) == []
    with pytest.raises(ValueError, match="aware"):
        occurrences(fixture(SERIES), datetime(2024, 1, 1), utc(2025, 1, 1))
    with pytest.raises(InvalidCalendarObject):
        occurrences(fixture("bad_rrule.ics"), utc(2024, 1, 1), utc(2025, 1, 1))
