"""Without a Message-ID, the dedupe key is a fingerprint that survives transport changes."""

from datetime import UTC, datetime
from pathlib import Path

from gateway.mail.fingerprint import fingerprint
from gateway.mail.parse import Address, parse_message

FIXTURES = Path(__file__).parent / "fixtures" / "eml"


def key(name: str) -> str:
    return parse_message((FIXTURES / name).read_bytes()).key


def test_key_is_a_fingerprint_when_there_is_no_message_id() -> None:
    email = parse_message((FIXTURES / "no_message_id.eml").read_bytes())
    assert email.message_id is None
    assert email.key.startswith("fp:")
    assert len(email.key) == len("fp:") + 64


def test_fingerprint_is_stable_across_reparsing() -> None:
    assert key("no_message_id.eml") == key("no_message_id.eml")


def test_fingerprint_ignores_folding_whitespace_line_ends_and_zone() -> None:
    # Refolded Subject/From/To, CRLF, reordered fields, QP body with trailing blanks, and
    # the same instant written in another zone.
    assert key("no_message_id_refolded.eml") == key("no_message_id.eml")


def test_fingerprint_differs_for_a_different_body() -> None:
    assert key("no_message_id_other_body.eml") != key("no_message_id.eml")


def test_fingerprint_covers_each_field() -> None:
    date = datetime(2024, 3, 5, 9, tzinfo=UTC)
    sender = Address("rep@crm.example", "Rep")
    to = (Address("a@x.example", None),)
    base = fingerprint(date, None, sender, to, "Offer", "body")
    variants = [
        fingerprint(date.replace(hour=10), None, sender, to, "Offer", "body"),
        fingerprint(date, None, Address("other@crm.example", None), to, "Offer", "body"),
        fingerprint(date, None, sender, (Address("b@x.example", None),), "Offer", "body"),
        fingerprint(date, None, sender, to, "Offer 2", "body"),
        fingerprint(date, None, sender, to, "Offer", "body 2"),
        fingerprint(None, "garbled date", sender, to, "Offer", "body"),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_fingerprint_ignores_display_names_and_to_order() -> None:
    date = datetime(2024, 3, 5, 9, tzinfo=UTC)
    a, b = Address("a@x.example", "A"), Address("b@x.example", None)
    assert fingerprint(date, None, a, (a, b), "s", "t") == fingerprint(
        date, None, Address("a@x.example", None), (b, a), "s", "t"
    )


def test_html_only_message_is_fingerprinted_by_its_html() -> None:
    one = parse_message(b"Subject: s\nContent-Type: text/html\n\n<p>one</p>\n")
    two = parse_message(b"Subject: s\nContent-Type: text/html\n\n<p>two</p>\n")
    assert one.key != two.key
