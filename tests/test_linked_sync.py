"""Sync passes against real CalDAV servers: push, fetch per direction, conflicts, loop guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from linked_world import World, event, replace_title
from sqlalchemy import select

from gateway.entries import EntryDraft, create_entry
from gateway.models import DiaryEntry, PublishedItem
from gateway.users import UserChanges, create_user, update_user


def _shown(world: World, entry_id: int) -> str:
    with world.store.reading() as session:
        return session.scalar(select(PublishedItem.ical).where(
            PublishedItem.entry_id == entry_id, PublishedItem.deleted.is_(False)))


def _lines(text: str) -> list[str]:
    """The content lines, unfolded, in order-free form: Radicale re-serialises in its own
    property order, Xandikos quotes parameter values that hold a space."""
    unfolded = text.replace("\r\n ", "").replace("\r\n", "\n").replace('"', "")
    return sorted(unfolded.strip().split("\n"))


def test_crm_entries_their_edits_and_deletions_are_pushed(world: World) -> None:
    assert world.link()[0] == 0
    first = world.entry("Kick-off")
    second = world.entry("Pricing call", hours=3)
    assert world.counts()["pushed"] == 2
    remote = world.remote("crm")
    assert sorted(href.rsplit("/", 1)[1] for href in remote) == sorted(
        f"crm-{i}.ics" for i in (first, second))  # a stable href per entry
    by_title = {text.split("SUMMARY:")[1].split("\r\n")[0]: text for _, text in remote.values()}
    # Rendered as the gateway's own CalDAV serves it.
    assert _lines(by_title["Kick-off"]) == _lines(_shown(world, first))
    world.edit(first, "Kick-off (moved room)")
    world.delete(second)
    counts = world.counts()
    assert (counts["pushed"], counts["deleted"]) == (1, 1)
    assert world.remote_titles("crm") == ["Kick-off (moved room)"]


@pytest.mark.parametrize("direction", ["two_way", "calendar_to_crm", "crm_to_calendar"])
def test_events_made_and_edited_on_the_account_come_in_per_direction(
    world: World, direction: str
) -> None:
    world.direction(direction)
    assert world.link()[0] == 0
    etag = world.put_remote("personal", "dentist.ics", event("dentist-1", "Dentist"))
    counts = world.counts()
    if direction == "crm_to_calendar":
        assert (counts["fetched"], counts["busy"]) == (0, 1)
        assert "Dentist" not in world.entries()
        out = world.run("calendars", "show", world.username)[1]
        assert "0 fetched, 1 busy" in out
        return
    assert counts["fetched"] == 1
    entry = world.entries()["Dentist"]
    assert entry.origin == "calendar" and entry.uid == "dentist-1"
    text = world.remote("personal")[next(iter(world.remote("personal")))][1]
    world.put_remote("personal", "dentist.ics", replace_title(text, "Dentist (rebooked)"), etag)
    assert world.counts()["fetched"] == 1
    assert "Dentist (rebooked)" in world.entries()
    world.delete_remote(next(iter(world.remote("personal"))))
    assert world.counts()["removed"] == 1
    assert not world.entries()
    if direction == "calendar_to_crm":
        world.entry("CRM only")
        assert world.counts()["pushed"] == 0  # this direction never writes to the account
        assert world.remote_titles("crm") == []


def _pushed_then_edited_on_both_sides(world: World, remote_later: bool) -> tuple[int, str]:
    assert world.link()[0] == 0
    entry_id = world.entry("Board meeting")
    world.sync()
    href, (etag, text) = next(iter(world.remote("crm").items()))
    world.edit(entry_id, "Board meeting (CRM)")
    moment = datetime.now(UTC) + timedelta(hours=1 if remote_later else -1)
    world.put_remote("crm", href.rsplit("/", 1)[1],
                     replace_title(text, "Board meeting (phone)", moment), etag)
    return entry_id, href


@pytest.mark.parametrize(("direction", "remote_later", "winner", "loser"), [
    ("two_way", True, "Board meeting (phone)", "Board meeting (CRM)"),
    ("two_way", False, "Board meeting (CRM)", "Board meeting (phone)"),
    ("crm_to_calendar", True, "Board meeting (CRM)", "Board meeting (phone)"),
])
def test_an_edit_on_both_sides_is_resolved_per_direction_and_the_loser_kept(
    world: World, direction: str, remote_later: bool, winner: str, loser: str
) -> None:
    world.direction(direction)
    entry_id, _ = _pushed_then_edited_on_both_sides(world, remote_later)
    out = world.sync()
    assert "conflict" in out
    assert world.remote_titles("crm") == [winner]
    with world.store.reading() as session:
        assert session.get(DiaryEntry, entry_id).title == winner
    kept = world.conflicts()
    assert len(kept) == 1 and f"SUMMARY:{loser}" in kept[0].conflict_ical
    show = world.run("calendars", "show", world.username)[1]
    assert "1 conflicts" in show and "kept here" in show
    # Settled: the next passes change nothing.
    assert world.counts() == dict(pushed=0, deleted=0, fetched=0, removed=0, busy=0)


def test_calendar_to_crm_lets_the_account_win_and_keeps_the_crm_edit(world: World) -> None:
    world.direction("calendar_to_crm")
    assert world.link()[0] == 0
    etag = world.put_remote("personal", "visit.ics", event("visit-1", "Site visit"))
    world.sync()
    entry = world.entries()["Site visit"]
    world.edit(entry.id, "Site visit (CRM)")
    text = next(iter(world.remote("personal").values()))[1]
    world.put_remote("personal", "visit.ics", replace_title(text, "Site visit (phone)"), etag)
    assert "conflict" in world.sync()
    assert "Site visit (phone)" in world.entries()
    kept = world.conflicts()
    assert len(kept) == 1 and "SUMMARY:Site visit (CRM)" in kept[0].conflict_ical


def test_no_ping_pong_after_ten_idle_passes(world: World) -> None:
    assert world.link()[0] == 0
    for n in range(3):
        world.entry(f"Meeting {n}", hours=n)
    world.put_remote("personal", "lunch.ics", event("lunch-1", "Lunch"))
    world.sync()
    before_remote = {**world.remote("crm"), **world.remote("personal")}
    with world.store.reading() as session:
        revisions = dict(session.execute(select(DiaryEntry.id, DiaryEntry.revision)).all())
    world.sync()  # sees its own writes come back in the listing, and takes none of them
    for _ in range(10):
        out = world.sync()
        # One sync-collection REPORT per calendar, nothing else.
        assert "pushed 0, deleted 0 on the account; fetched 0, removed 0, busy 0 into the " \
            "CRM; 2 requests" in out
    assert {**world.remote("crm"), **world.remote("personal")} == before_remote
    with world.store.reading() as session:
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


def test_fetched_events_follow_the_crm_rules(world: World) -> None:
    assert world.link()[0] == 0
    world.put_remote("personal", "weekly.ics", RECURRING_WITH_OUTSIDER.format(email=world.email))
    world.put_remote("personal", "invited.ics", INVITED.format(email=world.email))
    assert world.counts()["fetched"] == 2
    entries = world.entries()
    ids = (entries["Weekly sync"].id, entries["Their demo"].id)
    with world.store.reading() as session:
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
        code, _, err = world.run("entries", "set", str(entry_id), "--title", "Changed")
        assert code == 2 and "read-only" in err


def test_an_event_the_rep_only_attends_cannot_be_changed_from_the_account(
    world: World
) -> None:
    with world.store.transaction() as session:
        boss = create_user(session, f"boss{world.username}", f"boss.{world.email}", name="Boss")
        update_user(session, boss, UserChanges(diary_sync=True))
        create_entry(session, EntryDraft(
            type_name="Meeting", title="Boss's review", organizer=boss.username,
            attendees=(world.username,), start=datetime(2026, 12, 18, 9, tzinfo=UTC),
            end=datetime(2026, 12, 18, 10, tzinfo=UTC)))
    assert world.link()[0] == 0
    assert world.counts()["pushed"] == 1  # from the rep's Invitations calendar
    href, (etag, text) = next(iter(world.remote("crm").items()))
    world.put_remote("crm", href.rsplit("/", 1)[1], replace_title(text, "Renamed"), etag)
    out = world.sync()
    assert "read-only in the CRM" in out
    assert world.remote_titles("crm") == ["Boss's review"]
    kept = world.conflicts()
    assert len(kept) == 1 and "SUMMARY:Renamed" in kept[0].conflict_ical
