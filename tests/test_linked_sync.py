"""Sync passes against real CalDAV servers: push, fetch per direction, conflicts, loop guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from linked_world import World, event, replace_title
from sqlalchemy import select

from gateway.diary_types import create_type
from gateway.entries import EntryDraft, TaskDraft, create_entry
from gateway.models import DiaryEntry, DiaryType, PublishedItem
from gateway.users import UserChanges, create_user, update_user


def _shown(linked: World, entry_id: int) -> str:
    with linked.store.reading() as session:
        return session.scalar(select(PublishedItem.ical).where(
            PublishedItem.entry_id == entry_id, PublishedItem.deleted.is_(False)))


def _lines(text: str) -> list[str]:
    """The content lines, unfolded, in order-free form: Radicale re-serialises in its own
    property order, Xandikos quotes parameter values that hold a space."""
    unfolded = text.replace("\r\n ", "").replace("\r\n", "\n").replace('"', "")
    return sorted(unfolded.strip().split("\n"))


def test_crm_entries_their_edits_and_deletions_are_pushed(linked: World) -> None:
    assert linked.link()[0] == 0
    first = linked.entry("Kick-off")
    second = linked.entry("Pricing call", hours=3)
    assert linked.counts()["pushed"] == 2
    remote = linked.remote("crm")
    assert sorted(href.rsplit("/", 1)[1] for href in remote) == sorted(
        f"crm-{i}.ics" for i in (first, second))  # a stable href per entry
    by_title = {text.split("SUMMARY:")[1].split("\r\n")[0]: text for _, text in remote.values()}
    # Rendered as the gateway's own CalDAV serves it.
    assert _lines(by_title["Kick-off"]) == _lines(_shown(linked, first))
    linked.edit(first, "Kick-off (moved room)")
    linked.delete(second)
    counts = linked.counts()
    assert (counts["pushed"], counts["deleted"]) == (1, 1)
    assert linked.remote_titles("crm") == ["Kick-off (moved room)"]
    # Tasks stay in the rep's task lists: the account's calendar gets the diary's events.
    with linked.store.transaction() as session:
        if session.scalar(select(DiaryType).where(DiaryType.name == "To do")) is None:
            create_type(session, "To do", kind="task")
        create_entry(session, EntryDraft(type_name="To do", title="Send the quote", start=None,
                                         end=None, organizer=linked.username,
                                         task=TaskDraft(due=datetime(2026, 12, 20, tzinfo=UTC))))
    assert linked.counts()["pushed"] == 0
    assert linked.remote_titles("crm") == ["Kick-off (moved room)"]


@pytest.mark.parametrize("direction", ["two_way", "calendar_to_crm", "crm_to_calendar"])
def test_events_made_and_edited_on_the_account_come_in_per_direction(
    linked: World, direction: str
) -> None:
    linked.direction(direction)
    assert linked.link()[0] == 0
    etag = linked.put_remote("personal", "dentist.ics", event("dentist-1", "Dentist"))
    counts = linked.counts()
    if direction == "crm_to_calendar":
        assert (counts["fetched"], counts["busy"]) == (0, 1)
        assert "Dentist" not in linked.entries()
        out = linked.run("calendars", "show", linked.username)[1]
        assert "0 fetched, 1 busy" in out
        return
    assert counts["fetched"] == 1
    entry = linked.entries()["Dentist"]
    assert entry.origin == "calendar" and entry.uid == "dentist-1"
    text = linked.remote("personal")[next(iter(linked.remote("personal")))][1]
    linked.put_remote("personal", "dentist.ics", replace_title(text, "Dentist (rebooked)"), etag)
    assert linked.counts()["fetched"] == 1
    assert "Dentist (rebooked)" in linked.entries()
    linked.delete_remote(next(iter(linked.remote("personal"))))
    assert linked.counts()["removed"] == 1
    assert not linked.entries()
    if direction == "calendar_to_crm":
        linked.entry("CRM only")
        assert linked.counts()["pushed"] == 0  # this direction never writes to the account
        assert linked.remote_titles("crm") == []


def _pushed_then_edited_on_both_sides(linked: World, remote_later: bool) -> tuple[int, str]:
    assert linked.link()[0] == 0
    entry_id = linked.entry("Board meeting")
    linked.sync()
    href, (etag, text) = next(iter(linked.remote("crm").items()))
    linked.edit(entry_id, "Board meeting (CRM)")
    moment = datetime.now(UTC) + timedelta(hours=1 if remote_later else -1)
    linked.put_remote("crm", href.rsplit("/", 1)[1],
                     replace_title(text, "Board meeting (phone)", moment), etag)
    return entry_id, href


@pytest.mark.parametrize(("direction", "remote_later", "winner", "loser"), [
    ("two_way", True, "Board meeting (phone)", "Board meeting (CRM)"),
    ("two_way", False, "Board meeting (CRM)", "Board meeting (phone)"),
    ("crm_to_calendar", True, "Board meeting (CRM)", "Board meeting (phone)"),
])
def test_an_edit_on_both_sides_is_resolved_per_direction_and_the_loser_kept(
    linked: World, direction: str, remote_later: bool, winner: str, loser: str
) -> None:
    linked.direction(direction)
    entry_id, _ = _pushed_then_edited_on_both_sides(linked, remote_later)
    out = linked.sync()
    assert "conflict" in out
    assert linked.remote_titles("crm") == [winner]
    with linked.store.reading() as session:
        assert session.get(DiaryEntry, entry_id).title == winner
    kept = linked.conflicts()
    assert len(kept) == 1 and f"SUMMARY:{loser}" in kept[0].conflict_ical
    show = linked.run("calendars", "show", linked.username)[1]
    assert "1 conflicts" in show and "kept here" in show
    # Settled: the next passes change nothing.
    assert linked.counts() == dict(pushed=0, deleted=0, fetched=0, removed=0, busy=0)


def test_calendar_to_crm_lets_the_account_win_and_keeps_the_crm_edit(linked: World) -> None:
    linked.direction("calendar_to_crm")
    assert linked.link()[0] == 0
    etag = linked.put_remote("personal", "visit.ics", event("visit-1", "Site visit"))
    linked.sync()
    entry = linked.entries()["Site visit"]
    linked.edit(entry.id, "Site visit (CRM)")
    text = next(iter(linked.remote("personal").values()))[1]
    linked.put_remote("personal", "visit.ics", replace_title(text, "Site visit (phone)"), etag)
    assert "conflict" in linked.sync()
    assert "Site visit (phone)" in linked.entries()
    kept = linked.conflicts()
    assert len(kept) == 1 and "SUMMARY:Site visit (CRM)" in kept[0].conflict_ical


def test_no_ping_pong_after_ten_idle_passes(linked: World) -> None:
    assert linked.link()[0] == 0
    for n in range(3):
        linked.entry(f"Meeting {n}", hours=n)
    linked.put_remote("personal", "lunch.ics", event("lunch-1", "Lunch"))
    linked.sync()
    before_remote = {**linked.remote("crm"), **linked.remote("personal")}
    with linked.store.reading() as session:
        revisions = dict(session.execute(select(DiaryEntry.id, DiaryEntry.revision)).all())
    linked.sync()  # sees its own writes come back in the listing, and takes none of them
    for _ in range(10):
        out = linked.sync()
        # One sync-collection REPORT per calendar, nothing else.
        assert "pushed 0, deleted 0 on the account; fetched 0, removed 0, busy 0 into the " \
            "CRM; 2 requests" in out
    assert {**linked.remote("crm"), **linked.remote("personal")} == before_remote
    with linked.store.reading() as session:
        assert dict(session.execute(select(DiaryEntry.id, DiaryEntry.revision)).all()) \
            == revisions


RECURRING_WITH_OUTSIDER = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Rep's phone//EN\r\nBEGIN:VEVENT\r\n"
    "UID:weekly-1\r\nDTSTAMP:20261201T090000Z\r\nDTSTART:20261216T080000Z\r\n"
    "DTEND:20261216T083000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Weekly sync\r\n"
    "ORGANIZER:mailto:{email}\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:Client@Customer.example\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
INVITED = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Rep's phone//EN\r\nBEGIN:VEVENT\r\n"
    "UID:invited-1\r\nDTSTAMP:20261201T090000Z\r\nDTSTART:20261217T080000Z\r\n"
    "DTEND:20261217T083000Z\r\nSUMMARY:Their demo\r\nORGANIZER:mailto:boss@other.example\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{email}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_fetched_events_follow_the_crm_rules(linked: World) -> None:
    assert linked.link()[0] == 0
    linked.put_remote("personal", "weekly.ics", RECURRING_WITH_OUTSIDER.format(email=linked.email))
    linked.put_remote("personal", "invited.ics", INVITED.format(email=linked.email))
    assert linked.counts()["fetched"] == 2
    entries = linked.entries()
    ids = (entries["Weekly sync"].id, entries["Their demo"].id)
    with linked.store.reading() as session:
        weekly = session.get(DiaryEntry, ids[0])
        invited = session.get(DiaryEntry, ids[1])
        assert weekly.rrule == "FREQ=WEEKLY;COUNT=3"
        # External participants by email; an event not accepted yet is still recorded.
        assert [(p.email, p.contact_id, p.user_id) for p in weekly.participants] == \
            [("client@customer.example", None, None)]
        assert invited.organizer_user_id is None and invited.organizer_email == \
            "boss@other.example"
        assert [p.partstat for p in invited.participants] == ["NEEDS-ACTION"]
    # Read-only on the CRM side: recurring, and organised outside the CRM.
    for entry_id in ids:
        code, _, err = linked.run("entries", "set", str(entry_id), "--title", "Changed")
        assert code == 2 and "read-only" in err


def test_an_event_the_rep_only_attends_cannot_be_changed_from_the_account(
    linked: World
) -> None:
    with linked.store.transaction() as session:
        boss = create_user(session, f"boss{linked.username}", f"boss.{linked.email}", name="Boss")
        update_user(session, boss, UserChanges(diary_sync=True))
        create_entry(session, EntryDraft(
            type_name="Meeting", title="Boss's review", organizer=boss.username,
            attendees=(linked.username,), start=datetime(2026, 12, 18, 9, tzinfo=UTC),
            end=datetime(2026, 12, 18, 10, tzinfo=UTC)))
    assert linked.link()[0] == 0
    assert linked.counts()["pushed"] == 1  # from the rep's Invitations calendar
    href, (etag, text) = next(iter(linked.remote("crm").items()))
    linked.put_remote("crm", href.rsplit("/", 1)[1], replace_title(text, "Renamed"), etag)
    out = linked.sync()
    assert "read-only in the CRM" in out
    assert linked.remote_titles("crm") == ["Boss's review"]
    kept = linked.conflicts()
    assert len(kept) == 1 and "SUMMARY:Renamed" in kept[0].conflict_ical
