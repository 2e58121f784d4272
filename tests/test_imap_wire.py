"""IMAP wire rules the poller relies on, checked on the literal lines servers send."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bcc_ingest.imap.folders import find_sent, plan_folders
from bcc_ingest.imap.sync import imap_date
from bcc_ingest.imap.wire import (
    ImapNo,
    ListedFolder,
    capabilities_of,
    encode_mailbox,
    parse_fetch,
    parse_list_line,
    uid_set,
)


def test_uid_sets_are_compressed_into_ranges() -> None:
    assert uid_set([5, 1, 2, 3, 9, 10, 7]) == b"1:3,5,7,9:10"
    assert uid_set([42]) == b"42"
    with pytest.raises(ValueError):
        uid_set([])


@given(st.sets(st.integers(min_value=1, max_value=2**32 - 1), min_size=1, max_size=200))
def test_a_uid_set_names_exactly_its_uids(uids: set[int]) -> None:
    named: set[int] = set()
    for part in uid_set(uids).split(b","):
        first, _, last = part.partition(b":")
        named.update(range(int(first), int(last or first) + 1))
    assert named == uids


def test_a_fetch_line_gives_uid_size_and_the_literal_in_any_item_order() -> None:
    body = b"From: a@b.example\r\nSubject: {42}\r\n) UID 99\r\n\r\n"
    line = b"12 FETCH (RFC822.SIZE 2048 BODY[] {%d}\r\n%s UID 345)" % (len(body), body)
    assert parse_fetch(line) == (345, 2048, body)
    assert parse_fetch(b"3 FETCH (UID 7 BODY[HEADER.FIELDS (FROM)] {0}\r\n)") == (7, None, b"")
    assert parse_fetch(b'3 FETCH (UID 7 BODY[HEADER.FIELDS (FROM)] "")') == (7, None, b"")
    # Another client's flag change arrives unasked: no body, and never mistaken for one.
    assert parse_fetch(b"4 FETCH (FLAGS (\\Seen) UID 8)") == (8, None, None)
    assert parse_fetch(b"5 EXISTS") is None


def test_list_lines_give_names_and_attributes() -> None:
    assert parse_list_line(b'LIST (\\HasNoChildren \\Sent) "/" "Sent Items"') == ListedFolder(
        "Sent Items", frozenset({"\\hasnochildren", "\\sent"}))
    assert parse_list_line(b"LIST () NIL {8}\r\nEntw&APw-") == ListedFolder(
        "Entwü", frozenset())
    assert parse_list_line(b"LIST broken") is None
    assert encode_mailbox("Entwürfe") == b'"Entw&APw-rfe"'
    assert encode_mailbox("inbox") == b"INBOX"


def test_the_sent_folder_is_found_by_special_use_then_by_name() -> None:
    def folders(*specs: tuple[str, str]) -> list[ListedFolder]:
        return [ListedFolder(name, frozenset(attrs.split())) for name, attrs in specs]

    assert find_sent(folders(("Sent", ""), ("Gesendet", "\\sent"))) == (
        "Gesendet", "SPECIAL-USE \\Sent")
    assert find_sent(folders(("INBOX.Sent Items", ""))) == ("INBOX.Sent Items", "its name")
    assert find_sent(folders(("[Gmail]/Sent Mail", ""))) == ("[Gmail]/Sent Mail", "its name")
    assert find_sent(folders(("Sent", "\\noselect"), ("Archive", ""))) is None
    plan = plan_folders(["INBOX", "Sent"], folders(("Sent", "\\sent")))
    assert plan.folders == ("INBOX", "Sent")


def test_refusals_keep_the_response_code_and_dates_ignore_the_locale() -> None:
    refusal = ImapNo("LOGIN", "[AUTHENTICATIONFAILED] Authentication failed.")
    assert (refusal.code, str(refusal)) == (
        "AUTHENTICATIONFAILED", "LOGIN: [AUTHENTICATIONFAILED] Authentication failed.")
    assert ImapNo("EXAMINE x", "Mailbox doesn't exist").code is None
    assert capabilities_of([b"CAPABILITY IMAP4rev1 IDLE special-use"]) == {
        "IMAP4REV1", "IDLE", "SPECIAL-USE"}
    assert imap_date(datetime(2026, 3, 4, 23, 59, tzinfo=UTC)) == "4-Mar-2026"
