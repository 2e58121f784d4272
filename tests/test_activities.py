"""The activity service that both mail edges call: logging rules, idempotence, relevance.

Driven directly (no SMTP) with parsed .eml fixtures, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from peers.bcc_listener import BUYER, World, seed_world
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.activities import (
    LINKED,
    LOGGED,
    NOT_LOGGED,
    LogOutcome,
    is_relevant,
    record_email,
    record_emails,
    storage_key,
)
from gateway.activity_queries import links_of
from gateway.blobs import get_blob
from gateway.contacts import create_account, find_contact
from gateway.db import Store
from gateway.logging_policy import FREE_MAIL_DOMAINS, LoggingPolicy
from gateway.mail.parse import ParseLimits, parse_message
from gateway.models import Activity, Contact, User

EML = Path(__file__).parent / "fixtures" / "eml"
POLICY = LoggingPolicy(
    logging_address="log@crm.example", internal_domains=frozenset({"crm.example"}),
    never_log=frozenset({"counsel.example", "private@customer.example"}),
    auto_create_contacts=True, free_mail_domains=FREE_MAIL_DOMAINS,
)


@pytest.fixture
def world(store: Store) -> World:
    return seed_world(store)


def user(session: Session, name: str) -> User:
    found = session.scalar(select(User).where(User.username == name))
    assert found is not None
    return found


def log(store: Store, raw: bytes, username: str = "rep", *, policy: LoggingPolicy = POLICY,
        limits: ParseLimits | None = None, source: str = "bcc") -> LogOutcome:
    parsed = parse_message(raw, limits) if limits else parse_message(raw)
    with store.transaction() as session:
        return record_email(session, parsed, raw=raw, user=user(session, username),
                            source=source, policy=policy)


def message(headers: str, body: str = "Hello.\n") -> bytes:
    return (headers.strip() + "\n\n" + body).encode()


def test_a_second_arrival_links_instead_of_duplicating(store: Store, world: World) -> None:
    raw = (EML / "smtp" / "customer_reply_to_two_reps.eml").read_bytes()
    first = log(store, raw, "rep")
    again = log(store, raw, "rep")
    other = log(store, raw, "rep2", source="imap")  # the same mail found by the IMAP poller
    assert first.status == LOGGED and first.activity_id is not None
    assert (again.status, again.activity_id) == (LINKED, first.activity_id)
    assert again.reason == f"already logged as activity {first.activity_id}; already linked to rep"
    assert (other.status, other.reason) == (
        LINKED, f"already logged as activity {first.activity_id}; linked to rep2")
    with store.reading() as session:
        assert session.scalar(select(func.count()).select_from(Activity)) == 1
        activity = session.get(Activity, first.activity_id)
        assert activity is not None and activity.source == "bcc"  # the first arrival's
        assert links_of(session, first.activity_id).usernames == ["rep", "rep2"]


def test_concurrent_arrivals_of_one_message_make_one_activity(
    store: Store, world: World
) -> None:
    raw = (EML / "smtp" / "quote_with_attachments.eml").read_bytes()
    start = threading.Barrier(2)
    outcomes: list[LogOutcome] = []

    def arrive(name: str) -> None:
        start.wait()
        outcomes.append(log(store, raw, name))

    threads = [threading.Thread(target=arrive, args=(n,)) for n in ("rep", "rep2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(o.status for o in outcomes) == [LINKED, LOGGED]
    assert len({o.activity_id for o in outcomes}) == 1
    with store.reading() as session:
        assert session.scalar(select(func.count()).select_from(Activity)) == 1
        assert session.scalar(select(func.count()).select_from(Contact)) == 3  # no twins


def test_messages_without_message_id_are_matched_by_fingerprint(
    store: Store, world: World
) -> None:
    original = log(store, (EML / "no_message_id.eml").read_bytes())
    refolded = log(store, (EML / "no_message_id_refolded.eml").read_bytes())
    different = log(store, (EML / "no_message_id_other_body.eml").read_bytes())
    assert original.status == LOGGED
    assert (refolded.status, refolded.activity_id) == (LINKED, original.activity_id)
    assert different.status == LOGGED and different.activity_id != original.activity_id


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ("From: rep@crm.example\nTo: lou@sub.counsel.example", NOT_LOGGED,
         "not logged: a participant is on never_log (counsel.example)"),
        ("From: rep@crm.example\nTo: buyer@customer.example\nCc: private@customer.example",
         NOT_LOGGED, "not logged: a participant is on never_log (private@customer.example)"),
        ("From: rep@crm.example\nTo: ops@eu.crm.example, log@crm.example", NOT_LOGGED,
         "not logged: no external participant"),
        ("From: rep@crm.example\nTo: buyer@customer.example\nList-Id: <news.crm.example>",
         NOT_LOGGED, "not logged: bulk mail (List-Id: <news.crm.example>)"),
        ("From: rep@crm.example\nTo: buyer@customer.example", LOGGED, "logged as activity"),
    ],
)
def test_logging_rules(
    store: Store, world: World, headers: str, status: str, reason: str
) -> None:
    outcome = log(store, message(headers + "\nMessage-ID: <rules@crm.example>"))
    assert outcome.status == status and outcome.reason.startswith(reason)


def test_a_user_with_email_sync_off_gets_nothing_logged(store: Store, world: World) -> None:
    outcome = log(store, message("From: quiet@crm.example\nTo: buyer@customer.example"), "quiet")
    assert (outcome.status, outcome.reason) == (
        NOT_LOGGED, "not logged: email sync is off for quiet")


def test_contacts_and_accounts_follow_domains_but_never_free_mail(
    store: Store, world: World
) -> None:
    with store.transaction() as session:
        create_account(session, "Google (the customer)", ["gmail-partner.example"])
    raw = message("From: rep@crm.example\nTo: Ann <ann@customer.example>, joe@gmail.com\n"
                  "Cc: kim@gmail-partner.example\nMessage-ID: <domains@crm.example>")
    outcome = log(store, raw)
    assert outcome.activity_id is not None
    with store.reading() as session:
        links = links_of(session, outcome.activity_id)
        ann, joe = find_contact(session, "ann@customer.example"), find_contact(
            session, "joe@gmail.com")
        assert ann is not None and ann.name == "Ann" and ann.account is not None
        assert joe is not None and joe.account_id is None
    assert links.contacts == ["ann@customer.example", "joe@gmail.com",
                              "kim@gmail-partner.example"]
    assert links.accounts == ["Customer Ltd", "Google (the customer)"]


def test_without_auto_create_unknown_people_stay_out_but_accounts_still_link(
    store: Store, world: World
) -> None:
    policy = LoggingPolicy(POLICY.logging_address, POLICY.internal_domains, POLICY.never_log,
                           False, FREE_MAIL_DOMAINS)
    raw = message("From: rep@crm.example\nTo: new@customer.example, x@unknown.example\n"
                  "Message-ID: <no-auto@crm.example>")
    outcome = log(store, raw, policy=policy)
    assert outcome.activity_id is not None
    with store.reading() as session:
        assert find_contact(session, "new@customer.example") is None
        links = links_of(session, outcome.activity_id)
    assert (links.contacts, links.accounts) == ([], ["Customer Ltd"])


def test_beyond_parse_limits_what_was_parsed_is_logged_and_the_raw_kept(
    store: Store, world: World
) -> None:
    raw = (EML / "smtp" / "quote_with_attachments.eml").read_bytes()
    outcome = log(store, raw, limits=ParseLimits(max_parts=3))
    assert outcome.activity_id is not None
    assert outcome.reason.endswith(
        "parsing stopped early (more than 3 MIME parts), raw message kept")
    with store.reading() as session:
        activity = session.get(Activity, outcome.activity_id)
        assert activity is not None and activity.raw_sha256 is not None
        assert get_blob(session, activity.raw_sha256) == raw
        assert activity.notes is not None and activity.notes.startswith(
            "Parsing stopped early (more than 3 MIME parts)")
        assert activity.text_body is not None and activity.attachments == []


def test_awkward_values_are_stored_safely(store: Store, world: World) -> None:
    long_id = "<" + "x" * 600 + "@crm.example>"
    raw = message(f"From: rep@crm.example\nTo: {BUYER}\nMessage-ID: {long_id}\n"
                  "Subject: nul\x00 in subject", body="a NUL \x00 in the body\n")
    outcome = log(store, raw)
    assert outcome.status == LOGGED
    with store.reading() as session:
        activity = session.get(Activity, outcome.activity_id)
        assert activity is not None
        assert activity.message_key == storage_key("mid:" + "x" * 600 + "@crm.example")
        assert len(activity.message_key) < 100
        assert (activity.subject, activity.text_body) == ("nul in subject",
                                                          "a NUL  in the body\n")
    assert log(store, raw).status == LINKED  # the shortened key still finds it


@pytest.mark.parametrize(
    ("addresses", "relevant"),
    [
        ([BUYER], True),  # a contact
        (["someone.new@customer.example"], True),  # an account's domain
        (["stranger@unknown.example", "joe@gmail.com"], False),
        (["ops@crm.example", "rep2@crm.example"], False),  # internal only
        ([BUYER, "lou@counsel.example"], False),  # never_log wins
    ],
)
def test_is_relevant_decides_from_addresses_alone(
    store: Store, world: World, addresses: list[str], relevant: bool
) -> None:
    with store.reading() as session:
        assert is_relevant(session, addresses, user=user(session, "rep"),
                           policy=POLICY) is relevant
        assert is_relevant(session, addresses, user=user(session, "quiet"),
                           policy=POLICY) is False


@pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batch"])
def test_a_batch_is_logged_as_one_by_one_would_be(
    store: Store, world: World, batched: bool
) -> None:
    earlier = message("From: rep2@crm.example\nTo: buyer@customer.example\n"
                      "Message-ID: <earlier@crm.example>")
    log(store, earlier, "rep2")
    raws = [
        message("From: rep@crm.example\nTo: New One <new1@customer.example>\n"
                "Message-ID: <first@crm.example>"),
        message("From: rep@crm.example\nTo: new1@customer.example\n"
                "Cc: new2@customer.example\nMessage-ID: <first@crm.example>"),  # a copy
        message("From: rep@crm.example\nTo: buyer@customer.example\nPrecedence: bulk"),
        message("From: rep@crm.example\nTo: buyer@customer.example, lou@counsel.example"),
        message("From: rep@crm.example\nTo: New Again <new1@customer.example>\n"
                "Message-ID: <second@crm.example>"),
        earlier,
    ]
    items = [(parse_message(raw), raw) for raw in raws]
    with store.transaction() as session:
        rep = user(session, "rep")
        if batched:
            outcomes = record_emails(session, items, user=rep, source="imap", policy=POLICY)
        else:
            outcomes = [record_email(session, parsed, raw=raw, user=rep, source="imap",
                                     policy=POLICY) for parsed, raw in items]
    first, second, before = (outcomes[i].activity_id for i in (0, 4, 5))
    assert [(o.status, o.reason) for o in outcomes] == [
        (LOGGED, f"logged as activity {first} for rep: 1 contact(s), 1 account(s); "
                 "new contacts new1@customer.example"),
        (LINKED, f"already logged as activity {first}; already linked to rep"),
        (NOT_LOGGED, "not logged: bulk mail (Precedence: bulk)"),
        (NOT_LOGGED, "not logged: a participant is on never_log (counsel.example)"),
        (LOGGED, f"logged as activity {second} for rep: 1 contact(s), 1 account(s)"),
        (LINKED, f"already logged as activity {before}; linked to rep"),
    ]
    with store.reading() as session:
        new1 = find_contact(session, "new1@customer.example")
        assert new1 is not None and new1.name == "New One"
        assert links_of(session, first).contacts == ["new1@customer.example",
                                                     "new2@customer.example"]
        assert links_of(session, before).usernames == ["rep2", "rep"]
