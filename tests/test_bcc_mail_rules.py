"""Mail rules that do not depend on which copy arrives first, nor on a lucky address.

smtplib against the real listener, on SQLite and PostgreSQL: the direction of an activity
comes from its From header; a shared-address sender whose address two users have is logged
for one of them or refused with the reason, never for both.
"""

from __future__ import annotations

import logging

import pytest
from peers import dkim_keys
from peers.bcc_listener import (
    BUYER,
    LOG,
    REP,
    Running,
    World,
    eml,
    send,
    settle,
)
from sqlalchemy import func, select

from gateway.activity_queries import links_of
from gateway.db import Store
from gateway.models import Activity, InboundMessage, User
from gateway.users import UserChanges, create_user, get_user, update_user


def logged(store: Store) -> list[tuple[str, str, list[str]]]:
    """(message key, direction, linked usernames) of every activity."""
    with store.reading() as session:
        return [(a.message_key, a.direction, links_of(session, a.id).usernames)
                for a in session.scalars(select(Activity).order_by(Activity.id))]


def queued_for(store: Store) -> list[str]:
    """The user each inbound row was queued for."""
    with store.reading() as session:
        return list(session.scalars(
            select(User.username).join(InboundMessage, InboundMessage.user_id == User.id)
            .order_by(InboundMessage.id)))


@pytest.mark.parametrize("first", ["rep2", "rep"])
def test_the_direction_comes_from_the_from_header_whichever_copy_arrives_first(
    smtp: Running, store: Store, world: World, first: str
) -> None:
    # Rep mails the customer with rep2 in Cc; both redirect their copy to their address.
    raw = eml("smtp/quote_with_attachments.eml").replace(
        b"Cc: Chief Executive", b"Cc: Rep Two <rep2@crm.example>, Chief Executive")
    addresses = {"rep": world.rep, "rep2": world.rep2}
    order = [first, "rep" if first == "rep2" else "rep2"]
    for name in order:
        assert send(smtp.port, raw, mail_from=f"{name}@crm.example",
                    rcpt_tos=[addresses[name]]).final == 250
        settle(store)
    assert logged(store) == [("mid:quote-2026-001@crm.example", "sent", order)]


def test_mail_from_a_customer_is_received_for_every_rep(
    smtp: Running, store: Store, world: World
) -> None:
    raw = eml("smtp/customer_reply_to_two_reps.eml")
    assert send(smtp.port, raw, mail_from=BUYER, rcpt_tos=[world.rep2, world.rep]).final == 250
    settle(store)
    [(_, direction, users)] = logged(store)
    assert (direction, users) == ("received", ["rep2", "rep"])


def shared_copy() -> bytes:
    return dkim_keys.sign(eml("smtp/cc_logging_address.eml"), "crm.example")


def test_a_shared_address_sender_two_users_have_is_refused_with_the_reason(
    smtp: Running, store: Store, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with store.transaction() as session:
        create_user(session, "rep-old", REP, name="Rep's old login")  # email sync on
    caplog.set_level(logging.INFO, logger="bcc_ingest.smtp.handler")

    replies = send(smtp.port, shared_copy(), mail_from=REP, rcpt_tos=[LOG])

    assert replies.data == (550, "5.7.1 Not authorised to log mail here")
    assert "the sender's address belongs to 2 users with email sync (rep, rep-old) and none " \
           "has diary sync" in caplog.text
    with store.reading() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 0


def test_of_two_users_with_one_address_the_diary_sync_user_gets_the_mail(
    smtp: Running, store: Store, world: World
) -> None:
    with store.transaction() as session:
        create_user(session, "rep-old", REP, name="Rep's old login")
        update_user(session, get_user(session, "rep"), UserChanges(diary_sync=True))

    assert send(smtp.port, shared_copy(), mail_from=REP, rcpt_tos=[LOG]).final == 250
    settle(store)

    assert queued_for(store) == ["rep"]
    assert logged(store) == [("mid:meeting-notes@crm.example", "sent", ["rep"])]
