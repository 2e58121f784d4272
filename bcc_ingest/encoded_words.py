"""RFC 2047 encoded-word decoding for header text, never raising.

Unlike `email.header.decode_header`, this decodes each word's charset leniently (see
`charsets.decode_text`), joins adjacent words of one charset *before* decoding them, because
encoders split multi-byte characters across words, and drops the whitespace between adjacent
encoded words as RFC 2047 section 6.2 requires.
"""

from __future__ import annotations

import binascii
import re

from bcc_ingest.charsets import decode_text
from bcc_ingest.transfer_encoding import decode_base64

# charset, optional RFC 2231 language ("utf-8*en"), encoding, text. Encoded text never holds
# "?"; spaces are not allowed in it either, but some mailers put them there, so they pass.
_ENCODED_WORD = re.compile(r"=\?([^?*\s]+)(?:\*[^?]*)?\?([bBqQ])\?([^?]*)\?=")


def decode_words(value: str) -> tuple[str, list[str]]:
    """Decode the encoded-words in an unfolded header value; returns text and notes."""
    out: list[str] = []
    notes: list[str] = []
    run_charset: str | None = None
    run: list[bytes] = []

    def flush() -> None:
        if run:
            decoded = decode_text(b"".join(run), run_charset)
            out.append(decoded.text)
            if decoded.note:
                notes.append(f"encoded-word {decoded.note}")
            run.clear()

    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        if between and not (run and between.isspace()):
            flush()
            out.append(between)
        charset, encoding, text = match.groups()
        if charset.lower() != (run_charset or "").lower():
            flush()
            run_charset = charset
        run.append(_decode_word(encoding, text))
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out), notes


def _decode_word(encoding: str, text: str) -> bytes:
    data = text.encode("utf-8")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    return decode_base64(data)[0]  # unpadded B words are common enough not to be noted
