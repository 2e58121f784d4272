"""BCC logging as a rep's mail server sees it: smtplib against the real listener on loopback.

Each test sends real .eml fixtures (tests/fixtures/eml/smtp/ and the parser's fixtures) and
checks both the SMTP replies and what the CRM store holds afterwards, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import dkim_keys
from peers.bcc_listener import (
    BUYER,
    LOG,
    QUIET,
    REP,
    REP2,
    Running,
    World,
    eml,
    running_listener,
    send,
    settle,
    write_config,
)
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from gateway.activity_queries import links_of
from gateway.blobs import get_blob
from gateway.contacts import find_contact
from gateway.db import Store
from gateway.models import Account, Activity, ActivityLink, InboundMessage

OK, UNKNOWN_RCPT, NOT_AUTHORISED, TOO_BIG = 250, 550, 550, 552
# The attachments of quote_with_attachments.eml, decoded (text travels with CRLF line ends).
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
CSV = b"item,qty,price\r\nWidget,100,9.50\r\nGadget,20,120.00\r\n"


def activities(store: Store) -> list[Activity]:
    """Every activity, attachments loaded, detached from its session."""
    with store.reading() as session:
        found = list(session.scalars(
            select(Activity).options(selectinload(Activity.attachments)).order_by(Activity.id)))
        session.expunge_all()
    return found


def inbound(store: Store) -> list[InboundMessage]:
    with store.reading() as session:
        found = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        session.expunge_all()
    return found


def test_bcc_to_secret_address_logs_activity_with_links_and_attachments(
    smtp: Running, store: Store, world: World
) -> None:
    raw = eml("smtp/quote_with_attachments.eml")
    replies = send(smtp.port, raw, mail_from=REP, rcpt_tos=[world.rep])
    assert replies.rcpt == [(250, "2.1.5 Recipient OK")]
    assert replies.data is not None and replies.data[0] == OK
    assert replies.data[1].startswith("2.0.0 Queued as ")
    settle(store)

    [activity] = activities(store)
    assert (activity.message_key, activity.direction, activity.source) == (
        "mid:quote-2026-001@crm.example", "sent", "bcc")
    assert activity.subject == "Quote Q-2026-001 for 100 widgets"
    assert activity.from_addr == REP
    assert activity.to_addrs == [BUYER]
    assert activity.cc_addrs == ["ceo@customer.example", "freelancer@gmail.com"]
    assert activity.text_body is not None and "please find our quote attached" in activity.text_body
    assert activity.html_body is not None and "<p>Hello Bea,</p>" in activity.html_body
    assert activity.sent_at is not None and activity.sent_at.isoformat() == (
        "2026-03-03T09:15:00+00:00")
    with store.reading() as session:
        links = links_of(session, activity.id)
        assert links.usernames == ["rep"]
        # buyer is known; ceo@ becomes a contact of its domain's account; the free-mail
        # freelancer becomes a contact with no account.
        assert links.contacts == [BUYER, "ceo@customer.example", "freelancer@gmail.com"]
        assert links.accounts == ["Customer Ltd"]
        ceo = find_contact(session, "ceo@customer.example")
        freelancer = find_contact(session, "freelancer@gmail.com")
        assert ceo is not None and ceo.name == "Chief Executive" and ceo.account is not None
        assert ceo.account.name == "Customer Ltd"
        assert freelancer is not None and freelancer.account_id is None
        assert session.scalar(select(func.count()).select_from(Account)) == 1
        files = [(a.filename, a.content_type, a.size, get_blob(session, a.blob_sha256))
                 for a in activity.attachments]
    assert files == [
        ("Q-2026-001.pdf", "application/pdf", len(PDF), PDF),
        ("pricing.csv", "text/csv", len(CSV), CSV),
    ]
    [row] = inbound(store)
    assert (row.status, row.activity_id, row.attempts) == ("done", activity.id, 1)
    assert row.decision is not None and row.decision.startswith(
        f"logged as activity {activity.id} for rep: 3 contact(s), 1 account(s)")


def test_bcc_in_the_senders_copy_and_cc_of_the_shared_address(
    smtp: Running, store: Store, world: World
) -> None:
    # The rep's own copy lists the Bcc recipients; a Bcc'd third party is a participant.
    bcc = send(smtp.port, eml("smtp/bcc_sender_copy.eml"), mail_from=REP, rcpt_tos=[world.rep])
    # Cc to the shared address: the rep's server signs with DKIM for the From domain.
    signed = dkim_keys.sign(eml("smtp/cc_logging_address.eml"), "crm.example")
    cc = send(smtp.port, signed, mail_from=REP, rcpt_tos=[LOG])
    assert (bcc.final, cc.final) == (OK, OK)
    settle(store)
    first, second = activities(store)
    assert (first.to_addrs, first.cc_addrs) == ([BUYER], [])
    assert (second.to_addrs, second.cc_addrs) == ([BUYER], [])  # the logging address is not kept
    with store.reading() as session:
        assert links_of(session, first.id).contacts == [BUYER, "sam@supplier.example"]
        assert links_of(session, second.id).contacts == [BUYER]
        assert links_of(session, second.id).usernames == ["rep"]
        # Neither logging address became a contact.
        assert find_contact(session, LOG) is None


def test_the_same_message_sent_twice_is_one_activity(
    smtp: Running, store: Store, world: World
) -> None:
    raw = eml("smtp/quote_with_attachments.eml")
    for _ in range(2):
        assert send(smtp.port, raw, mail_from=REP, rcpt_tos=[world.rep]).final == OK
        settle(store)
    [activity] = activities(store)
    first, second = inbound(store)
    assert (first.status, second.status) == ("done", "done")
    assert second.activity_id == activity.id
    assert second.decision == f"already logged as activity {activity.id}; already linked to rep"
    with store.reading() as session:
        assert session.scalar(select(func.count()).select_from(ActivityLink)) == 5


def test_two_reps_logging_one_message_share_one_activity(
    smtp: Running, store: Store, world: World
) -> None:
    raw = eml("smtp/customer_reply_to_two_reps.eml")
    # Each rep redirects the customer's mail to their own secret address.
    assert send(smtp.port, raw, mail_from=REP, rcpt_tos=[world.rep]).final == OK
    assert send(smtp.port, raw, mail_from=REP2, rcpt_tos=[world.rep2]).final == OK
    settle(store)
    [activity] = activities(store)
    assert activity.direction == "received"  # neither rep sent it
    with store.reading() as session:
        links = links_of(session, activity.id)
    assert (links.usernames, links.contacts, links.accounts) == (
        ["rep", "rep2"], [BUYER], ["Customer Ltd"])
    assert [row.decision for row in inbound(store)][1] == (
        f"already logged as activity {activity.id}; linked to rep2")


def test_one_transaction_to_two_secret_addresses_is_queued_for_each_user(
    smtp: Running, store: Store, world: World
) -> None:
    raw = eml("smtp/customer_reply_to_two_reps.eml")
    replies = send(smtp.port, raw, mail_from=BUYER, rcpt_tos=[world.rep, world.rep2])
    assert replies.data is not None and replies.data[1].startswith("2.0.0 Queued as ")
    assert len(replies.data[1].split("as ", 1)[1].split()) == 2
    settle(store)
    [activity] = activities(store)
    with store.reading() as session:
        assert links_of(session, activity.id).usernames == ["rep", "rep2"]


REFUSALS = {
    # name: (fixture, envelope sender, recipient, sign with this domain, expected reply)
    "unknown recipient at the logging domain": (
        "smtp/quote_with_attachments.eml", REP, "sales@crm.example", None, "5.1.1"),
    "relay attempt": ("smtp/quote_with_attachments.eml", REP, BUYER, None, "5.1.1"),
    "retired secret address": (
        "smtp/quote_with_attachments.eml", REP, "log+0000000000000000@crm.example", None,
        "5.1.1"),
    "spoofed From without DKIM": ("smtp/spoofed_from.eml", REP, LOG, None, "5.7.1"),
    "forged Authentication-Results": (
        "smtp/forged_authentication_results.eml", REP, LOG, None, "5.7.1"),
    "DKIM of another domain": ("smtp/spoofed_from.eml", REP, LOG, "attacker.example", "5.7.1"),
    "envelope sender is not the From": (
        "smtp/cc_logging_address.eml", "other@attacker.example", LOG, "crm.example", "5.7.1"),
    "sender is not a CRM user": (
        "customer_reply_unsigned", BUYER, LOG, "customer.example", "5.7.1"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_mail_gets_550_and_nothing_is_stored(
    smtp: Running, store: Store, world: World, case: str
) -> None:
    fixture, mail_from, rcpt, signer, enhanced = REFUSALS[case]
    if fixture == "customer_reply_unsigned":
        fixture = "smtp/customer_reply_to_two_reps.eml"
    raw = eml(fixture)
    if signer is not None:
        raw = dkim_keys.sign(raw, signer)
    replies = send(smtp.port, raw, mail_from=mail_from, rcpt_tos=[rcpt])
    assert replies.final == 550
    text = replies.data[1] if replies.data is not None else replies.rcpt[0][1]
    assert text.startswith(enhanced)
    assert "rep" not in text and "Error" not in text  # nothing internal leaks
    assert inbound(store) == [] and activities(store) == []


def test_a_user_with_email_sync_off_is_refused(smtp: Running, store: Store, world: World) -> None:
    by_token = send(smtp.port, eml("smtp/quote_with_attachments.eml"), mail_from=QUIET,
                    rcpt_tos=[world.quiet])
    assert by_token.rcpt == [(550, "5.7.1 Not authorised to log mail here")]
    raw = eml("smtp/cc_logging_address.eml").replace(REP.encode(), QUIET.encode())
    by_dkim = send(smtp.port, dkim_keys.sign(raw, "crm.example"), mail_from=QUIET,
                   rcpt_tos=[LOG])
    assert by_dkim.data == (550, "5.7.1 Not authorised to log mail here")
    assert inbound(store) == [] and activities(store) == []


def test_a_dkim_signature_with_a_body_length_limit_does_not_authenticate(
    smtp: Running, store: Store, world: World
) -> None:
    # l= lets anyone append text after the signed part of the body.
    signed = dkim_keys.sign(eml("smtp/cc_logging_address.eml"), "crm.example", length=True)
    assert send(smtp.port, signed, mail_from=REP, rcpt_tos=[LOG]).final == 550
    assert inbound(store) == []


def test_a_client_in_trusted_networks_may_use_the_shared_address_without_dkim(
    tmp_path: Path, database_url: str, store: Store, world: World
) -> None:
    config = write_config(tmp_path, database_url, trusted_networks=["127.0.0.0/8"],
                          sender_auth=["trusted_networks"])
    with running_listener(config, store) as smtp:
        assert send(smtp.port, eml("smtp/spoofed_from.eml"), mail_from=REP,
                    rcpt_tos=[LOG]).final == OK
        # DKIM is not an accepted means here, so a signed message from elsewhere would not do;
        # and a non-user is still refused from a trusted relay.
        assert send(smtp.port, eml("smtp/customer_reply_to_two_reps.eml"), mail_from=BUYER,
                    rcpt_tos=[LOG]).final == 550
        settle(store)
    [activity] = activities(store)
    assert activity.message_key == "mid:spoof-1@attacker.example"


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("smtp/internal_only.eml", "not logged: no external participant"),
        ("bulk_list_id.eml", "not logged: bulk mail (List-Id: "),
        ("bulk_precedence_bulk.eml", "not logged: bulk mail (Precedence: bulk)"),
        ("bulk_auto_replied.eml", "not logged: bulk mail (Auto-Submitted: auto-replied)"),
        ("smtp/never_log_participant.eml",
         "not logged: a participant is on never_log (counsel.example)"),
    ],
)
def test_internal_bulk_and_never_log_mail_is_accepted_but_not_logged(
    smtp: Running, store: Store, world: World, fixture: str, reason: str
) -> None:
    assert send(smtp.port, eml(fixture), mail_from=REP, rcpt_tos=[world.rep]).final == OK
    settle(store)
    assert activities(store) == []
    [row] = inbound(store)
    assert row.status == "skipped" and row.activity_id is None
    assert row.decision is not None and row.decision.startswith(reason)
    with store.reading() as session:
        assert find_contact(session, "ops@crm.example") is None  # internal: never a contact


@pytest.mark.parametrize(
    ("fixture", "text", "defect"),
    [
        ("charset_utf8_label_latin1_bytes.eml", "Grüße aus Köln", "read as cp1252"),
        ("charset_utf8_label_cp1251_bytes.eml", "Здравствуйте, Иван Петрович!",
         "detected as cp1251"),
        ("charset_us_ascii_label_utf8_bytes.eml", "Zürich, naïve résumé — 東京",
         "decoded as utf-8"),
        ("charset_x_unknown.eml", "Ελληνικά, Русский", "'x-unknown'"),
    ],
)
def test_non_utf8_and_mislabelled_charsets_are_logged_as_unicode(
    smtp: Running, store: Store, world: World, fixture: str, text: str, defect: str
) -> None:
    assert send(smtp.port, eml(fixture), mail_from=REP, rcpt_tos=[world.rep]).final == OK
    settle(store)
    [activity] = activities(store)
    assert activity.text_body is not None and text in activity.text_body
    assert activity.notes is not None and defect in activity.notes


def test_an_unproven_shared_copy_does_not_stop_a_secret_address_in_the_same_transaction(
    smtp: Running, store: Store, world: World
) -> None:
    # The customer's mail reached both the rep's secret address and the shared one: the
    # secret address names its user; the unauthenticated shared copy adds nobody.
    raw = eml("smtp/customer_reply_to_two_reps.eml")
    replies = send(smtp.port, raw, mail_from=BUYER, rcpt_tos=[LOG, world.rep])
    assert replies.final == OK
    settle(store)
    [row] = inbound(store)
    assert row.rcpt_tos == [LOG, world.rep] and row.status == "done"
    with store.reading() as session:
        assert links_of(session, activities(store)[0].id).usernames == ["rep"]
