"""render_event: CRM-made entries as iCalendar, byte-for-byte stable."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ical import Attendee, Organizer, RenderInput, parse_event, render_event

STAMP = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def entry(**changes: object) -> RenderInput:
    values: dict[str, object] = {
        "uid": "crm-entry-42@crm.example",
        "title": "Quarterly review",
        "description": None,
        "location": None,
        "start": datetime(2024, 6, 12, 8, 0, tzinfo=UTC),
        "end": datetime(2024, 6, 12, 9, 30, tzinfo=UTC),
        "tzid": "Europe/Berlin",
        "all_day": False,
        "rrule": None,
        "organizer": Organizer("maria.sales@example.com", "Maria Sales"),
        "attendees": (),
        "sequence": 0,
        "dtstamp": STAMP,
    }
    values.update(changes)
    return RenderInput(**values)  # type: ignore[arg-type]


EXPECTED_TIMED = (
    "BEGIN:VCALENDAR\r\n"
    "PRODID:-//crm-gateway//EN\r\n"
    "VERSION:2.0\r\n"
    "CALSCALE:GREGORIAN\r\n"
    "BEGIN:VTIMEZONE\r\n"
    "TZID:Europe/Berlin\r\n"
    "BEGIN:DAYLIGHT\r\n"
    "DTSTART:20230326T020000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
    "TZNAME:CEST\r\n"
    "TZOFFSETFROM:+0100\r\n"
    "TZOFFSETTO:+0200\r\n"
    "END:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\n"
    "DTSTART:20231029T030000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
    "TZNAME:CET\r\n"
    "TZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\n"
    "END:STANDARD\r\n"
    "END:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\n"
    "UID:crm-entry-42@crm.example\r\n"
    "DTSTAMP:20240601T120000Z\r\n"
    "CREATED:20240501T080000Z\r\n"
    "LAST-MODIFIED:20240601T120000Z\r\n"
    "SEQUENCE:3\r\n"
    "SUMMARY:Quarterly review\\, Q2\r\n"
    "DESCRIPTION:Bring the numbers\\; and the slides.\\nSecond line\r\n"
    "LOCATION:ACME GmbH\r\n"
    "DTSTART;TZID=Europe/Berlin:20240612T100000\r\n"
    "DTEND;TZID=Europe/Berlin:20240612T113000\r\n"
    "ORGANIZER;CN=Maria Sales:mailto:maria.sales@example.com\r\n"
    'ATTENDEE;CN="Buyer, Jens";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:jen\r\n'
    " s.buyer@customer.example\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:legal@customer.example\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def full_entry() -> RenderInput:
    return entry(
        title="Quarterly review, Q2",
        description="Bring the numbers; and the slides.\nSecond line",
        location="ACME GmbH",
        attendees=(
            Attendee("jens.buyer@customer.example", "Buyer, Jens", "ACCEPTED", "REQ-PARTICIPANT"),
            Attendee("legal@customer.example", None),
        ),
        sequence=3,
        last_modified=STAMP,
        created=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
    )


def test_timed_entry_renders_exactly() -> None:
    assert render_event(full_entry()) == EXPECTED_TIMED


def test_rendering_is_byte_identical_in_a_fresh_process() -> None:
    script = (
        "import sys; from datetime import datetime, UTC\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_ical_render import full_entry\n"
        "from gateway.ical import render_event\n"
        "sys.stdout.buffer.write(render_event(full_entry()).encode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, cwd=_project_root()
    )
    assert result.stdout == render_event(full_entry()).encode()


def _project_root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent)


def test_attendees_keep_the_order_given() -> None:
    first = Attendee("a@x.example", None)
    second = Attendee("b@x.example", None)
    forward = render_event(entry(attendees=(first, second)))
    backward = render_event(entry(attendees=(second, first)))
    assert forward.index("a@x.example") < forward.index("b@x.example")
    assert backward.index("b@x.example") < backward.index("a@x.example")
    assert render_event(entry(attendees=(first, second))) == forward


def test_utc_entry_has_no_vtimezone() -> None:
    text = render_event(entry(tzid=None))
    assert "VTIMEZONE" not in text
    assert "DTSTART:20240612T080000Z\r\n" in text and "DTEND:20240612T093000Z\r\n" in text


def test_all_day_entry_uses_dates() -> None:
    text = render_event(
        entry(
            all_day=True,
            start=datetime(2024, 6, 29, tzinfo=UTC),
            end=datetime(2024, 7, 2, tzinfo=UTC),
        )
    )
    assert "DTSTART;VALUE=DATE:20240629\r\n" in text
    assert "DTEND;VALUE=DATE:20240702\r\n" in text
    assert "VTIMEZONE" not in text


def test_organizer_without_name_is_the_address_only() -> None:
    text = render_event(entry(organizer=Organizer("bot@crm.example")))
    assert "ORGANIZER:mailto:bot@crm.example\r\n" in text
    assert "ORGANIZER" not in render_event(entry(organizer=None))


def test_long_lines_are_folded_at_75_octets_without_splitting_characters() -> None:
    text = render_event(entry(description="Überraschung " * 20))
    for line in text.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75
    assert "\n" not in text.replace("\r\n", "")
    assert parse_event(text).description == ("Überraschung " * 20)


def test_recurring_entry_carries_its_rule() -> None:
    text = render_event(entry(rrule="FREQ=WEEKLY;BYDAY=WE;COUNT=4"))
    assert "RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=4\r\n" in text
    assert parse_event(text).span_end == datetime(2024, 7, 3, 9, 30, tzinfo=UTC)


def test_naive_datetimes_and_unknown_zones_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        render_event(entry(dtstamp=datetime(2024, 1, 1)))
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        render_event(entry(tzid="W. Europe Standard Time"))


# Round trip: what the CRM renders, parse_event reads back as the same fields.
_printable = st.characters(blacklist_categories=("Cs", "Cc"))
_text = st.text(alphabet=st.one_of(_printable, st.sampled_from("\n\t\\;,:\"^")), max_size=120)
_name = st.one_of(
    st.none(),
    st.text(alphabet=st.one_of(_printable, st.sampled_from(";,:\"^")), min_size=1, max_size=40)
    # icalendar's parser reads two backslashes in a parameter as one (RFC 5545 has no
    # parameter escapes); no real name has two in a row.
    .filter(lambda value: value.strip() == value and "\\\\" not in value),
)
_email = st.from_regex(r"[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,20}\.example", fullmatch=True)
_attendee = st.builds(
    Attendee,
    email=_email,
    name=_name,
    partstat=st.sampled_from(["NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE"]),
    role=st.sampled_from([None, "REQ-PARTICIPANT", "OPT-PARTICIPANT", "CHAIR"]),
)
_zones = st.sampled_from(
    [None, "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
)


@settings(max_examples=150, deadline=None)
@given(
    title=_text,
    description=st.one_of(st.none(), _text),
    location=st.one_of(st.none(), _text),
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 3),
    tzid=_zones,
    all_day=st.booleans(),
    attendees=st.lists(_attendee, max_size=4, unique_by=lambda a: a.email).map(tuple),
    organizer=st.one_of(st.none(), st.builds(Organizer, email=_email, name=_name)),
    sequence=st.integers(min_value=0, max_value=1000),
)
def test_render_then_parse_gives_back_the_fields(
    title: str,
    description: str | None,
    location: str | None,
    start: datetime,
    minutes: int,
    tzid: str | None,
    all_day: bool,
    attendees: tuple[Attendee, ...],
    organizer: Organizer | None,
    sequence: int,
) -> None:
    start = start.replace(microsecond=0)
    if all_day:
        start = start.replace(hour=0, minute=0, second=0)
        end = start + timedelta(days=1 + minutes % 5)
    else:
        end = start + timedelta(minutes=minutes)
    source = entry(
        title=title,
        description=description,
        location=location,
        start=start,
        end=end,
        tzid=tzid,
        all_day=all_day,
        attendees=attendees,
        organizer=organizer,
        sequence=sequence,
    )
    text = render_event(source)
    assert render_event(source) == text
    data = parse_event(text)
    clean = _strip_returns
    assert data.title == clean(title)
    assert data.description == (clean(description) if description is not None else None)
    assert data.location == (clean(location) if location is not None else None)
    assert (data.start, data.end) == (start, end)
    assert data.all_day is all_day
    assert data.tzid == (None if all_day else tzid)
    assert data.attendees == attendees
    assert data.organizer_email == (organizer.email if organizer else None)
    assert data.organizer_name == (organizer.name if organizer else None)
    assert data.sequence == sequence
    assert data.uid == source.uid


def _strip_returns(value: str) -> str:
    # iCalendar TEXT has one line break, \n; a CR alone or in CRLF becomes it.
    return value.replace("\r\n", "\n").replace("\r", "\n")
