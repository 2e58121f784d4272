"""Attendees' replies (iMIP REPLY) back into the CRM (issue 12, item 4): sent with smtplib to
the rep's BCC address and put in the rep's real Dovecot mailbox, on SQLite and PostgreSQL.

What a rep sees is checked where they see it: the participant's PARTSTAT, the iCalendar
their calendars serve (the publication rows), ``entry.updated`` in the webhook outbox, the
decision of the mail, and the mail logged as an activity like any other.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import pytest_twisted
from imap_world import HANK, PASSWORDS, connect_mailbox, make_config, poll, seed_crm
from imip import imip_reply
from peers.bcc_listener import (
    BUYER,
    LOG,
    REP,
    REP2,
    Running,
    World,
    running_listener,
    send,
    settle,
    write_config,
)
from peers.dovecot import DovecotServer, dovecot_fixture
from sqlalchemy import func, select

from gateway import calendars, client_writes
from gateway.clock import utcnow
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, EntryEdit, create_entry, update_entry
from gateway.models import (
    Activity,
    Calendar,
    DiaryEntry,
    InboundMessage,
    InvitationReply,
    PublishedItem,
    WebhookEvent,
)
from gateway.secrets import SecretBox
from gateway.users import UserChanges, get_user, update_user
from gateway.webhooks import add_endpoint

dovecot = dovecot_fixture(tls=False, users=PASSWORDS)
START = (utcnow() + timedelta(days=5)).replace(hour=10, minute=0, second=0, microsecond=0)


def meeting(store: Store, organizer: str, *attendees: str) -> tuple[int, str]:
    """A Meeting ``organizer`` made with ``attendees``; every CRM user among them syncs the
    diary. A webhook endpoint listens to ``entry.*``."""
    with store.transaction() as session:
        for name in (organizer, *(a for a in attendees if "@" not in a)):
            update_user(session, get_user(session, name), UserChanges(diary_sync=True))
        create_type(session, "Meeting")
        entry = create_entry(session, EntryDraft(
            type_name="Meeting", title="Pricing", start=START, end=START + timedelta(hours=1),
            organizer=organizer, attendees=attendees))
        add_endpoint(session, "https://crm.example/hooks", ["entry.*"],
                     box=SecretBox("the test suite's secret key"))
        return entry.id, entry.uid


def state(store: Store, entry_id: int) -> tuple[dict[str, str], int, str]:
    """(PARTSTAT by address, revision, stored iCalendar) of the entry."""
    with store.reading() as session:
        entry = session.get(DiaryEntry, entry_id)
        assert entry is not None
        return ({p.email: p.partstat for p in entry.participants}, entry.revision, entry.ical)


def served(store: Store, entry_id: int, username: str) -> str:
    """What the user's calendar serves of the entry (what CalDAV clients get)."""
    with store.reading() as session:
        user = get_user(session, username)
        return session.scalars(
            select(PublishedItem.ical).join(Calendar, Calendar.id == PublishedItem.calendar_id)
            .where(PublishedItem.entry_id == entry_id, Calendar.user_id == user.id,
                   PublishedItem.deleted.is_(False))).one()


def replies(store: Store) -> list[tuple[str, str, str]]:
    with store.reading() as session:
        return [(r.attendee, r.outcome, r.reason) for r in session.scalars(
            select(InvitationReply).order_by(InvitationReply.id))]


def updated_events(store: Store, entry_id: int) -> list[str]:
    with store.reading() as session:
        return [e.payload["data"]["origin"] for e in session.scalars(
            select(WebhookEvent).where(WebhookEvent.type == "entry.updated"))
            if e.payload["data"]["id"] == entry_id]


def test_a_reply_sent_to_the_bcc_address_updates_the_partstat(
        smtp: Running, world: World, store: Store) -> None:
    entry_id, uid = meeting(store, "rep", BUYER, "rep2")
    raw = imip_reply(BUYER, REP, uid, "ACCEPTED", message_id="yes-1@customer.example")
    assert send(smtp.port, raw, mail_from=BUYER, rcpt_tos=[world.rep]).final == 250
    settle(store)
    partstats, revision, ical = state(store, entry_id)
    assert partstats == {BUYER: "ACCEPTED", REP2: "NEEDS-ACTION"}
    assert f"PARTSTAT=ACCEPTED:mailto:{BUYER}" in ical and revision == 2
    # The rep's calendar and the other attendee's invitations calendar serve the answer.
    for username in ("rep", "rep2"):
        assert f"PARTSTAT=ACCEPTED:mailto:{BUYER}" in served(store, entry_id, username)
    assert updated_events(store, entry_id) == ["mail"]
    assert replies(store) == [(BUYER, "applied", f"{BUYER} ACCEPTED on entry {entry_id}")]
    with store.reading() as session:
        decision = session.scalars(select(InboundMessage.decision)).one()
        assert decision is not None and decision.startswith("logged as activity")
        assert f"reply applied: {BUYER} ACCEPTED on entry {entry_id}" in decision
        assert session.scalars(select(Activity.subject)).all() == ["Accepted: Pricing"]
    # The same mail again (a retry, a second copy) changes nothing more.
    assert send(smtp.port, raw, mail_from=BUYER, rcpt_tos=[world.rep]).final == 250
    settle(store)
    assert state(store, entry_id)[1] == revision and len(replies(store)) == 1


