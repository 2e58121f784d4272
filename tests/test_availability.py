"""Busy time, availability and the conflict calendar in the core, on SQLite and PostgreSQL:
what counts as busy, working hours in several zones, warn / refuse / force on CRM-side
bookings, and client writes recorded as conflicts but never refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peers import TEST_SECRET_KEY
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.availability import (
    WorkingHours,
    find_availability,
    free_slots,
    parse_working_hours,
    set_working_hours,
)
from gateway.busy import busy_periods, busy_spans, is_busy_time
from gateway.calendars import CalendarView, user_calendar
from gateway.client_writes import put_event
from gateway.conflicts import ConflictRefused, recorded
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, EntryEdit, create_entry, update_entry
from gateway.errors import Invalid
from gateway.models import (
    DiaryEntry,
    EntryConflict,
    EntryParticipant,
    LinkedAccount,
    LinkedCalendar,
    LinkedObject,
    User,
    WebhookEvent,
)
from gateway.profiles import ProfileChanges, global_profile, update_profile
from gateway.secrets import SecretBox
from gateway.users import UserChanges, create_user, get_user, update_user
from gateway.webhooks import add_endpoint

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday
DEFAULT = "Mon-Fri 09:00-17:00 UTC"
BOX = SecretBox(TEST_SECRET_KEY)


def calendar_view(session: Session, user: User, slug: str) -> CalendarView:
    found = user_calendar(session, user, slug)
    assert found is not None
    return found


def at(hour: float, day: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour)


@pytest.fixture
def crm(store: Store) -> Store:
    with store.transaction() as session:
        create_type(session, "Meeting")
        for name in ("alice", "bob", "carol"):
            user = create_user(session, name, f"{name}@acme.example", name=name.title())
            update_user(session, user, UserChanges(diary_sync=True))
    return store


def book(store: Store, title: str, start: datetime, end: datetime, organizer: str = "alice",
         attendees: tuple[str, ...] = (), force: bool = False, rrule: str | None = None) -> int:
    with store.transaction() as session:
        entry = create_entry(session, EntryDraft(
            type_name="Meeting", title=title, start=start, end=end, organizer=organizer,
            attendees=attendees, rrule=rrule), force=force)
        return entry.id


def conflicts_setting(store: Store, value: str, username: str | None = None) -> None:
    with store.transaction() as session:
        user = get_user(session, username) if username else None
        update_profile(session, user, ProfileChanges(conflicts=value))


def busy(store: Store, username: str, start: datetime, end: datetime
         ) -> list[tuple[datetime, datetime]]:
    with store.reading() as session:
        return busy_periods(session, get_user(session, username).id, start, end)


# --- what is busy time ----------------------------------------------------------------------


def test_own_entries_and_invitations_not_declined_are_busy(crm: Store) -> None:
    conflicts_setting(crm, "allow")
    book(crm, "Own", at(9), at(10))
    accepted = book(crm, "Invited, accepted", at(11), at(12), attendees=("bob",))
    declined = book(crm, "Invited, declined", at(13), at(14), attendees=("bob",))
    book(crm, "Invited, no answer yet", at(15), at(16), attendees=("bob",))
    with crm.transaction() as session:
        for entry_id, partstat in ((accepted, "ACCEPTED"), (declined, "DECLINED")):
            session.execute(update(EntryParticipant).where(
                EntryParticipant.entry_id == entry_id).values(partstat=partstat))
    assert busy(crm, "alice", at(0), at(24)) == [
        (at(9), at(10)), (at(11), at(12)), (at(13), at(14)), (at(15), at(16))]
    assert busy(crm, "bob", at(0), at(24)) == [(at(11), at(12)), (at(15), at(16))]
    assert busy(crm, "carol", at(0), at(24)) == []


def test_transparent_and_cancelled_events_are_not_busy(crm: Store) -> None:
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
            "UID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261207T{h}0000Z\r\n"
            "DTEND:20261207T{e}0000Z\r\nSUMMARY:{uid}\r\n{extra}END:VEVENT\r\n"
            "END:VCALENDAR\r\n")
    with crm.transaction() as session:
        alice = get_user(session, "alice")
        calendar = calendar_view(session, alice, "meeting")
        for uid, hour, extra in (("opaque", 9, "TRANSP:OPAQUE\r\n"),
                                 ("free", 11, "TRANSP:TRANSPARENT\r\n"),
                                 ("cancelled", 13, "STATUS:CANCELLED\r\n")):
            put_event(session, alice, calendar, f"{uid}.ics",
                      text.format(uid=uid, h=f"{hour:02d}", e=f"{hour + 1:02d}", extra=extra))
    assert busy(crm, "alice", at(0), at(24)) == [(at(9), at(10))]
    assert not is_busy_time("BEGIN:VEVENT\r\nTRANSP;X-A=1:transparent\r\nEND:VEVENT", None)
    assert not is_busy_time("BEGIN:VTODO\r\nDUE:20261207T090000Z\r\nEND:VTODO", None)
    assert is_busy_time("BEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT", "CONFIRMED")


def test_a_recurring_series_is_busy_at_each_instance_in_the_window(crm: Store) -> None:
    conflicts_setting(crm, "allow")
    book(crm, "Stand-up", at(9), at(9.25), rrule="FREQ=DAILY;COUNT=10")
    assert busy(crm, "alice", at(0, 2), at(0, 4)) == [
        (at(9, 2), at(9.25, 2)), (at(9, 3), at(9.25, 3))]


def test_busy_time_fetched_from_a_linked_calendar_counts(crm: Store) -> None:
    with crm.transaction() as session:
        alice = get_user(session, "alice")
        account = LinkedAccount(user_id=alice.id, url="https://dav.example/", login="a",
                                secret=b"x", next_sync_at=MONDAY)
        session.add(account)
        session.flush()
        source = LinkedCalendar(account_id=account.id, url="https://dav.example/home/",
                                name="Home", role="source")
        session.add(source)
        session.flush()
        session.add(LinkedObject(calendar_id=source.id, href="/home/dentist.ics",
                                 busy_start_utc=at(8), busy_end_utc=at(8.5)))
    assert busy(crm, "alice", at(0), at(24)) == [(at(8), at(8.5))]
    with crm.reading() as session:
        [span] = busy_spans(session, get_user(session, "alice").id, at(0), at(24))
    assert span.entry_id is None and span.calendar == "Home"


def test_busy_periods_are_merged_and_clipped_to_the_window(crm: Store) -> None:
    conflicts_setting(crm, "allow")
    book(crm, "A", at(9), at(10))
    book(crm, "B", at(9.5), at(11))
    book(crm, "C", at(11), at(12))
    assert busy(crm, "alice", at(9.75), at(11.5)) == [(at(9.75), at(11.5))]


# --- working hours and availability ---------------------------------------------------------


def test_working_hours_parse_and_follow_daylight_saving_time() -> None:
    hours = parse_working_hours("Mon-Fri 09:00-17:00 Europe/Berlin")
    assert str(hours) == "Mon-Fri 09:00-17:00 Europe/Berlin"
    assert str(parse_working_hours("mon,wed,FRI 08:30-12:00 UTC")) == \
        "Mon,Wed,Fri 08:30-12:00 UTC"
    winter = hours.windows(datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 28, tzinfo=UTC))
    summer = hours.windows(datetime(2026, 3, 30, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    assert winter == [(datetime(2026, 3, 27, 8, tzinfo=UTC), datetime(2026, 3, 27, 16, tzinfo=UTC))]
    assert summer == [(datetime(2026, 3, 30, 7, tzinfo=UTC), datetime(2026, 3, 30, 15, tzinfo=UTC))]
    for bad in ("Mon-Fri 17:00-09:00 UTC", "Fri-Mon 09:00-17:00 UTC", "Mon-Fri 9-5 UTC",
                "Mon-Fri 09:00-17:00 Mars/Olympus", "Someday 09:00-17:00 UTC",
                "Mon-Fri 25:00-26:00 UTC"):
        with pytest.raises(Invalid):
            parse_working_hours(bad)


def test_availability_of_three_users_with_working_hours_in_two_time_zones(crm: Store) -> None:
    conflicts_setting(crm, "allow")
    with crm.transaction() as session:
        set_working_hours(session, get_user(session, "alice"), "Mon-Fri 09:00-17:00 Europe/Berlin")
        set_working_hours(session, get_user(session, "bob"), "Mon-Fri 09:00-17:00 Europe/Berlin")
        set_working_hours(session, get_user(session, "carol"),
                          "Mon-Fri 09:00-17:00 America/New_York")
    # Berlin 09-17 is 08-16 UTC; New York 09-17 is 14-22 UTC: the common time is 14-16 UTC.
    book(crm, "Alice busy", at(14), at(14.5))
    book(crm, "Bob busy", at(15.25), at(15.5), organizer="bob")
    with crm.reading() as session:
        found = find_availability(session, ["alice", "bob", "carol"], at(0), at(0, 2),
                                  timedelta(minutes=30), default_hours=DEFAULT, max_days=62)
    assert found == [(at(14.5), at(15.25)), (at(15.5), at(16)),
                     (at(14, 1), at(16, 1))]
    with crm.reading() as session:
        shorter = find_availability(session, ["alice", "carol"], at(0), at(24),
                                    timedelta(minutes=90), default_hours=DEFAULT, max_days=62)
        assert shorter == [(at(14.5), at(16))]
        with pytest.raises(Invalid, match="longer than 62 days"):
            find_availability(session, ["alice"], at(0), at(0, 63), timedelta(minutes=30),
                              default_hours=DEFAULT, max_days=62)
        with pytest.raises(Invalid, match="ends before"):
            find_availability(session, ["alice"], at(2), at(1), timedelta(minutes=30),
                              default_hours=DEFAULT, max_days=62)


ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
STEP = timedelta(minutes=15)


@st.composite
def person(draw: st.DrawFn) -> tuple[WorkingHours, list[tuple[datetime, datetime]]]:
    start = draw(st.integers(0, 20 * 4))
    length = draw(st.integers(1, 24 * 4 - 1 - start))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    zone = draw(st.sampled_from(ZONES))
    hours = WorkingHours(days, (datetime.min + start * STEP).time(),
                         (datetime.min + (start + length) * STEP).time(), zone)
    busy = [(MONDAY + a * STEP, MONDAY + (a + n) * STEP)
            for a, n in draw(st.lists(st.tuples(st.integers(0, 3 * 96), st.integers(1, 16)),
                                      max_size=12))]
    return hours, busy


@settings(max_examples=150, deadline=None)
@given(st.lists(person(), min_size=1, max_size=3), st.integers(1, 8))
def test_free_slots_match_a_minute_by_minute_reference(
        people: list[tuple[WorkingHours, list[tuple[datetime, datetime]]]], steps: int) -> None:
    start, end, duration = MONDAY, MONDAY + timedelta(days=3), steps * STEP
    found = free_slots(people, start, end, duration)
    # The reference: a 15-minute grid (every boundary is on it, Kolkata's +05:30 too).
    free = []
    moment = start
    while moment < end:
        ok = True
        for hours, busy in people:
            local = moment.astimezone(ZoneInfo(hours.tz))
            inside = (local.weekday() in hours.days
                      and hours.start <= local.time() < hours.end)
            if not inside or any(b0 <= moment < b1 for b0, b1 in busy):
                ok = False
                break
        free.append(ok)
        moment += STEP
    runs, index = [], 0
    while index < len(free):
        if free[index]:
            first = index
            while index < len(free) and free[index]:
                index += 1
            runs.append((start + first * STEP, start + index * STEP))
        else:
            index += 1
    assert found == [(a, b) for a, b in runs if b - a >= duration]


# --- the conflict calendar ------------------------------------------------------------------


def test_warn_books_the_entry_and_records_the_overlaps(crm: Store) -> None:
    conflicts_setting(crm, "warn")
    first = book(crm, "Bob's call", at(9), at(10), organizer="bob")
    second = book(crm, "Review", at(9.5), at(10.5), attendees=("bob",))
    with crm.reading() as session:
        [clash] = recorded(session, second)
    assert (clash.user, clash.entry_id, clash.title, clash.owner) == (
        "bob", first, "Bob's call", "bob")
    assert (clash.start, clash.end, clash.calendar) == (at(9), at(10), "meeting")


def test_refuse_answers_the_overlaps_and_stores_nothing_unless_forced(crm: Store) -> None:
    conflicts_setting(crm, "refuse", "alice")
    book(crm, "Existing", at(9), at(10))
    with pytest.raises(ConflictRefused) as refused:
        book(crm, "Overlap", at(9.5), at(10.5))
    [clash] = refused.value.clashes
    assert clash.title == "Existing" and clash.user == "alice"
    assert "Existing" in str(refused.value)
    with crm.reading() as session:
        assert busy_periods(session, get_user(session, "alice").id, at(0), at(24)) == [
            (at(9), at(10))]
    # Back to back is no overlap; force books over it anyway.
    book(crm, "Right after", at(10), at(11))
    forced = book(crm, "Overlap", at(9.5), at(10.5), force=True)
    with crm.reading() as session:
        assert {c.title for c in recorded(session, forced)} == {"Existing", "Right after"}


def test_refuse_moves_too_and_a_declined_attendee_is_not_checked(crm: Store) -> None:
    conflicts_setting(crm, "refuse")
    book(crm, "Bob's call", at(9), at(10), organizer="bob")
    entry_id = book(crm, "Later", at(12), at(13), attendees=("bob",))
    with crm.transaction() as session, pytest.raises(ConflictRefused):
        entry = session.get_one(DiaryEntry, entry_id)
        update_entry(session, entry, EntryEdit(start=at(9.5), end=at(10.5)))
    with crm.transaction() as session:
        session.execute(update(EntryParticipant).where(
            EntryParticipant.entry_id == entry_id).values(partstat="DECLINED"))
    with crm.transaction() as session:
        entry = session.get_one(DiaryEntry, entry_id)
        update_entry(session, entry, EntryEdit(start=at(9.5), end=at(10.5)))
        assert recorded(session, entry_id) == []


def test_adding_a_busy_attendee_is_checked_like_a_move(crm: Store) -> None:
    conflicts_setting(crm, "refuse")
    book(crm, "Carol's call", at(9), at(10), organizer="carol")
    entry_id = book(crm, "Review", at(9), at(10))
    with crm.transaction() as session, pytest.raises(ConflictRefused) as refused:
        entry = session.get_one(DiaryEntry, entry_id)
        update_entry(session, entry, EntryEdit(attendees=("carol",)))
    assert [c.user for c in refused.value.clashes] == ["carol"]
    with crm.transaction() as session:
        entry = session.get_one(DiaryEntry, entry_id)
        update_entry(session, entry, EntryEdit(attendees=("carol",)), force=True)
        assert [c.title for c in recorded(session, entry_id)] == ["Carol's call"]


def test_allow_is_the_default_and_checks_nothing(crm: Store) -> None:
    with crm.reading() as session:
        assert global_profile(session).conflicts == "allow"
    book(crm, "One", at(9), at(10))
    second = book(crm, "Two", at(9), at(10))
    with crm.reading() as session:
        assert recorded(session, second) == []


def test_a_client_put_over_busy_time_is_accepted_and_recorded_with_a_webhook(
        crm: Store) -> None:
    conflicts_setting(crm, "refuse")
    with crm.transaction() as session:
        add_endpoint(session, "http://127.0.0.1:9/hooks", ["entry.conflict"], box=BOX)
    book(crm, "CRM meeting", at(9), at(10))
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
            "UID:phone@test\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261207T093000Z\r\n"
            "DTEND:20261207T103000Z\r\nSUMMARY:From the phone\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n")
    with crm.transaction() as session:
        alice = get_user(session, "alice")
        outcome = put_event(session, alice, calendar_view(session, alice, "meeting"),
                            "phone.ics", text)
        assert outcome.created
    with crm.reading() as session:
        [row] = session.scalars(select(EntryConflict)).all()
        assert row.source == "calendar" and row.other_title == "CRM meeting"
        [payload] = session.scalars(select(WebhookEvent.payload)
                                    .where(WebhookEvent.type == "entry.conflict")).all()
    data = payload["data"]
    assert data["title"] == "From the phone" and data["source"] == "calendar"
    assert [c["title"] for c in data["conflicts"]] == ["CRM meeting"]
