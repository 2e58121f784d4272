"""Bodies and attachments: transfer encodings, alternatives, inline images, attached mail."""

# ruff: noqa: RUF001 - these tests are about non-ASCII text (dashes, quotes, Cyrillic).

from pathlib import Path

from gateway.mail.parse import ParsedAttachment, ParsedEmail, parse_message

FIXTURES = Path(__file__).parent / "fixtures" / "eml"
PNG_PREFIX = b"\x89PNG\r\n\x1a\n"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def parse(name: str) -> ParsedEmail:
    return parse_message((FIXTURES / name).read_bytes())


def test_quoted_printable_text_and_base64_html_from_one_alternative() -> None:
    email = parse("qp_text_base64_html_alternative.eml")
    # The QP text has soft line breaks and =C3=BC escapes; the preamble is not body.
    assert email.text == (
        "Sehr geehrte Frau Müller, anbei das Angebot für das Projekt in Köln; "
        "wir bitten um Rückmeldung bis Freitag. Vielen Dank!"
    )
    assert email.html == (
        "<html><body><p>Sehr geehrte Frau M&uuml;ller, <b>anbei</b> das Angebot – 1.200 €.</p>"
        "</body></html>"
    )
    assert email.attachments == ()
    assert email.defects == ()


def test_crlf_in_bodies_becomes_lf() -> None:
    email = parse("charset_declared_koi8r_iso2022jp.eml")  # the file has CRLF line ends
    assert email.text is not None and "\r" not in email.text


def test_inline_image_keeps_its_content_id() -> None:
    email = parse("inline_image_and_attached_message.eml")
    assert email.text == "See our offer."
    assert email.html == '<p>See our offer. <img src="cid:logo@crm.example"></p>'
    logo = email.attachments[0]
    assert logo.content_id == "logo@crm.example"
    assert logo.inline  # no disposition, but a Content-ID the html refers to
    assert logo.content_type == "image/png"
    assert logo.filename == "attachment-1.png"
    assert logo.data.startswith(PNG_PREFIX)


def test_attached_message_is_kept_as_raw_bytes_and_not_read_as_body() -> None:
    email = parse("inline_image_and_attached_message.eml")
    attached = email.attachments[1]
    assert (attached.filename, attached.content_type, attached.inline) == (
        "message-2.eml",
        "message/rfc822",
        False,
    )
    assert attached.data.startswith(b"From: Buyer <buyer@customer.example>\n")
    inner = parse_message(attached.data)
    assert (inner.subject, inner.text) == ("Original request", "Please send an offer.")
    assert "Please send an offer." not in (email.text or "")


def test_attachment_filenames_are_decoded_and_stripped_of_directories() -> None:
    email = parse("inline_image_and_attached_message.eml")
    names = [attachment.filename for attachment in email.attachments]
    # RFC 2231 (percent-encoded utf-8), RFC 2047 inside a name parameter, a path, and none.
    assert names[2:] == ["Angebot Müller.pdf", "Gruß.png", "passwd", "attachment-6.png"]
    assert email.attachments[2] == ParsedAttachment(
        "Angebot Müller.pdf", "application/pdf", PDF, inline=False, content_id=None
    )
    assert [attachment.inline for attachment in email.attachments[3:]] == [True, False, False]


def test_apple_mail_text_split_around_an_image_is_joined() -> None:
    email = parse("apple_mail_split_text.eml")
    assert email.text == "Hello,\nhere is the plan:\n\n\nRegards"
    assert email.html == "<html><body>Hello,<br>here is the plan:<br>\n<br>Regards</body></html>"
    assert [(a.filename, a.inline) for a in email.attachments] == [("plan.png", True)]


def test_text_parts_outside_an_alternative_are_concatenated_in_order() -> None:
    email = parse("mixed_text_parts_and_footer.eml")
    assert email.text == "First part.\nSecond part.\n-- \nmailing list footer"
    assert email.html is None


def test_a_named_or_attachment_text_part_is_an_attachment_not_body() -> None:
    email = parse("mixed_text_parts_and_footer.eml")
    notes = email.attachments[1]
    assert (notes.filename, notes.content_type, notes.data) == (
        "notes.txt",
        "text/plain",
        b"Attached notes, not body.",
    )


def test_alternative_takes_one_rendering_of_each_kind() -> None:
    email = parse("invitation_alternative.eml")
    assert email.text == "You are invited."  # the second, redundant text/plain is dropped
    assert email.html == "<p>You are <i>invited</i>.</p>"
    [invite] = email.attachments
    assert (invite.filename, invite.content_type) == ("attachment-1.ics", "text/calendar")
    assert invite.data.startswith(b"BEGIN:VCALENDAR\r\n")


def test_digest_parts_default_to_attached_messages() -> None:
    email = parse("digest.eml")
    assert email.text is None
    assert [(a.filename, a.content_type) for a in email.attachments] == [
        ("message-1.eml", "message/rfc822"),
        ("message-2.eml", "message/rfc822"),
    ]
    assert parse_message(email.attachments[1].data).subject == "two"


def test_html_only_message_has_no_text() -> None:
    email = parse_message(b"Content-Type: text/html; charset=utf-8\n\n<p>hi</p>\n")
    assert (email.text, email.html) == (None, "<p>hi</p>\n")


def test_single_part_attachment_message() -> None:
    raw = b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n"
    email = parse_message(raw)
    assert email.text is None
    assert email.attachments == (
        ParsedAttachment("attachment-1.pdf", "application/pdf", b"%PDF-", False, None),
    )
