"""A genuine DKIM-signed mail replayed to the shared address with header fields added.

dkimpy verifies the bottom-most instance of each signed field and the parser reads the
top-most, so a prepended Subject, Message-ID, To... still verifies. Such replays must be
refused (550), and of a signature that does not cover a field, the activity must not take
it. Real keys and real dkimpy on both sides; only the DNS lookup is the test's
(peers/dkim_keys); smtplib against the real listener, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peers import dkim_keys
from peers.bcc_listener import (
    BUYER,
    LOG,
    REP,
    REP2,
    Running,
    World,
    eml,
    send,
    settle,
)
from sqlalchemy import func, select

from bcc_ingest.smtp.signed_view import LOGGED_FIELDS, repeated_fields, signed_view
from gateway.activity_queries import links_of
from gateway.db import Store
from gateway.mail.header_block import read_header_block
from gateway.models import Activity, Contact, InboundMessage

ALL_SIGNED = (*dkim_keys.SIGNED_FIELDS, "reply-to")
# The six replays of the report, and the other singletons an activity is built from.
PREPENDED = {
    "Subject": b"Subject: Contract terminated, refund everything",
    "Message-ID": b"Message-ID: <forged-1@crm.example>",
    "To": b"To: Victim <victim@evil.example>",
    "Cc": b"Cc: Other <other@evil.example>",
    "Date": b"Date: Mon, 01 Jan 2024 00:00:00 +0000",
    "From": b"From: Rep Two <rep2@crm.example>",
    "Reply-To": b"Reply-To: Thief <thief@evil.example>",
    # Not in the original, so not repeated: accepted, but as unsigned it is left out.
    "Bcc": b"Bcc: Spy <spy@evil.example>",
}


def counts(store: Store) -> tuple[int, int, int]:
    """(activities, contacts, inbound messages)."""
    with store.reading() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Activity, Contact, InboundMessage)
        )


def the_activity(store: Store) -> Activity:
    with store.reading() as session:
        [activity] = session.scalars(select(Activity))
        session.expunge(activity)
    return activity


def genuine() -> tuple[bytes, bytes]:
    """Rep's meeting notes, Cc'd to the shared address, signed over every logged field:
    (the DKIM-Signature field, the message it signs)."""
    original = eml("smtp/cc_logging_address.eml")
    signed = dkim_keys.sign(original, "crm.example", fields=ALL_SIGNED)
    return signed[:-len(original)], original


@pytest.mark.parametrize("place", ["above the signature", "below the signature"])
@pytest.mark.parametrize("field", sorted(PREPENDED))
def test_a_signed_mail_replayed_with_a_field_prepended_is_refused(
    smtp: Running, store: Store, field: str, place: str
) -> None:
    signature, original = genuine()
    signed = signature + original
    assert send(smtp.port, signed, mail_from=REP, rcpt_tos=[LOG]).final == 250
    settle(store)
    before = counts(store)
    assert before == (1, 1, 1)  # the activity, its contact (buyer), its inbound row

    mail_from = REP2 if field == "From" else REP  # the envelope agrees with the forged From
    added = PREPENDED[field] + b"\r\n"
    replay = added + signed if place == "above the signature" else signature + added + original
    replies = send(smtp.port, replay, mail_from=mail_from, rcpt_tos=[LOG])

    if field == "Bcc":
        assert replies.final == 250
        settle(store)
        assert counts(store) == (1, 1, 2)  # one more inbound row, linked to the same activity
    else:
        assert replies.data == (550, "5.7.1 Not authorised to log mail here")
        assert counts(store) == before
    activity = the_activity(store)
    assert (activity.message_id, activity.subject, activity.to_addrs) == (
        "meeting-notes@crm.example", "Meeting notes", [BUYER])
    with store.reading() as session:
        assert links_of(session, activity.id).usernames == ["rep"]


def test_fields_the_signature_does_not_cover_never_reach_the_activity(
    smtp: Running, store: Store
) -> None:
    # Rep Bcc'd the shared address; their server signs From, To, Subject and Date only.
    original = eml("smtp/cc_logging_address.eml").replace(b"Cc: CRM log <log@crm.example>\r\n",
                                                          b"")
    signed = dkim_keys.sign(original, "crm.example", fields=("from", "to", "subject", "date"))
    assert send(smtp.port, signed, mail_from=REP, rcpt_tos=[LOG]).final == 250
    # Replays: the unsigned Message-ID changed each time (one key per replay today), and an
    # unsigned Cc and Reply-To added (contacts today).
    for n in range(3):
        replay = signed.replace(b"<meeting-notes@crm.example>", f"<replay-{n}@x>".encode())
        replay = replay.replace(b"\r\n\r\n", b"\r\nCc: Victim <victim@evil.example>\r\n"
                                b"Reply-To: thief@evil.example\r\n\r\n", 1)
        assert send(smtp.port, replay, mail_from=REP, rcpt_tos=[LOG]).final == 250
    settle(store)

    assert counts(store) == (1, 1, 4)
    activity = the_activity(store)
    assert activity.message_id is None  # not signed: not the record's key
    assert activity.message_key.startswith("fp:")
    assert (activity.subject, activity.from_addr, activity.to_addrs, activity.cc_addrs) == (
        "Meeting notes", REP, [BUYER], [])
    with store.reading() as session:
        links = links_of(session, activity.id)
        assert (links.usernames, links.contacts) == (["rep"], [BUYER])
        queued = list(session.scalars(select(InboundMessage.raw)))
    for raw in queued:  # what was kept still verifies: only unsigned fields went
        assert dkim.verify(bytes(raw), dnsfunc=dkim_keys.txt_record)
        assert b"victim@" not in raw and b"Message-ID" not in raw


def test_a_secret_address_keeps_every_field_of_its_copy(
    smtp: Running, store: Store, world: World
) -> None:
    # The token proves whose mail it is; the user's own copy is logged as it came.
    raw = eml("smtp/quote_with_attachments.eml")
    assert send(smtp.port, raw, mail_from=REP, rcpt_tos=[world.rep]).final == 250
    settle(store)
    activity = the_activity(store)
    assert activity.message_id == "quote-2026-001@crm.example"
    assert activity.cc_addrs == ["ceo@customer.example", "freelancer@gmail.com"]


HEADERS = {
    "from": b"From: Rep One <rep@crm.example>",
    "to": b"To: Bea Buyer <buyer@customer.example>,\r\n Other <other@customer.example>",
    "cc": b"Cc: Carl <carl@customer.example>",
    "reply-to": b"Reply-To: rep-replies@crm.example",
    "subject": b"Subject: Notes\r\n\tfolded over two lines",
    "date": b"Date: Wed, 04 Mar 2026 11:30:00 +0000",
    "message-id": b"Message-ID: <notes@crm.example>",
    "in-reply-to": b"In-Reply-To: <earlier@customer.example>",
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    present=st.permutations(sorted(HEADERS)).flatmap(
        lambda order: st.integers(1, len(order)).map(lambda n: order[:n])),
    signed=st.sets(st.sampled_from(sorted(HEADERS))),
)
def test_the_signed_view_verifies_and_holds_only_signed_logged_fields(
    present: list[str], signed: set[str]
) -> None:
    if "from" not in present:
        present = ["from", *present]
    fields = ("from", *sorted(signed - {"from"}))
    raw = b"\r\n".join(HEADERS[name] for name in present) + b"\r\n\r\nBody line.\r\n"
    message = dkim_keys.sign(raw, "crm.example", fields=fields)
    assert repeated_fields(message) == []

    view, removed = signed_view(message, fields)

    assert dkim.verify(view, dnsfunc=dkim_keys.txt_record)
    names = [name for name, _ in read_header_block(view, 0, len(view)).fields]
    assert sorted(removed) == sorted(n for n in present if n in LOGGED_FIELDS and n not in fields)
    assert [n for n in names if n in LOGGED_FIELDS and n not in fields] == []
    assert set(names) == {"dkim-signature", *(n for n in present if n not in removed)}
    assert view.endswith(b"\r\n\r\nBody line.\r\n")
