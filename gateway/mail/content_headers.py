"""What an entity's Content-* fields say: type, charset, boundary, filename, disposition.

Parameter syntax (quoting, RFC 2231 continuations and charsets) is left to the stdlib's
compat32 `Message`, fed with values already decoded to text so that it never builds `Header`
objects. Its helpers raise ValueError on some malformed RFC 2231 charsets (a NUL in the
name), so each lookup is guarded and the failure noted.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from gateway.mail.charsets import decode_words
from gateway.mail.header_block import HeaderBlock

_PATH_SEPARATOR = re.compile(r"[/\\]")


@dataclass(frozen=True)
class ContentInfo:
    """The Content-* fields of one entity, defaults applied (RFC 2045 section 5.2)."""

    content_type: str  # lower-cased "type/subtype"
    charset: str | None
    boundary: bytes | None  # multipart only; None when missing or not ASCII
    filename: str | None  # decoded, without any directory part
    disposition: str | None  # lower-cased: "inline", "attachment", ...; None when absent
    content_id: str | None  # without angle brackets
    transfer_encoding: str  # lower-cased; "" when absent

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]


def describe_content(block: HeaderBlock, default_type: str) -> tuple[ContentInfo, list[str]]:
    """Interpret `block`'s Content-* fields; `default_type` applies when there is none."""
    notes: list[str] = []
    fields = Message()
    fields.set_default_type(default_type)
    declared = block.text("content-type")
    if declared is not None:
        fields["Content-Type"] = declared
    disposition = block.text("content-disposition")
    if disposition:
        fields["Content-Disposition"] = disposition
    # "text / plain" passes the stdlib's check with its blanks; no type holds blanks.
    content_type = "".join(fields.get_content_type().split())
    if declared is not None and "".join(declared.split(";", 1)[0].split()).lower() != content_type:
        # RFC 2045 section 5.2: an invalid Content-Type means text/plain.
        notes.append(f"invalid Content-Type {declared!r}; read as {content_type}")

    def guarded(what: str, lookup: Callable[[], str | None]) -> str | None:
        try:
            return lookup()
        except (ValueError, LookupError) as exc:
            notes.append(f"unreadable {what} parameter: {exc}")
            return None

    boundary = None
    if content_type.startswith("multipart/"):
        boundary = guarded("boundary", fields.get_boundary)
    encoding = (block.text("content-transfer-encoding") or "").split(";", 1)[0]
    info = ContentInfo(
        content_type=content_type,
        charset=guarded("charset", fields.get_content_charset),
        boundary=_ascii(boundary, notes),
        filename=_filename(guarded("filename", fields.get_filename), notes),
        disposition=fields.get_content_disposition(),
        content_id="".join((block.text("content-id") or "").split()).strip("<>") or None,
        transfer_encoding=encoding.strip().strip("\"'").lower(),
    )
    return info, notes


def _ascii(boundary: str | None, notes: list[str]) -> bytes | None:
    if not boundary:
        return None
    if not boundary.isascii():
        notes.append(f"non-ASCII multipart boundary {boundary!r}")
        return None
    return boundary.encode("ascii")


def _filename(value: str | None, notes: list[str]) -> str | None:
    if value is None:
        return None
    # RFC 2047 inside a quoted filename is not allowed, but it is what Outlook sends.
    decoded, word_notes = decode_words(value)
    notes.extend(f"filename {note}" for note in word_notes)
    # The name is served back on download: keep neither directories nor control characters.
    base = _PATH_SEPARATOR.split(decoded)[-1]
    cleaned = "".join(ch for ch in base if unicodedata.category(ch) != "Cc").strip()
    return cleaned or None