def test_stale_and_mismatched_replies_change_nothing_and_say_why(
        smtp: Running, world: World, store: Store) -> None:
    entry_id, uid = meeting(store, "rep", BUYER)
    with store.transaction() as session:
        entry = session.get(DiaryEntry, entry_id)
        assert entry is not None
        update_entry(session, entry, EntryEdit(start=START + timedelta(hours=2)))  # SEQUENCE 1
    before = state(store, entry_id)
    shown = served(store, entry_id, "rep")
    cases = [
        (imip_reply(BUYER, REP, uid, "DECLINED", sequence=0, message_id="old@customer.example"),
         BUYER, f"SEQUENCE 0 is older than entry {entry_id}'s 1"),
        (imip_reply(BUYER, REP, "no-such-uid@elsewhere", "ACCEPTED", sequence=1,
                    message_id="uid@customer.example"),
         BUYER, "rep has no entry with the UID 'no-such-uid@elsewhere'"),
        (imip_reply("other@customer.example", REP, uid, "ACCEPTED", sequence=1,
                    message_id="who@customer.example"),
         "other@customer.example", f"other@customer.example is not a participant of entry "
                                   f"{entry_id}"),
        (imip_reply("other@customer.example", REP, uid, "DECLINED", sequence=1,
                    attendee=BUYER, message_id="forged@customer.example"),
         BUYER, "sent by other@customer.example, not by the attendee"),
    ]
    for raw, _, _ in cases:
        sender = "other@customer.example" if b"From: other@" in raw else BUYER
        assert send(smtp.port, raw, mail_from=sender, rcpt_tos=[world.rep]).final == 250
    settle(store)
    assert state(store, entry_id) == before
    assert served(store, entry_id, "rep") == shown
    assert updated_events(store, entry_id) == ["crm"]  # the move only
    assert sorted(replies(store)) == sorted((who, "ignored", why) for _, who, why in cases)
    with store.reading() as session:
        decisions = session.scalars(select(InboundMessage.decision)).all()
        assert all(d is not None and "reply ignored: " in d for d in decisions), decisions
        assert session.scalar(select(func.count()).select_from(Activity)) == len(cases)


@pytest.mark.dovecot
@pytest_twisted.ensureDeferred
async def test_a_reply_in_the_reps_mailbox_updates_the_partstat(
        dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot)
    entry_id, uid = meeting(store, "alice", HANK)
    raw = imip_reply(HANK, "alice@acme.example", uid, "TENTATIVE",
                     message_id="maybe@globex.example")
    dovecot.append("alice", "INBOX", raw)
    stale = imip_reply(HANK, "alice@acme.example", uid, "DECLINED", sequence=-1,
                       message_id="older@globex.example")
    dovecot.append("alice", "INBOX", stale)

    [report] = await poll(make_config(database_url, tmp_path), store)

    assert report.error is None
    partstats, revision, _ = state(store, entry_id)
    assert partstats == {HANK: "TENTATIVE"} and revision == 2
    assert f"PARTSTAT=TENTATIVE:mailto:{HANK}" in served(store, entry_id, "alice")
    assert updated_events(store, entry_id) == ["mail"]
    assert replies(store) == [
        (HANK, "applied", f"{HANK} TENTATIVE on entry {entry_id}"),
        (HANK, "ignored", f"SEQUENCE -1 is older than entry {entry_id}'s 0")]
    with store.reading() as session:
        assert sorted(session.scalars(select(Activity.source))) == ["imap", "imap"]
    # Polled again: nothing new, nothing applied twice.
    [again] = await poll(make_config(database_url, tmp_path), store)
    assert again.error is None and state(store, entry_id)[1] == revision
    assert len(replies(store)) == 2


OUTSIDE_INVITATION = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Customer//EN\r
BEGIN:VEVENT\r
UID:visit@customer.example\r
DTSTAMP:20261201T090000Z\r
DTSTART:{start}\r
DTEND:{end}\r
SEQUENCE:3\r
SUMMARY:Visit at Customer Ltd\r
ORGANIZER:mailto:{organizer}\r
ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{rep}\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_the_reps_own_reply_bccd_to_the_shared_address_updates_their_copy(
        tmp_path: Path, database_url: str, store: Store, world: World) -> None:
    stamp = "%Y%m%dT%H%M%SZ"
    with store.transaction() as session:
        create_type(session, "Meeting")
        rep = get_user(session, "rep")
        update_user(session, rep, UserChanges(diary_sync=True))
        view = calendars.user_calendar(session, rep, "meeting")
        assert view is not None
        client_writes.put_event(session, rep, view, "visit.ics", OUTSIDE_INVITATION.format(
            start=START.strftime(stamp), end=(START + timedelta(hours=1)).strftime(stamp),
            organizer=BUYER, rep=REP))
        entry_id = session.scalars(select(DiaryEntry.id)).one()
    config = write_config(tmp_path, database_url, trusted_networks=["127.0.0.0/8"],
                          sender_auth=["trusted_networks"])
    answer = imip_reply(REP, BUYER, "visit@customer.example", "DECLINED", sequence=3,
                        message_id="declined@crm.example")
    with running_listener(config, store) as smtp:
        assert send(smtp.port, answer, mail_from=REP, rcpt_tos=[LOG]).final == 250
        settle(store)
    partstats, revision, ical = state(store, entry_id)
    assert partstats == {REP: "DECLINED"} and revision == 2
    assert f"PARTSTAT=DECLINED:mailto:{REP}" in served(store, entry_id, "rep")
    assert "SEQUENCE:3" in ical  # an answer is not a new version of the event
    assert replies(store) == [(REP, "applied", f"{REP} DECLINED on entry {entry_id}")]
    with store.reading() as session:
        assert session.scalars(select(Activity.subject)).all() == ["Declined: Pricing"]
