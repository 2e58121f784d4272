"""Content-Transfer-Encoding decoding (RFC 2045 section 6), never raising."""

from __future__ import annotations

import binascii
import re

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_IDENTITY = frozenset({"", "7bit", "8bit", "binary"})


def decode_transfer(body: bytes, encoding: str) -> tuple[bytes, str | None]:
    """Decode `body` sent with `encoding` (lower-cased); returns the bytes and a note.

    An unknown encoding keeps the body as it came, with a note: losing it would be worse.
    """
    if encoding in _IDENTITY:
        return body, None
    if encoding == "quoted-printable":
        # a2b_qp is lenient: a malformed "=XY" stays as it is, as RFC 2045 6.7 (1) suggests.
        return binascii.a2b_qp(body), None
    if encoding == "base64":
        return decode_base64(body)
    return body, f"unknown Content-Transfer-Encoding {encoding!r}; kept as is"


def decode_base64(body: bytes) -> tuple[bytes, str | None]:
    """Decode base64 leniently; returns the bytes and a note when padding was repaired."""
    try:
        # Not strict: line breaks and other non-alphabet bytes are skipped (RFC 2045 6.8).
        return binascii.a2b_base64(body), None
    except binascii.Error:
        pass
    # Damaged padding or a truncated last group: drop a lone trailing character and repad.
    data = _NOT_BASE64.sub(b"", body)
    if len(data) % 4 == 1:
        data = data[:-1]
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4)), "base64 padding repaired"
