"""iCalendar export of one entry by the rules of issue 12 item 5, and the rep's feed, in the
core: what the file and the feed hold, read back with ``icalendar``; feed tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from gateway import calendars, client_writes, feeds
from gateway.db import Store
from gateway.diary_types import create_type, get_type, update_type
from gateway.entries import EntryDraft, EntryEdit, create_entry, update_entry
from gateway.export import (
    NotExportable,
    download_name,
    entry_ics,
    feed_body,
    feed_etag,
    feed_window,
)
from gateway.models import DiaryEntry, User
from gateway.users import UserChanges, create_user, get_user, update_user

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def crm(store: Store) -> Store:
    with store.transaction() as session:
        create_type(session, "Meeting")
        create_type(session, "Internal", syncable=False)
        for name in ("alice", "bob", "carol"):
            user = create_user(session, name, f"{name}@acme.example", name=name.title())
            update_user(session, user, UserChanges(diary_sync=True))
    return store


def make(store: Store, **fields: object) -> int:
    values: dict[str, object] = {"type_name": "Meeting", "title": "Pricing", "start": START,
                                 "end": START + timedelta(hours=1), "organizer": "alice"}
    values.update(fields)
    with store.transaction() as session:
        return create_entry(session, EntryDraft(**values)).id  # type: ignore[arg-type]


def export(store: Store, entry_id: int, downloader: str | None = None) -> Calendar:
    with store.reading() as session:
        entry = session.get(DiaryEntry, entry_id)
        assert entry is not None
        who = get_user(session, downloader).id if downloader else None
        return Calendar.from_ical(entry_ics(entry, who))


def refusal(store: Store, entry_id: int) -> str:
    with store.reading() as session, pytest.raises(NotExportable) as refused:
        entry = session.get(DiaryEntry, entry_id)
        assert entry is not None
        entry_ics(entry, None)
    return str(refused.value)


def attendees(calendar: Calendar) -> list[str]:
    [event] = calendar.walk("VEVENT")
    found = event.get("ATTENDEE", [])
    return [str(a).lower() for a in (found if isinstance(found, list) else [found])]


def organizer(calendar: Calendar) -> str | None:
    [event] = calendar.walk("VEVENT")
    return str(event["ORGANIZER"]).lower() if "ORGANIZER" in event else None


def test_a_plain_entry_exports_with_its_fields_its_organiser_and_attendees(crm: Store) -> None:
    entry_id = make(crm, attendees=("bob", "hank@globex.example"), location="Room 1",
                    tzid="Europe/Berlin")
    calendar = export(crm, entry_id, "bob")
    assert str(calendar["METHOD"]) == "PUBLISH"
    [event] = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]) == "Pricing" and str(event["LOCATION"]) == "Room 1"
    assert event.decoded("DTSTART") == START and event.decoded("DTEND") == START + \
        timedelta(hours=1)
    assert str(event["DTSTART"].params["TZID"]) == "Europe/Berlin"
    assert calendar.walk("VTIMEZONE")
    assert organizer(calendar) == "mailto:alice@acme.example"
    assert attendees(calendar) == ["mailto:bob@acme.example", "mailto:hank@globex.example"]
    with crm.reading() as session:
        entry = session.get(DiaryEntry, entry_id)
        assert entry is not None and download_name(entry) == "Pricing.ics"


def test_a_recurring_entry_is_refused_with_the_reason(crm: Store) -> None:
    entry_id = make(crm, rrule="FREQ=WEEKLY;COUNT=4")
    assert "recurring" in refusal(crm, entry_id)


def test_an_entry_of_a_type_that_is_not_syncable_is_refused_with_the_reason(
        crm: Store) -> None:
    entry_id = make(crm, type_name="Internal")
    assert "'Internal', which is not syncable" in refusal(crm, entry_id)
    # A type made syncable later exports.
    with crm.transaction() as session:
        update_type(session, get_type(session, "Internal"), syncable=True)
    assert organizer(export(crm, entry_id)) == "mailto:alice@acme.example"


def test_the_organiser_is_left_out_for_an_automation_and_for_its_creator_downloading(
        crm: Store) -> None:
    by_automation = make(crm, organizer=None, automation=True, attendees=("bob",))
    assert organizer(export(crm, by_automation)) is None
    assert organizer(export(crm, by_automation, "bob")) is None
    assert attendees(export(crm, by_automation)) == ["mailto:bob@acme.example"]
    by_alice = make(crm, attendees=("bob",))
    assert organizer(export(crm, by_alice, "alice")) is None
    assert organizer(export(crm, by_alice, "bob")) == "mailto:alice@acme.example"
    assert organizer(export(crm, by_alice)) == "mailto:alice@acme.example"
    # The creator is not listed as their own attendee either way.
    assert attendees(export(crm, by_alice, "alice")) == ["mailto:bob@acme.example"]


DUPLICATES = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VEVENT\r
UID:dupes@test\r
DTSTAMP:20261201T090000Z\r
DTSTART:20261207T090000Z\r
DTEND:20261207T100000Z\r
SUMMARY:Review\r
ORGANIZER:mailto:alice@acme.example\r
ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@acme.example\r
ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@acme.example\r
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:BOB@acme.example\r
ATTENDEE:mailto:hank@globex.example\r
ATTENDEE:mailto:Hank@Globex.example\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_people_listed_twice_by_a_calendar_client_are_attendees_once(crm: Store) -> None:
    with crm.transaction() as session:
        alice = get_user(session, "alice")
        view = calendars.user_calendar(session, alice, "meeting")
        assert view is not None
        client_writes.put_event(session, alice, view, "dupes.ics", DUPLICATES)
        entry_id = session.scalars(
            select(DiaryEntry.id).where(DiaryEntry.uid == "dupes@test")).one()
        assert DUPLICATES.count("ATTENDEE") == 5
    for downloader in (None, "alice", "bob"):
        listed = attendees(export(crm, entry_id, downloader))
        assert listed == ["mailto:bob@acme.example", "mailto:hank@globex.example"]


# --- the feed -------------------------------------------------------------------------------


def feed_of(store: Store, username: str, now: datetime = NOW) -> tuple[Calendar, str]:
    window = feed_window(90, 365, now)
    with store.reading() as session:
        user = get_user(session, username)
        body, etag = feed_body(session, user, window)
        assert feed_etag(session, user, window) == etag
    return Calendar.from_ical(body), etag


def uids(calendar: Calendar) -> set[str]:
    return {str(event["UID"]) for event in calendar.walk("VEVENT")}


def test_the_feed_holds_what_the_reps_calendars_show_in_its_window(crm: Store) -> None:
    def uid_of(entry_id: int) -> str:
        with crm.reading() as session:
            entry = session.get(DiaryEntry, entry_id)
            assert entry is not None
            return entry.uid

    inside = uid_of(make(crm, attendees=("bob",), tzid="Europe/Berlin"))
    also_inside = uid_of(make(crm, title="Weekly", rrule="FREQ=WEEKLY",
                              start=NOW - timedelta(days=400),
                              end=NOW - timedelta(days=400) + timedelta(hours=1),
                              tzid="Europe/Berlin"))
    too_old = uid_of(make(crm, start=NOW - timedelta(days=100),
                          end=NOW - timedelta(days=100) + timedelta(hours=1)))
    too_far = uid_of(make(crm, start=NOW + timedelta(days=400),
                          end=NOW + timedelta(days=400) + timedelta(hours=1)))
    hidden = uid_of(make(crm, type_name="Internal"))
    by_carol = uid_of(make(crm, organizer="carol"))
    feed, _ = feed_of(crm, "alice")
    assert uids(feed) == {inside, also_inside}
    assert not {too_old, too_far, hidden, by_carol} & uids(feed)
    assert [str(z["TZID"]) for z in feed.walk("VTIMEZONE")] == ["Europe/Berlin"]
    # Bob sees the invitation in his feed, as in his invitations calendar.
    assert uids(feed_of(crm, "bob")[0]) == {inside}


def test_the_feed_etag_changes_with_the_calendars_and_the_day_only(crm: Store) -> None:
    entry_id = make(crm)
    _, first = feed_of(crm, "alice")
    assert feed_of(crm, "alice", NOW + timedelta(hours=5))[1] == first  # same day
    assert feed_of(crm, "alice", NOW + timedelta(days=1))[1] != first  # the window moved
    with crm.transaction() as session:
        entry = session.get(DiaryEntry, entry_id)
        assert entry is not None
        update_entry(session, entry, EntryEdit(title="Pricing (moved)"))
    feed, changed = feed_of(crm, "alice")
    assert changed != first
    [event] = feed.walk("VEVENT")
    assert str(event["SUMMARY"]) == "Pricing (moved)"
    with crm.transaction() as session:
        update_user(session, get_user(session, "alice"), UserChanges(diary_sync=False))
    feed, stopped = feed_of(crm, "alice")
    assert stopped != changed and uids(feed) == set()


def test_a_feed_token_resolves_until_it_is_replaced_or_revoked(crm: Store) -> None:
    with crm.transaction() as session:
        alice = get_user(session, "alice")
        first = feeds.create_feed(session, alice)
        alice_id = alice.id
    with crm.reading() as session:
        assert feeds.resolve(session, first) == alice_id
        assert feeds.resolve(session, first[:-1] + ("A" if first[-1] != "A" else "B")) is None
        assert feeds.resolve(session, "nonsense") is None
        assert feeds.user_feed(session, alice_id) is not None
    with crm.transaction() as session:
        second = feeds.create_feed(session, session.get(User, alice_id))  # type: ignore[arg-type]
    with crm.reading() as session:
        assert feeds.resolve(session, first) is None
        assert feeds.resolve(session, second) == alice_id
    with crm.transaction() as session:
        user = session.get(User, alice_id)
        assert user is not None
        assert feeds.revoke_feed(session, user) is True
        assert feeds.revoke_feed(session, user) is False
    with crm.reading() as session:
        assert feeds.resolve(session, second) is None
        assert feeds.user_feed(session, alice_id) is None
    assert feeds.feed_url("https://crm.example/", second) == \
        f"https://crm.example/feeds/{second}.ics"
