"""Header fields: RFC 2047 text, addresses, Message-ID, Date and bulk mail detection."""

# ruff: noqa: RUF001 - these tests are about non-ASCII text (dashes, quotes, Cyrillic).

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.mail.parse import (
    Address,
    ParsedEmail,
    normalise_message_id,
    parse_headers,
    parse_message,
)

FIXTURES = Path(__file__).parent / "fixtures" / "eml"


def parse(name: str) -> ParsedEmail:
    return parse_message((FIXTURES / name).read_bytes())


def test_rfc2047_subject_is_decoded_across_words_charsets_and_folds() -> None:
    # The first two words split "ö" between them; the third is ISO-8859-1.
    email = parse("rfc2047_subject_and_names.eml")
    assert email.subject == "Re: Grüße aus Köln – Angebot 2024 und café gratis"
    assert email.defects == ()


def test_rfc2047_display_names_and_lowercased_addresses() -> None:
    email = parse("rfc2047_subject_and_names.eml")
    assert email.sender == Address("pirard@vm1.ulg.ac.be", "André Pirard")
    assert email.to == (
        Address("hans.mueller@example.de", "Müller, Hans"),
        Address("keld@dkuug.dk", "Keld Jørn Simonsen"),
    )
    # "undisclosed-recipients:;" is an empty group, not an address.
    assert email.cc == (Address("moore@cs.utk.edu", "Keith Moore"),)
    assert email.bcc == (Address("log@crm.example", None),)
    assert email.reply_to == (Address("zhang@example.cn", "张三"),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<ABC@Example.COM>", "abc@example.com"),
        ("  <ABC@Example.COM>  ", "abc@example.com"),
        ("<ABC@\r\n Example.COM>", "abc@example.com"),
        ("ABC@Example.COM", "abc@example.com"),
        ("<abc@example.com> (comment) <second@example.com>", "abc@example.com"),
        ("<>", None),
        ("   ", None),
        ("", None),
        (None, None),
    ],
)
def test_message_id_normalisation(value: str | None, expected: str | None) -> None:
    assert normalise_message_id(value) == expected


@pytest.mark.parametrize("fixture", ["message_id_mixed_case.eml", "message_id_folded.eml"])
def test_message_id_is_the_dedupe_key(fixture: str) -> None:
    email = parse(fixture)
    assert email.message_id == "abc@example.com"
    assert email.key == "mid:abc@example.com"


def test_date_is_aware_utc() -> None:
    email = parse("rfc2047_subject_and_names.eml")
    assert email.date == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
    assert email.date is not None and email.date.tzinfo is UTC


def test_date_without_zone_is_taken_as_utc() -> None:
    summary = parse_headers(b"Date: Tue, 05 Mar 2024 10:00:00 -0000\r\n\r\n")
    assert summary.date == datetime(2024, 3, 5, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", ["sometime last week", "Tue, 35 Mar 2024 10:00:00 +0000", ""])
def test_unparsable_date_is_none(value: str) -> None:
    assert parse_headers(f"Date: {value}\n\n".encode()).date is None


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("bulk_list_id.eml", "List-Id: Sales team <sales.lists.example.com>"),
        ("bulk_precedence_bulk.eml", "Precedence: bulk"),
        ("bulk_auto_replied.eml", "Auto-Submitted: auto-replied"),
        ("not_bulk_auto_submitted_no.eml", None),
        ("rfc2047_subject_and_names.eml", None),
    ],
)
def test_bulk_detection(fixture: str, reason: str | None) -> None:
    email = parse(fixture)
    assert email.bulk_reason == reason
    assert email.is_bulk is (reason is not None)


@pytest.mark.parametrize("value", ["list", "junk", " JUNK "])
def test_precedence_list_and_junk_are_bulk(value: str) -> None:
    assert parse_headers(f"Precedence: {value}\n\n".encode()).is_bulk


def test_parse_headers_summarises_without_reading_the_body() -> None:
    raw = (FIXTURES / "rfc2047_subject_and_names.eml").read_bytes()
    header_block = raw[: raw.index(b"\n\n") + 2]
    summary = parse_headers(header_block + b"From: evil@example.org\n")
    full = parse_message(raw)
    assert summary.sender == full.sender
    assert (summary.to, summary.cc, summary.bcc) == (full.to, full.cc, full.bcc)
    assert (summary.subject, summary.date, summary.message_id) == (
        full.subject,
        full.date,
        full.message_id,
    )
    assert parse_headers(raw) == summary


def test_parse_headers_detects_bulk() -> None:
    summary = parse_headers((FIXTURES / "bulk_list_id.eml").read_bytes())
    assert summary.is_bulk
    assert summary.bulk_reason == "List-Id: Sales team <sales.lists.example.com>"


def test_several_to_fields_are_merged_and_duplicates_dropped() -> None:
    summary = parse_headers(b"To: a@x.org, B@X.org\nTo: b@x.org, c@x.org\n\n")
    assert [address.email for address in summary.to] == ["a@x.org", "b@x.org", "c@x.org"]


def test_address_without_domain_is_dropped_with_a_note() -> None:
    summary = parse_headers(b"To: postmaster, ok@example.org\n\n")
    assert summary.to == (Address("ok@example.org", None),)
    assert "to: address without domain dropped: 'postmaster'" in summary.defects


def test_encoded_comma_in_a_name_does_not_split_the_address() -> None:
    summary = parse_headers(b"From: =?utf-8?Q?Doe=2C_J=C3=BCrgen?= <jd@example.org>\n\n")
    assert summary.sender == Address("jd@example.org", "Doe, Jürgen")
