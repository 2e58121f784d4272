"""The pure parts of replies to invitations: a PARTSTAT patched into a stored object (every
other byte kept, property-tested), the REPLYs a mail carries, and a rep's own reply to an
outside organiser landing on the rep's copy of the invitation."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar
from imip import imip_reply
from sqlalchemy import select

from gateway import calendars, client_writes
from gateway.activities import record_email
from gateway.clock import utcnow
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.ical.contentlines import content_line, fold, logical_lines
from gateway.ical.partstat import set_partstat
from gateway.logging_policy import FREE_MAIL_DOMAINS, LoggingPolicy
from gateway.mail.parse import parse_message
from gateway.models import DiaryEntry
from gateway.rsvp import replies_in
from gateway.users import UserChanges, create_user, get_user, update_user

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANSWERS = st.sampled_from(["ACCEPTED", "DECLINED", "TENTATIVE"])
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)

OBJECT = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VEVENT\r
UID:review@test\r
DTSTAMP:20261201T090000Z\r
DTSTART:20261207T090000Z\r
DTEND:20261207T100000Z\r
SUMMARY:Review\r
X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r
{attendee}\r
ATTENDEE;PARTSTAT=ACCEPTED:mailto:other@example.com\r
BEGIN:VALARM\r
ACTION:EMAIL\r
TRIGGER:-PT15M\r
SUMMARY:Soon\r
DESCRIPTION:Soon\r
ATTENDEE:mailto:hank@globex.example\r
END:VALARM\r
END:VEVENT\r
END:VCALENDAR\r
"""


@PROPERTY
@given(NAMES, ANSWERS, st.booleans())
def test_set_partstat_changes_only_that_attendees_answer(name: str, answer: str,
                                                         upper: bool) -> None:
    address = "Hank@Globex.example" if upper else "hank@globex.example"
    params = [("CN", name)] if name.strip() else []
    line = fold(content_line("ATTENDEE", f"mailto:{address}",
                             [*params, ("PARTSTAT", "NEEDS-ACTION"), ("RSVP", "TRUE")]))
    text = OBJECT.format(attendee=line.rstrip("\r\n"))
    patched = set_partstat(text, "hank@globex.example", answer)
    [event] = Calendar.from_ical(patched).walk("VEVENT")
    attendees = {str(a).lower(): a for a in event["ATTENDEE"]}
    hank = attendees["mailto:hank@globex.example"]
    assert hank.params["PARTSTAT"] == answer and "RSVP" not in hank.params
    [original] = Calendar.from_ical(text).walk("VEVENT")
    was = {str(a).lower(): a for a in original["ATTENDEE"]}["mailto:hank@globex.example"]
    assert hank.params.get("CN") == was.params.get("CN")  # read alike before and after
    assert attendees["mailto:other@example.com"].params["PARTSTAT"] == "ACCEPTED"
    # Every other line is kept byte for byte (the VALARM's ATTENDEE among them).
    before = [line.raw for line in logical_lines(text) if "NEEDS-ACTION" not in line.text]
    after = [line.raw for line in logical_lines(patched)
             if not (line.name == "ATTENDEE" and f"PARTSTAT={answer}:" in line.text
                     and "hank" in line.text.lower())]
    assert after == before
    assert "ATTENDEE:mailto:hank@globex.example\r\nEND:VALARM" in patched
    assert set_partstat(patched, "hank@globex.example", answer) is patched  # nothing to do


def test_replies_in_reads_the_reply_once_and_ignores_other_methods() -> None:
    reply = imip_reply("hank@globex.example", "alice@acme.example", "a@test", "ACCEPTED",
                       sequence=2, message_id="r@globex.example")
    [found] = replies_in(parse_message(reply))
    assert (found.uid, found.attendee, found.partstat, found.sequence) == (
        "a@test", "hank@globex.example", "ACCEPTED", 2)
    # A REQUEST (an invitation itself) is not an answer.
    request = reply.replace(b"METHOD:REPLY", b"METHOD:REQUEST")
    assert replies_in(parse_message(request)) == []
    broken = reply.replace(b"BEGIN:VEVENT", b"BEGIN:VEVENT\r\nDTSTART:garbage")
    assert len(replies_in(parse_message(broken))) <= 1  # never raises


INVITATION = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Globex//EN\r
BEGIN:VEVENT\r
UID:globex-kickoff@globex.example\r
DTSTAMP:20261201T090000Z\r
DTSTART:{start}\r
DTEND:{end}\r
SEQUENCE:0\r
SUMMARY:Kick-off at Globex\r
ORGANIZER:mailto:hank@globex.example\r
ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:alice@acme.example\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_the_reps_own_reply_to_an_outside_organiser_lands_on_the_reps_copy(
        store: Store) -> None:
    start = (utcnow() + timedelta(days=4)).replace(hour=9, minute=0, second=0, microsecond=0)
    text = INVITATION.format(start=start.strftime("%Y%m%dT%H%M%SZ"),
                             end=(start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ"))
    with store.transaction() as session:
        create_type(session, "Meeting")
        alice = create_user(session, "alice", "alice@acme.example", name="Alice")
        update_user(session, alice, UserChanges(diary_sync=True))
        view = calendars.user_calendar(session, alice, "meeting")
        assert view is not None
        client_writes.put_event(session, alice, view, "kickoff.ics", text)
    policy = LoggingPolicy(logging_address="log@acme.example",
                           internal_domains=frozenset({"acme.example"}),
                           never_log=frozenset(), auto_create_contacts=True,
                           free_mail_domains=FREE_MAIL_DOMAINS)
    raw = imip_reply("alice@acme.example", "hank@globex.example",
                     "globex-kickoff@globex.example", "ACCEPTED", message_id="a@acme.example")
    with store.transaction() as session:
        outcome = record_email(session, parse_message(raw), raw=raw,
                               user=get_user(session, "alice"), source="bcc", policy=policy)
    assert outcome.status == "logged" and "reply applied: alice@acme.example ACCEPTED" in \
        outcome.reason
    with store.reading() as session:
        entry = session.scalars(select(DiaryEntry)).one()
        assert [(p.email, p.partstat) for p in entry.participants] == [
            ("alice@acme.example", "ACCEPTED")]
        assert "PARTSTAT=ACCEPTED:mailto:alice@acme.example" in entry.ical
