"""Diary entries from the CRM side: read-only rules, tombstones, participants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.contacts import create_contact
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import (
    EntryDraft,
    EntryEdit,
    create_entry,
    delete_entry,
    get_entry,
    list_entries,
    update_entry,
)
from gateway.errors import Invalid, NotFound, ReadOnly
from gateway.ical import parse_event
from gateway.models import DiaryEntry
from gateway.users import UserChanges, create_user, update_user

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def crm(store: Store) -> Store:
    with store.transaction() as session:
        create_type(session, "Meeting")
        create_contact(session, "hank@globex.example", name="Hank Scorpio")
        alice = create_user(session, "alice", "alice@acme.example", name="Alice Martin")
        update_user(session, alice, UserChanges(diary_sync=True))
        create_user(session, "bob", "bob@acme.example", name="Bob")
    return store


def draft(**fields: object) -> EntryDraft:
    values: dict[str, object] = {
        "type_name": "Meeting", "title": "Pricing", "start": START,
        "end": START + timedelta(hours=1), "organizer": "alice",
    }
    values.update(fields)
    return EntryDraft(**values)  # type: ignore[arg-type]


def test_participants_resolve_to_users_contacts_and_external_emails(crm: Store) -> None:
    with crm.transaction() as session:
        entry = create_entry(session, draft(
            attendees=("bob", "HANK@globex.example", "someone@else.example", "alice")))
        kinds = {(p.email, p.user_id is not None, p.contact_id is not None)
                 for p in entry.participants}
        text = entry.ical
    # The organiser is not their own attendee.
    assert kinds == {("bob@acme.example", True, False), ("hank@globex.example", False, True),
                     ("someone@else.example", False, False)}
    data = parse_event(text)
    assert data.organizer_email == "alice@acme.example"
    assert data.organizer_name == "Alice Martin"
    names = {a.email: a.name for a in data.attendees}
    assert names == {"bob@acme.example": "Bob", "hank@globex.example": "Hank Scorpio",
                     "someone@else.example": None}


def test_recurring_entries_are_read_only_on_the_crm_side(crm: Store) -> None:
    with crm.transaction() as session:
        entry_id = create_entry(session, draft(rrule="FREQ=WEEKLY;BYDAY=MO")).id
    for action in ("update", "delete"):
        with pytest.raises(ReadOnly, match="recurring"), crm.transaction() as session:
            entry = get_entry(session, entry_id)
            if action == "update":
                update_entry(session, entry, EntryEdit(title="Changed"))
            else:
                delete_entry(session, entry)
    with crm.reading() as session:
        entry = get_entry(session, entry_id)
        assert entry.title == "Pricing" and entry.span_end_utc is None


def test_entries_organised_outside_the_crm_are_read_only(crm: Store) -> None:
    with crm.transaction() as session:
        entry = create_entry(session, draft())
        # As if a client had stored an invitation organised by a customer.
        entry.organizer_user_id = None
        entry.organizer_email = "hank@globex.example"
        entry.origin = "calendar"
        entry_id = entry.id
    with pytest.raises(ReadOnly, match=r"organised outside the CRM by hank@globex\.example"), \
            crm.transaction() as session:
        update_entry(session, get_entry(session, entry_id), EntryEdit(title="Mine now"))


def test_delete_is_a_tombstone(crm: Store) -> None:
    with crm.transaction() as session:
        entry_id = create_entry(session, draft()).id
    with crm.transaction() as session:
        delete_entry(session, get_entry(session, entry_id))
    with crm.reading() as session:
        with pytest.raises(NotFound):
            get_entry(session, entry_id)
        row = session.get_one(DiaryEntry, entry_id)
        assert row.deleted_at is not None
        assert list_entries(session) == []


def test_crm_edit_patches_the_stored_calendar_object(crm: Store) -> None:
    with crm.transaction() as session:
        entry = create_entry(session, draft(tzid="Europe/Berlin"))
        entry.ical = entry.ical.replace("END:VEVENT", "X-MOZ-LASTACK:20261201T000000Z\r\n"
                                        "END:VEVENT")
        entry_id = entry.id
    with crm.transaction() as session:
        entry = update_entry(session, get_entry(session, entry_id),
                             EntryEdit(start=START + timedelta(days=1)))
        assert entry.start_utc == START + timedelta(days=1)
        assert entry.end_utc == START + timedelta(days=1, hours=1)  # duration kept
        assert entry.sequence == 1
        assert "X-MOZ-LASTACK" in entry.ical


def test_entry_rules_give_clear_errors(crm: Store) -> None:
    cases: list[tuple[EntryDraft, type[Exception], str]] = [
        (draft(type_name="Nope"), NotFound, "no diary type named 'Nope'"),
        (draft(organizer=None), Invalid, "--organizer"),
        (draft(organizer="nobody"), NotFound, "no user named 'nobody'"),
        (draft(end=START - timedelta(hours=1)), Invalid, "before its start"),
        (draft(tzid="Mars/Olympus"), Invalid, "not an IANA time zone"),
        (draft(attendees=("not a user",)), NotFound, "no user named"),
        (draft(title="  "), Invalid, "needs a title"),
    ]
    for value, error, message in cases:
        with pytest.raises(error, match=message), crm.transaction() as session:
            create_entry(session, value)
    with crm.reading() as session:
        assert list_entries(session) == []


def test_automation_entries_have_no_organiser(crm: Store) -> None:
    with crm.transaction() as session:
        entry = create_entry(session, draft(organizer=None, automation=True, attendees=("alice",)))
        assert entry.organizer_user_id is None and entry.owner_user_id is None
        assert parse_event(entry.ical).organizer_email is None


def test_a_crm_edit_changes_place_and_attendees_and_those_who_stay_keep_their_answer(
        crm: Store) -> None:
    with crm.transaction() as session:
        entry = create_entry(session, draft(attendees=("bob", "hank@globex.example"),
                                            location="Room 1", description="Agenda"))
        entry_id = entry.id
        next(p for p in entry.participants if p.email == "bob@acme.example").partstat = \
            "ACCEPTED"
    with crm.transaction() as session:
        entry = get_entry(session, entry_id)
        update_entry(session, entry, EntryEdit(
            location="Room 4", description="", attendees=("bob", "new@initech.example",
                                                          "alice")))
        answers = {p.email: p.partstat for p in entry.participants}
        text = entry.ical
    # Hank was taken off, the new attendee is asked, Bob keeps his answer; the organiser
    # is never her own attendee.
    assert answers == {"bob@acme.example": "ACCEPTED", "new@initech.example": "NEEDS-ACTION"}
    data = parse_event(text)
    assert data.location == "Room 4" and data.description is None
    assert {(a.email, a.partstat) for a in data.attendees} == {
        ("bob@acme.example", "ACCEPTED"), ("new@initech.example", "NEEDS-ACTION")}
    with crm.transaction() as session:
        entry = get_entry(session, entry_id)
        update_entry(session, entry, EntryEdit(attendees=()))
        assert entry.participants == []
        assert "ATTENDEE" not in entry.ical
        with pytest.raises(NotFound):
            update_entry(session, entry, EntryEdit(attendees=("nobody-by-that-name",)))
