"""Publication rows: exactly the affected (user, calendar) pairs change, each with a new revision.

This is what the CalDAV layer serves, so it is tested directly after every kind of change:
an entry's fields, participants, type and deletion; a type's syncable flag; a user's diary
sync; a sync profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contacts import create_account, create_contact
from gateway.db import Store
from gateway.diary_types import create_type, get_type, update_type
from gateway.entries import EntryDraft, EntryEdit, create_entry, delete_entry, update_entry
from gateway.models import Calendar, DiaryEntry, PublishedItem, User
from gateway.profiles import ProfileChanges, update_profile
from gateway.publication import publish_all_users, publish_type, publish_user
from gateway.users import UserChanges, create_user, get_user, update_user

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

State = dict[tuple[str, str, int], tuple[int, bool, str]]


def published(session: Session) -> State:
    """(username, calendar slug, entry id) -> (revision, deleted, ical)."""
    rows = session.execute(
        select(User.username, Calendar.slug, PublishedItem.entry_id, PublishedItem.revision,
               PublishedItem.deleted, PublishedItem.ical)
        .join(Calendar, Calendar.id == PublishedItem.calendar_id)
        .join(User, User.id == Calendar.user_id)
    )
    return {(u, c, e): (r, d, i) for u, c, e, r, d, i in rows}


def live(state: State) -> set[tuple[str, str, int]]:
    return {key for key, (_, deleted, _) in state.items() if not deleted}


def changed(before: State, after: State) -> set[tuple[str, str, int]]:
    return {key for key in after if before.get(key) != after[key]}


@pytest.fixture
def crm(store: Store) -> Iterator[Store]:
    with store.transaction() as session:
        create_type(session, "Meeting")
        create_type(session, "Call")
        create_type(session, "Internal", syncable=False)
        account = create_account(session, "Globex", ["globex.example"])
        create_contact(session, "hank@globex.example", name="Hank Scorpio", account=account)
        for username in ("alice", "bob", "carol"):
            user = create_user(session, username, f"{username}@acme.example",
                               name=username.title())
            if username != "carol":
                update_user(session, user, UserChanges(diary_sync=True))
    yield store


def add(store: Store, **fields: object) -> int:
    values: dict[str, object] = {
        "type_name": "Meeting", "title": "Pricing", "start": START,
        "end": START + timedelta(hours=1), "organizer": "alice", "tzid": "Europe/Berlin",
    }
    values.update(fields)
    with store.transaction() as session:
        return create_entry(session, EntryDraft(**values)).id  # type: ignore[arg-type]


def snapshot(store: Store) -> State:
    with store.reading() as session:
        return published(session)


def test_new_entry_is_published_to_organiser_and_invited_users_only(crm: Store) -> None:
    entry = add(crm, attendees=("bob", "carol", "hank@globex.example", "x@elsewhere.example"))
    state = snapshot(crm)
    assert live(state) == {("alice", "meeting", entry), ("bob", "invitations", entry)}
    assert state[("alice", "meeting", entry)][0] == 1
    alice_text = state[("alice", "meeting", entry)][2]
    assert "ATTENDEE" in alice_text and "CN=Hank Scorpio" in alice_text


def test_taking_a_user_off_an_entry_takes_it_out_of_their_invitations(crm: Store) -> None:
    entry = add(crm, attendees=("bob",))
    assert ("bob", "invitations", entry) in live(snapshot(crm))
    with crm.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, entry),
                     EntryEdit(attendees=("hank@globex.example",)))
    state = snapshot(crm)
    assert live(state) == {("alice", "meeting", entry)}
    assert state[("bob", "invitations", entry)][1]  # a tombstone: Bob's client drops it
    assert "CN=Hank Scorpio" in state[("alice", "meeting", entry)][2]


def test_editing_an_entry_republishes_exactly_its_calendars(crm: Store) -> None:
    entry = add(crm, attendees=("bob",))
    other = add(crm, title="Unrelated", organizer="bob")
    before = snapshot(crm)
    with crm.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, entry), EntryEdit(title="New price"))
    after = snapshot(crm)
    assert changed(before, after) == {("alice", "meeting", entry), ("bob", "invitations", entry)}
    assert after[("alice", "meeting", entry)][0] > before[("alice", "meeting", entry)][0]
    assert "SUMMARY:New price" in after[("bob", "invitations", entry)][2]
    assert after[("bob", "meeting", other)] == before[("bob", "meeting", other)]


def test_changing_type_moves_the_item_and_leaves_a_tombstone(crm: Store) -> None:
    entry = add(crm, attendees=("bob",))
    before = snapshot(crm)
    with crm.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, entry), EntryEdit(type_name="Call"))
    after = snapshot(crm)
    assert after[("alice", "meeting", entry)][1] is True  # tombstone
    assert ("alice", "call", entry) in live(after)
    # The invitation shows the same bytes wherever the organiser files it: untouched.
    assert after[("bob", "invitations", entry)] == before[("bob", "invitations", entry)]


def test_deleting_an_entry_tombstones_it_everywhere(crm: Store) -> None:
    entry = add(crm, attendees=("bob",))
    with crm.transaction() as session:
        delete_entry(session, session.get_one(DiaryEntry, entry))
    state = snapshot(crm)
    assert live(state) == set()
    assert {key for key, value in state.items() if value[1]} == {
        ("alice", "meeting", entry), ("bob", "invitations", entry)}


def test_type_syncable_flag_withdraws_and_restores_its_items(crm: Store) -> None:
    meeting = add(crm, attendees=("bob",))
    call = add(crm, type_name="Call")
    for syncable, expected in [
        (False, {("alice", "call", call)}),
        (True, {("alice", "call", call), ("alice", "meeting", meeting),
                ("bob", "invitations", meeting)}),
    ]:
        with crm.transaction() as session:
            diary_type = get_type(session, "Meeting")
            assert update_type(session, diary_type, syncable=syncable)
            publish_type(session, diary_type)
        assert live(snapshot(crm)) == expected
    internal = add(crm, type_name="Internal")
    assert ("alice", "internal", internal) not in snapshot(crm)


def test_user_diary_sync_off_withdraws_only_that_users_items(crm: Store) -> None:
    entry = add(crm, attendees=("bob",))
    own = add(crm, organizer="bob", title="Bob's call")
    with crm.transaction() as session:
        bob = get_user(session, "bob")
        assert update_user(session, bob, UserChanges(diary_sync=False))
        publish_user(session, bob)
    assert live(snapshot(crm)) == {("alice", "meeting", entry)}
    with crm.transaction() as session:
        bob = get_user(session, "bob")
        update_user(session, bob, UserChanges(diary_sync=True))
        publish_user(session, bob)
    assert live(snapshot(crm)) == {
        ("alice", "meeting", entry), ("bob", "invitations", entry), ("bob", "meeting", own)}


def test_profile_records_related_keeps_only_entries_with_invitees(crm: Store) -> None:
    related = add(crm, attendees=("hank@globex.example",))
    alone = add(crm, title="Prep")
    with crm.transaction() as session:
        alice = get_user(session, "alice")
        update_profile(session, alice, ProfileChanges(records="related"))
        publish_user(session, alice)
    assert live(snapshot(crm)) == {("alice", "meeting", related)}
    assert snapshot(crm)[("alice", "meeting", alone)][1] is True


def test_profile_without_invitees_publishes_no_attendee_lines(crm: Store) -> None:
    entry = add(crm, attendees=("bob", "hank@globex.example"))
    with crm.transaction() as session:
        bob = get_user(session, "bob")
        update_profile(session, bob, ProfileChanges(sync_invitees=False))
        publish_user(session, bob)
    state = snapshot(crm)
    assert "ATTENDEE" not in state[("bob", "invitations", entry)][2]
    assert "ATTENDEE" in state[("alice", "meeting", entry)][2]


def test_global_profile_calendar_to_crm_publishes_only_calendar_made_entries(
    crm: Store,
) -> None:
    add(crm)
    with crm.transaction() as session:
        update_profile(session, None, ProfileChanges(direction="calendar_to_crm"))
        publish_all_users(session)
    assert live(snapshot(crm)) == set()


def test_paused_profile_freezes_the_users_calendars_until_resumed(crm: Store) -> None:
    entry = add(crm, attendees=("bob",))
    with crm.transaction() as session:
        update_profile(session, get_user(session, "bob"), ProfileChanges(paused=True))
    frozen = snapshot(crm)[("bob", "invitations", entry)]
    with crm.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, entry), EntryEdit(title="Moved"))
    assert snapshot(crm)[("bob", "invitations", entry)] == frozen
    with crm.transaction() as session:
        bob = get_user(session, "bob")
        update_profile(session, bob, ProfileChanges(paused=False))
        publish_user(session, bob)
    assert "SUMMARY:Moved" in snapshot(crm)[("bob", "invitations", entry)][2]


def test_invitations_never_carry_the_organisers_alarms(crm: Store) -> None:
    entry = add(crm, attendees=("bob",))
    with crm.transaction() as session:
        row = session.get_one(DiaryEntry, entry)
        row.ical = row.ical.replace(
            "END:VEVENT",
            "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT")
        from gateway.publication import publish_entry
        publish_entry(session, row)
    state = snapshot(crm)
    assert "VALARM" in state[("alice", "meeting", entry)][2]
    assert "VALARM" not in state[("bob", "invitations", entry)][2]


def test_revisions_increase_per_calendar(crm: Store) -> None:
    first = add(crm)
    second = add(crm, title="Second")
    state = snapshot(crm)
    assert state[("alice", "meeting", first)][0] == 1
    assert state[("alice", "meeting", second)][0] == 2
    with crm.reading() as session:
        calendar = session.scalar(select(Calendar).where(Calendar.slug == "meeting"))
        assert calendar is not None and calendar.revision == 2
