"""Malformed MIME never raises: the rest of the message survives and defects say why."""

from pathlib import Path

import pytest

from gateway.mail.parse import Address, ParsedEmail, parse_message

FIXTURES = Path(__file__).parent / "fixtures" / "eml"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def parse(name: str) -> ParsedEmail:
    return parse_message((FIXTURES / name).read_bytes())


def test_missing_closing_boundary_keeps_the_last_part() -> None:
    email = parse("malformed_missing_closing_boundary.eml")
    assert email.text == "The text part."
    [pdf] = email.attachments
    assert (pdf.filename, pdf.data) == ("offer.pdf", PDF)
    assert email.defects == ("message: closing boundary missing",)


def test_bad_base64_padding_is_repaired() -> None:
    email = parse("malformed_bad_base64_padding.eml")
    assert email.text == "Grüße, the text survives"
    [data] = email.attachments
    assert data.data.startswith(b"abcdefg")
    assert email.defects == (
        "part 1: base64 padding repaired",
        "part 2: base64 padding repaired",
    )


def test_message_without_headers_is_all_body() -> None:
    email = parse("malformed_no_headers.eml")
    assert email.text == "Just some text someone piped into sendmail.\nSecond line.\n"
    assert (email.sender, email.subject, email.date, email.message_id) == (None, "", None, None)
    assert email.key.startswith("fp:")
    assert email.defects == ("message: no header block",)


def test_invalid_header_bytes_are_decoded_or_skipped() -> None:
    email = parse("malformed_invalid_header_bytes.eml")
    assert email.sender == Address("joerg@example.de", "Jörg Müller")  # raw utf-8 (RFC 6532)
    assert email.to == (Address("francois@example.fr", "François"),)  # raw latin-1
    assert email.subject == "Présentation du projet ÿ"  # and a NUL removed
    assert email.date is None
    # The field with a broken name is skipped, not taken for the start of the body.
    assert email.text == "Body survives.\n"
    assert email.defects == (
        "message: header field with an invalid name skipped: b'X-Broken\\xff: value\\n'",
        "message: to field: unlabelled 8-bit text: read as cp1252",
        "message: subject field: unlabelled 8-bit text: read as cp1252; NUL removed",
        "date: unparsable 'sometime last week'",
    )


def test_no_content_type_means_text_plain() -> None:
    email = parse("malformed_no_content_type.eml")
    assert email.text == "Plain utf-8 body without any Content-Type: Grüße.\n"
    assert email.defects == ()


@pytest.mark.parametrize(
    ("fixture", "text", "defect"),
    [
        (
            "malformed_header_block_not_ended.eml",
            "This line is body, the empty line before it was left out.\nMore body.\n",
            "message: header block not ended by an empty line",
        ),
        (
            "malformed_multipart_without_boundary.eml",
            "The sender forgot the boundary.\n",
            "message: multipart without a boundary; read as text",
        ),
        (
            "malformed_boundary_never_found.eml",
            "No delimiter line at all.\n",
            "message: multipart boundary never found; read as text",
        ),
        (
            "malformed_unknown_transfer_encoding.eml",
            "kept as is\n",
            "part 1: unknown Content-Transfer-Encoding 'x-gzip64'; kept as is",
        ),
        (
            "malformed_invalid_content_type.eml",
            "Read as text/plain.\n",
            "message: invalid Content-Type 'text'; read as text/plain",
        ),
    ],
)
def test_malformed_structure_is_read_as_text(fixture: str, text: str, defect: str) -> None:
    email = parse(fixture)
    assert email.text == text
    assert email.defects == (defect,)
    assert email.subject  # the headers survived too


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n",
        b"\r\n\r\n",
        b"\x00" * 16,
        b"Subject: only headers",
        b" continuation first\nSubject: x\n\nbody",
        b"Content-Type: multipart/mixed; boundary=\xff\xfe\n\n--\xff\xfe\n\nx\n--\xff\xfe--\n",
        b'Content-Type: multipart/mixed; boundary=""\n\nbody\n',
        b"Content-Type: multipart/mixed; boundary=b\n\n--b--\n",
        b"Content-Type: text/plain; charset*=utf\x00''x\n\nbody\n",
        b"Content-Type: text/plain; charset*=%00''x\n\nbody\n",
        b"Content-Type: application/pdf; name*=x\x00''%ff\nContent-Disposition: attachment\n\nx",
        b'Content-Type: text/plain; charset="\n\nbody\n',
        b"Content-Type: ;;;===\nContent-Disposition: ;=;\n\nbody\n",
        b'From: <@>, @, "" <>, a@\nDate: Mon, 99 Foo 99999 99:99:99 +9999\n\nx',
        b"Subject: =?utf-8?b?====?= =?utf-8?q?=ZZ?= =?\x00?q?x?= =?utf-8?x?y?=\n\n",
    ],
)
def test_hostile_inputs_do_not_raise(raw: bytes) -> None:
    email = parse_message(raw)
    assert isinstance(email, ParsedEmail)
    for text in (email.subject, email.text or "", email.html or ""):
        text.encode("utf-8")  # no lone surrogates


def test_unreadable_rfc2231_parameter_is_noted_not_raised() -> None:
    # The stdlib raises ValueError on a percent-encoded NUL in an RFC 2231 charset name.
    raw = b"Content-Type: application/pdf\nContent-Disposition: attachment; filename*0*=%00''x\n\nx"
    email = parse_message(raw)
    assert [a.filename for a in email.attachments] == ["attachment-1.pdf"]
    assert email.defects == ("message: unreadable filename parameter: embedded null character",)


def test_crlf_and_lf_messages_parse_alike() -> None:
    lf = (FIXTURES / "inline_image_and_attached_message.eml").read_bytes()
    crlf = parse_message(lf.replace(b"\n", b"\r\n"))
    plain = parse_message(lf)
    assert (crlf.text, crlf.html) == (plain.text, plain.html)
    assert [a.filename for a in crlf.attachments] == [a.filename for a in plain.attachments]
