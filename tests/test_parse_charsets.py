"""Body text comes out as Unicode whatever the charset label says, and never raises."""

# ruff: noqa: RUF001 - these tests are about non-ASCII text (dashes, quotes, Cyrillic).

from pathlib import Path

import pytest

from gateway.mail.charsets import decode_text
from gateway.mail.parse import ParsedEmail, parse_message

FIXTURES = Path(__file__).parent / "fixtures" / "eml"


def parse(name: str) -> ParsedEmail:
    return parse_message((FIXTURES / name).read_bytes())


@pytest.mark.parametrize(
    ("fixture", "text", "defect"),
    [
        (
            "charset_utf8_label_latin1_bytes.eml",
            "Grüße aus Köln, wir freuen uns über Ihr Angebot. Café crème à la française.\n",
            "labelled 'utf-8': read as cp1252",
        ),
        (
            "charset_utf8_label_cp1252_bytes_qp.eml",
            "Price: 1.200 € – “final” offer, we’re flexible… Señor Muñoz.\n",
            "labelled 'utf-8': read as cp1252",
        ),
        (
            "charset_us_ascii_label_utf8_bytes.eml",
            "Zürich, naïve résumé — 東京 ✓\n",
            "labelled 'us-ascii' but decoded as utf-8",
        ),
        (
            "charset_us_ascii_label_latin1_bytes.eml",
            "Señor Muñoz, la reunión es mañana a las 10.\n",
            "labelled 'us-ascii': read as cp1252",
        ),
        (
            "charset_x_unknown.eml",
            "Ελληνικά, Русский, Deutsch: Grüße",
            "labelled 'x-unknown' but decoded as utf-8",
        ),
        (
            "charset_utf8_label_cp1251_bytes.eml",
            "Здравствуйте, Иван Петрович! Отправляю вам коммерческое предложение на поставку "
            "оборудования. Просим рассмотреть его до конца недели и сообщить о решении.\n",
            "labelled 'utf-8' but detected as cp1251",
        ),
    ],
)
def test_mislabelled_body_is_decoded_and_noted(fixture: str, text: str, defect: str) -> None:
    email = parse(fixture)
    assert email.text == text
    assert f"part 1: {defect}" in email.defects
    assert email.truncated is None


def test_declared_legacy_charsets_are_honoured_without_defects() -> None:
    email = parse("charset_declared_koi8r_iso2022jp.eml")
    assert email.text == "Добрый день! Счёт во вложении."
    assert email.subject == "見積書の送付"
    assert email.defects == ()


def test_unknown_charset_in_an_encoded_word_is_decoded() -> None:
    email = parse("charset_x_unknown.eml")
    assert email.subject == "Grüße from an unknown charset"
    assert "subject: encoded-word labelled 'x-unknown' but decoded as utf-8" in email.defects


def test_mostly_utf8_text_keeps_utf8_and_reads_stray_bytes_as_cp1252() -> None:
    # A utf-8 reply quoting a latin-1 line: neither charset alone reads it whole.
    decoded = decode_text("Grüße – ".encode() + "café".encode("latin-1"), "utf-8")
    assert decoded.text == "Grüße – café"
    assert decoded.note == "labelled 'utf-8': invalid utf-8 bytes read as cp1252"


def test_latin1_label_means_windows_1252_as_mailers_mean_it() -> None:
    assert decode_text(b"\x80 10", "ISO-8859-1") == decode_text("€ 10".encode(), "utf-8")


def test_gb2312_label_reads_gbk_characters() -> None:
    text = "镕"  # in GBK, not in GB2312
    assert decode_text(text.encode("gbk"), "gb2312").text == text


def test_pure_ascii_under_an_unknown_label_needs_no_note() -> None:
    assert decode_text(b"plain", "x-unknown").note is None


@pytest.mark.parametrize("label", ["unicode_escape", "raw_unicode_escape", "idna", "base64"])
def test_codecs_that_are_not_charsets_are_not_used(label: str) -> None:
    # unicode_escape would turn the text "\ud800" into a lone surrogate.
    assert decode_text(b"\\ud800 ok", label).text == "\\ud800 ok"


def test_utf7_lone_surrogate_falls_back_instead_of_leaking_it() -> None:
    decoded = decode_text(b"+2AA- \xe9", "utf-7")
    assert decoded.text == "+2AA- é"
    decoded.text.encode("utf-8")


def test_nul_characters_are_removed_and_noted() -> None:
    decoded = decode_text(b"a\x00b", "us-ascii")
    assert decoded.text == "ab"
    assert decoded.note == "NUL characters removed"


def test_utf8_byte_order_mark_is_dropped() -> None:
    assert decode_text(b"\xef\xbb\xbfHello", "utf-8").text == "Hello"
