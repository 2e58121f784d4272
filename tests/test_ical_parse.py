"""parse_event: what the CRM reads from the objects real clients PUT, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.ical import (
    Attendee,
    InvalidCalendarObject,
    UnsupportedComponent,
    parse_event,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ics"


def fixture(name: str) -> str:
    # read_bytes: read_text would turn the clients' CRLF into LF
    return (FIXTURES / name).read_bytes().decode("utf-8")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def event(body: str, *, extra: str = "") -> str:
    """A minimal VCALENDAR around VEVENT lines (LF endings are accepted too)."""
    return (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n"
        f"{extra}BEGIN:VEVENT\nUID:test-uid\nDTSTAMP:20240601T000000Z\n{body}\n"
        "END:VEVENT\nEND:VCALENDAR\n"
    )


def test_apple_timed_event_with_alarm() -> None:
    data = parse_event(fixture("apple_timed_alarm.ics"))
    assert data.uid == "6C7B1D3E-52B1-4E5A-9C43-2B7E0C7F1A11"
    assert data.title == "Quarterly review with ACME"
    assert data.location == "ACME GmbH\nFriedrichstraße 68\n10117 Berlin\nGermany"
    assert (data.start, data.end) == (utc(2024, 6, 12, 8), utc(2024, 6, 12, 9, 30))
    assert data.tzid == "Europe/Berlin"
    assert not data.all_day and data.rrule is None and not data.has_overrides
    assert (data.span_start, data.span_end) == (data.start, data.end)
    assert data.sequence == 1
    assert data.organizer_email is None and data.attendees == ()


def test_apple_all_day_event_spans_its_dates_in_utc() -> None:
    data = parse_event(fixture("apple_all_day.ics"))
    assert data.all_day and data.tzid is None
    assert (data.start, data.end) == (utc(2024, 6, 29), utc(2024, 7, 2))


def test_all_day_without_dtend_lasts_one_day() -> None:
    data = parse_event(fixture("outlook_birthday_yearly.ics"))
    assert (data.start, data.end) == (utc(1978, 2, 2), utc(1978, 2, 3))
    assert data.rrule == "FREQ=YEARLY;BYMONTHDAY=2;BYMONTH=2"
    assert data.span_end is None  # a birthday never ends


def test_thunderbird_invitation_participants() -> None:
    data = parse_event(fixture("thunderbird_invitation_snoozed.ics"))
    assert data.organizer_email == "maria.sales@example.com"
    assert data.organizer_name == "Maria Sales"
    assert data.attendees == (
        Attendee("jens.buyer@customer.example", "Jens Buyer", "NEEDS-ACTION", "REQ-PARTICIPANT"),
        Attendee("legal@customer.example", None, "TENTATIVE", "OPT-PARTICIPANT"),
        Attendee("maria.sales@example.com", "Maria Sales", "ACCEPTED", "CHAIR"),
    )
    assert data.description == "Agenda:\n1. Prices\n2. Delivery, terms"
    assert data.sequence == 2


def test_never_ending_weekly_rule_has_open_span() -> None:
    data = parse_event(fixture("thunderbird_weekly_forever.ics"))
    assert data.rrule == "FREQ=WEEKLY;BYDAY=TU,TH"
    assert data.tzid == "America/New_York"
    assert data.span_start == utc(2024, 1, 4, 14)
    assert data.span_end is None


def test_windows_tzid_is_mapped_to_iana() -> None:
    data = parse_event(fixture("caldavsynchronizer_windows_tz.ics"))
    assert data.tzid == "Europe/Berlin"
    assert (data.start, data.end) == (utc(2024, 10, 8, 8), utc(2024, 10, 8, 8, 30))
    assert data.status == "CONFIRMED"
    assert data.attendees[0] == Attendee(
        "petra.einkauf@kunde.example", "Petra Einkauf", "ACCEPTED", "REQ-PARTICIPANT"
    )


def test_windows_tzid_with_trailing_space_and_no_vtimezone() -> None:
    data = parse_event(fixture("outlook_pacific_trailing_space.ics"))
    assert data.tzid == "America/Los_Angeles"
    assert data.start == utc(2024, 6, 10, 16)  # 09:00 PDT


def test_custom_vtimezone_computes_utc_without_an_iana_name() -> None:
    data = parse_event(fixture("outlook_customized_tz.ics"))
    assert data.start == utc(2024, 3, 12, 14)  # US rules: EDT since 10 March
    assert data.tzid is None


def test_display_name_tzid_uses_its_vtimezone() -> None:
    data = parse_event(fixture("outlook_display_name_tz.ics"))
    assert data.start == utc(2024, 7, 15, 7)
    assert data.location == ""
    assert data.organizer_email == "andrea.seiler@example.com"  # MAILTO: and case dropped


def test_same_custom_tzid_in_two_objects_keeps_each_definition() -> None:
    # icalendar caches client VTIMEZONEs by TZID process-wide; each object must still
    # be read with its own definition.
    eastern = fixture("outlook_customized_tz.ics")
    fixed = eastern.replace("TZOFFSETFROM:-0400", "TZOFFSETFROM:+0530").replace(
        "TZOFFSETTO:-0500", "TZOFFSETTO:+0530"
    ).replace("TZOFFSETFROM:-0500", "TZOFFSETFROM:+0530").replace(
        "TZOFFSETTO:-0400", "TZOFFSETTO:+0530"
    )
    assert parse_event(eastern).start == utc(2024, 3, 12, 14)
    assert parse_event(fixed).start == utc(2024, 3, 12, 4, 30)
    assert parse_event(eastern).start == utc(2024, 3, 12, 14)


def test_x_lic_location_names_a_custom_zone() -> None:
    zone = "TZID:Mitteleuropäische Zeit\r\n"
    text = fixture("outlook_display_name_tz.ics").replace(
        zone, zone + "X-LIC-LOCATION:Europe/Vienna\r\n"
    )
    assert parse_event(text).tzid == "Europe/Vienna"


def test_recurring_master_with_overrides() -> None:
    data = parse_event(fixture("davx5_weekly_with_overrides.ics"))
    assert data.has_overrides
    assert data.title == "Team call Vienna office"  # the master's, not an override's
    assert data.rrule == "FREQ=WEEKLY;UNTIL=20240729T075959Z;BYDAY=MO"
    assert data.span_start == utc(2024, 6, 3, 8)
    # The last instance is the one moved out to 5 August, after UNTIL.
    assert data.span_end == utc(2024, 8, 5, 9)


def test_override_only_invitation_takes_fields_from_earliest_override() -> None:
    data = parse_event(fixture("exchange_override_only_invitation.ics"))
    assert data.has_overrides and data.rrule is None
    assert data.title == "Partner-Jour-fixe"
    assert data.location == "Partner AG, Raum 4"
    assert data.start == utc(2024, 9, 17, 7, 30)
    assert data.tzid == "Europe/Berlin"
    assert data.attendees == (
        Attendee("maria.sales@example.com", "Maria Sales", "NEEDS-ACTION", "REQ-PARTICIPANT"),
    )
    assert (data.span_start, data.span_end) == (utc(2024, 9, 17, 7, 30), utc(2024, 10, 15, 8))


def test_count_series_has_finite_span() -> None:
    data = parse_event(
        event("DTSTART:20240101T090000Z\nDURATION:PT30M\nRRULE:FREQ=DAILY;COUNT=3")
    )
    assert data.end == utc(2024, 1, 1, 9, 30)
    assert data.span_end == utc(2024, 1, 3, 9, 30)


def test_timed_event_without_end_is_instant() -> None:
    data = parse_event(event("DTSTART:20240101T090000Z"))
    assert data.end == data.start


def test_floating_time_is_read_as_utc() -> None:
    data = parse_event(event("DTSTART:20240101T090000\nDTEND:20240101T100000"))
    assert (data.start, data.tzid) == (utc(2024, 1, 1, 9), None)


def test_nominal_duration_follows_wall_clock_across_dst() -> None:
    data = parse_event(event("DTSTART;TZID=Europe/Berlin:20240330T120000\nDURATION:P1D"))
    assert data.end - data.start == utc(1, 1, 1, 23) - utc(1, 1, 1)  # 23 hours that day


def test_partstat_defaults_to_needs_action() -> None:
    data = parse_event(event("DTSTART:20240101T090000Z\nATTENDEE:mailto:a@b.example"))
    assert data.attendees == (Attendee("a@b.example", None, "NEEDS-ACTION"),)


def test_utc_tzid_is_stored_as_none() -> None:
    assert parse_event(event("DTSTART;TZID=UTC:20240101T090000")).tzid is None


def test_rrule_until_as_date_on_timed_event_is_accepted() -> None:
    data = parse_event(
        event("DTSTART;TZID=Europe/Berlin:20240101T090000\nRRULE:FREQ=DAILY;UNTIL=20240103")
    )
    assert data.span_end == utc(2024, 1, 3, 8)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bad_vcard.ics", "expected one VCALENDAR, found VCARD"),
        ("bad_no_vevent.ics", "the object has no VEVENT"),
        ("bad_two_uids.ics", "found UIDs 'first-event@example.com', 'second-event@example.com'"),
        ("bad_no_uid.ics", "a VEVENT has no UID"),
        ("bad_no_dtstart.ics", "a VEVENT has no DTSTART"),
        ("bad_dtend_before_dtstart.ics", "is before DTSTART"),
        ("bad_rrule.ics", "unparsable RRULE 'FREQ=WEEKLY;BYDAY=MONDAY'"),
        ("bad_unknown_tzid.ics", "'Office Local Time' is neither a known zone"),
    ],
)
def test_invalid_objects_are_refused_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidCalendarObject) as caught:
        parse_event(fixture(name))
    assert reason in caught.value.reason
    assert "\n" not in caught.value.reason
    assert not isinstance(caught.value, UnsupportedComponent)


def test_a_thunderbird_vtodo_is_a_task_with_its_fields() -> None:
    # Refused before task types existed; the event calendars still refuse it (the write
    # checks the calendar's component: tests/test_tasks_caldav.py).
    data = parse_event(fixture("bad_thunderbird_vtodo.ics"))
    assert data.component == "VTODO"
    assert data.task is not None
    assert (data.title, data.task.priority, data.task.status) == (
        "Send the offer to ACME", 5, "NEEDS-ACTION")
    assert data.task.due == datetime(2024, 6, 14, tzinfo=UTC)
    assert data.task.dtstart is None


def test_vjournal_next_to_an_event_is_unsupported() -> None:
    journal = "BEGIN:VJOURNAL\nUID:j\nDTSTAMP:20240601T000000Z\nEND:VJOURNAL\n"
    with pytest.raises(UnsupportedComponent, match="VJOURNAL"):
        parse_event(event("DTSTART:20240101T090000Z", extra=journal))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the body is empty"),
        ("this is not a calendar", "not an iCalendar object"),
        ("<html><body>Login</body></html>", "not an iCalendar object"),
        (event("DTSTART:20240101T090000Z\nDURATION:-PT1H"), "DURATION -PT1H is negative"),
        (event("DTSTART:2024-01-01"), "unparsable DTSTART"),
        (event("DTSTART:20240101T090000Z\nRRULE:FREQ=MINUTELY"), "sub-hourly"),
        (
            event("DTSTART:20240101T090000Z\nRRULE:FREQ=DAILY;COUNT=2;UNTIL=20240105T000000Z"),
            "both COUNT and UNTIL",
        ),
        (event("DTSTART:20240101T090000Z\nRRULE:FREQ=SOMETIMES"), "RRULE"),
        (
            event("DTSTART:20240101T090000Z\nRRULE:FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30,-31"),
            "never occurs",
        ),
    ],
)
def test_more_invalid_inputs(text: str, reason: str) -> None:
    with pytest.raises(InvalidCalendarObject, match=reason):
        parse_event(text)


def test_two_masters_of_one_uid_are_refused() -> None:
    text = event("DTSTART:20240101T090000Z\nEND:VEVENT\nBEGIN:VEVENT\nUID:test-uid\n"
                 "DTSTART:20240102T090000Z")
    with pytest.raises(InvalidCalendarObject, match="no RECURRENCE-ID"):
        parse_event(text)


def test_override_with_its_own_rrule_is_refused() -> None:
    text = event(
        "DTSTART:20240101T090000Z\nRRULE:FREQ=DAILY\nEND:VEVENT\nBEGIN:VEVENT\nUID:test-uid\n"
        "RECURRENCE-ID:20240102T090000Z\nDTSTART:20240102T100000Z\nRRULE:FREQ=DAILY"
    )
    with pytest.raises(InvalidCalendarObject, match="must not have an RRULE"):
        parse_event(text)


def test_huge_series_leave_the_span_open_instead_of_expanding_everything() -> None:
    import time

    began = time.process_time()
    data = parse_event(event("DTSTART:20240101T090000Z\nRRULE:FREQ=DAILY;COUNT=2000"))
    assert data.span_end is None  # past the work budget: a safe superset for the index
    with pytest.raises(InvalidCalendarObject, match="too costly to expand"):
        parse_event(event("DTSTART:20240101T090000Z\nRRULE:FREQ=HOURLY;COUNT=1000000"))
    sparse = parse_event(
        event("DTSTART:20240101T090000Z\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=3")
    )
    assert sparse.span_end == utc(2032, 2, 29, 9)
    assert time.process_time() - began < 2


def test_parse_is_fast_enough_for_every_put() -> None:
    import time

    text = fixture("davx5_weekly_with_overrides.ics")
    parse_event(text)
    began = time.process_time()
    for _ in range(50):
        parse_event(text)
    assert (time.process_time() - began) / 50 < 0.05
