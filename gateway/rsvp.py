"""Attendees' answers back into the CRM: iMIP REPLYs found in logged mail (issue 12, item 4).

A reply (a ``text/calendar`` part with ``METHOD:REPLY``, RFC 6047 / RFC 5546 3.2.3) that
arrives in a rep's mail (by the BCC addresses or their polled mailbox) sets that attendee's
PARTSTAT on the rep's entry of the reply's UID: ACCEPTED, DECLINED or TENTATIVE. The
stored iCalendar is patched (``gateway.ical.partstat``), so the rep's calendars show it
after republication, and ``entry.updated`` is emitted. A reply that names no entry of the
rep, an address that is not a participant, comes from someone else than the attendee, or
carries an older SEQUENCE than the entry changes nothing. Every reply is recorded in
``invitation_replies`` with what it did and why; the record is insert-or-nothing on
(message, UID, attendee), so the same mail seen twice (BCC and IMAP, a retry) acts once.
The mail itself is logged as an activity like any other, by the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.ical.partstat import set_partstat
from gateway.mail.parse import ParsedEmail
from gateway.models import DiaryEntry, InvitationReply, User
from gateway.publication import publish_entry
from gateway.upsert import insert_many_or_nothing, table_of
from gateway.webhook_payloads import entry_changed

ANSWERS = ("ACCEPTED", "DECLINED", "TENTATIVE")
APPLIED, IGNORED = "applied", "ignored"
# A reply mail holds its answer once or twice (inline and attached); more is not a reply.
MAX_REPLIES = 10

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """One attendee's answer to one event, as the mail carries it."""

    uid: str
    attendee: str  # lower-cased address, without mailto:
    partstat: str
    sequence: int
    sent_by: str | None
    occurrence: bool  # a RECURRENCE-ID: the answer to one instance only


@dataclass(frozen=True)
class ReplyOutcome:
    reply: Reply
    outcome: str  # APPLIED | IGNORED
    reason: str
    entry_id: int | None


def _mailto(value: object) -> str:
    text = str(value).strip()
    return (text[7:] if text.lower().startswith("mailto:") else text).strip().lower()


def replies_in(parsed: ParsedEmail) -> list[Reply]:
    """The REPLYs in the message's text/calendar parts, each (UID, attendee) once."""
    found: dict[tuple[str, str], Reply] = {}
    for part in parsed.attachments:
        if part.content_type.lower() != "text/calendar":
            continue
        try:
            calendar = Calendar.from_ical(part.data)
        except ValueError:
            continue
        if str(calendar.get("METHOD", "")).strip().upper() != "REPLY":
            continue
        for event in calendar.walk("VEVENT"):
            uid = str(event.get("UID", "")).strip()
            attendees = event.get("ATTENDEE", [])
            for attendee in attendees if isinstance(attendees, list) else [attendees]:
                email = _mailto(attendee)
                if not uid or not email:
                    continue
                try:
                    sequence = int(event.get("SEQUENCE", 0))
                except (TypeError, ValueError):
                    sequence = 0
                sent_by = attendee.params.get("SENT-BY")
                found.setdefault((uid, email), Reply(
                    uid=uid[:255], attendee=email[:320],
                    partstat=str(attendee.params.get("PARTSTAT", "")).upper()[:32],
                    sequence=sequence, sent_by=_mailto(sent_by) if sent_by else None,
                    occurrence="RECURRENCE-ID" in event))
                if len(found) >= MAX_REPLIES:
                    return list(found.values())
    return list(found.values())


def _decide(session: Session, reply: Reply, sender: str | None,
            user: User) -> tuple[str, str, DiaryEntry | None]:
    if reply.partstat not in ANSWERS:
        return IGNORED, f"PARTSTAT {reply.partstat or '(none)'} is not an answer", None
    if sender not in (reply.attendee, reply.sent_by):
        return IGNORED, f"sent by {sender or 'nobody'}, not by the attendee", None
    if reply.occurrence:
        return IGNORED, "an answer for one occurrence of a series is not applied", None
    entry = session.scalar(select(DiaryEntry).where(
        DiaryEntry.owner_user_id == user.id, DiaryEntry.uid == reply.uid,
        DiaryEntry.deleted_at.is_(None)))
    if entry is None:
        return IGNORED, f"{user.username} has no entry with the UID {reply.uid!r}", None
    participant = next((p for p in entry.participants if p.email == reply.attendee), None)
    if participant is None:
        return IGNORED, f"{reply.attendee} is not a participant of entry {entry.id}", entry
    if reply.sequence < entry.sequence:
        return IGNORED, (f"SEQUENCE {reply.sequence} is older than entry {entry.id}'s "
                         f"{entry.sequence}"), entry
    return APPLIED, f"{reply.attendee} {reply.partstat} on entry {entry.id}", entry


def apply_replies(session: Session, parsed: ParsedEmail, user: User) -> list[ReplyOutcome]:
    """Apply and record the REPLYs in ``parsed``, the mail of ``user``, in the caller's
    transaction. Replies this message already brought are skipped (not returned)."""
    outcomes: list[ReplyOutcome] = []
    sender = parsed.sender.email.lower() if parsed.sender is not None else None
    for reply in replies_in(parsed):
        outcome, reason, entry = _decide(session, reply, sender, user)
        inserted = insert_many_or_nothing(session, InvitationReply, [{
            "message_key": parsed.key[:512], "user_id": user.id, "uid": reply.uid,
            "attendee": reply.attendee, "partstat": reply.partstat,
            "sequence": reply.sequence, "entry_id": entry.id if entry else None,
            "outcome": outcome, "reason": reason, "created_at": utcnow(),
        }], returning=[table_of(InvitationReply).c.id])
        if not inserted:
            continue  # this mail's reply was handled before (a second copy, a retry)
        if outcome == APPLIED and entry is not None:
            _answer(session, entry, reply)
        log.info("reply of %r to %r for %s: %s", reply.attendee, reply.uid, user.username,
                 reason)
        outcomes.append(ReplyOutcome(reply, outcome, reason, entry.id if entry else None))
    return outcomes


def _answer(session: Session, entry: DiaryEntry, reply: Reply) -> None:
    if all(p.partstat == reply.partstat for p in entry.participants
           if p.email == reply.attendee):
        return  # the same answer again: nothing changes, nothing to report
    for participant in entry.participants:
        if participant.email == reply.attendee:
            participant.partstat = reply.partstat
    entry.ical = set_partstat(entry.ical, reply.attendee, reply.partstat)
    entry.revision += 1  # the compare-and-set of every entry write
    entry.updated_at = utcnow()
    session.flush()
    publish_entry(session, entry)
    entry_changed(session, "updated", entry, "mail")


def summary(outcomes: list[ReplyOutcome]) -> str:
    """The replies' outcomes as one clause for the mail's decision."""
    return "; ".join(f"reply {o.outcome}: {o.reason}" for o in outcomes)
