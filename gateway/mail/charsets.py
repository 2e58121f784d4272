"""Decode bytes labelled with a MIME charset to text, never raising.

Mail in the wild mislabels its charset: parts labelled utf-8 that are really latin-1 or
cp1252, us-ascii with 8-bit bytes, labels Python does not know ("x-unknown", "unknown-8bit").
`decode_text` returns the best text it can, plus a human-readable note whenever it had to
guess. The order of attempts is:

1. the declared charset, strictly (widened to its superset, as browsers do);
2. utf-8, strictly (RFC 6532 makes utf-8 the default for 8-bit mail);
3. text that is mostly valid utf-8 keeps it, and its stray bytes are read as cp1252;
4. text whose 8-bit bytes are rare among its letters (Western European) is read as cp1252;
5. otherwise, when allowed, a charset detector (useless on short strings, so not for headers);
6. finally cp1252, bytes it leaves undefined as latin-1.

The result never holds lone surrogates or NUL characters (PostgreSQL text refuses NUL).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header

import charset_normalizer

# WHATWG Encoding Standard: mailers that say the left-hand charset emit the right-hand one.
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
}
# Codecs Python has but no mail charset means; unicode-escape could even forge surrogates.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})
# Without a byte-order mark these are never a plausible guess for mail text.
_IMPLAUSIBLE_GUESSES = ("utf_16", "utf_32")

_SURROGATE = re.compile("[\ud800-\udfff]")
_VALID_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")
_ASCII_LETTER = re.compile(rb"[A-Za-z]")
# Above this share of 8-bit bytes among letters the text is not Western European
# (Cyrillic, Greek or CJK in a legacy charset), and cp1252 would be mojibake.
_WESTERN_MAX_EIGHT_BIT_SHARE = 0.3
_SAMPLE_BYTES = 64 * 1024


def _cp1252_or_latin1(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d are undefined in cp1252
        return chr(byte)


# surrogateescape turns each undecodable byte b into U+DC00+b; this maps it back to cp1252.
_ESCAPED_TO_CP1252 = {0xDC00 + b: _cp1252_or_latin1(b) for b in range(0x80, 0x100)}


@dataclass(frozen=True)
class Decoded:
    """Decoded text and, when the bytes did not match their label, a note saying so."""

    text: str
    note: str | None = None


def codec_for(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when unknown or not a charset."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except (LookupError, ValueError):  # ValueError: the label holds a NUL
        return None
    if name in _NOT_CHARSETS:
        return None
    return _SUPERSETS.get(name, name)


def decode_text(data: bytes, charset: str | None, *, detect: bool = False) -> Decoded:
    """Decode `data` labelled `charset` (None: unlabelled); see the module docstring."""
    codec = codec_for(charset)
    if codec is not None:
        text = _strict(data, codec)
        if text is not None:
            return _clean(Decoded(text))
    if data.isascii():
        return _clean(Decoded(data.decode("ascii")))
    label = f"labelled {charset!r}" if charset else "unlabelled 8-bit text"
    text = _strict(data, "utf-8")
    if text is not None:
        note = None if charset is None else f"{label} but decoded as utf-8"
        return _clean(Decoded(text, note))
    escaped = data.decode("utf-8", "surrogateescape")
    # The guesses look at a bounded sample, so a 50 MB body costs what 64 KiB does.
    sample = data[:_SAMPLE_BYTES]
    valid = len(_VALID_UTF8_MULTIBYTE.findall(sample))
    invalid = len(_SURROGATE.findall(sample.decode("utf-8", "surrogateescape")))
    if valid >= invalid:
        note = f"{label}: invalid utf-8 bytes read as cp1252"
        return _clean(Decoded(escaped.translate(_ESCAPED_TO_CP1252), note))
    if detect and not _looks_western(sample):
        guess = _detect(sample)
        text = None if guess is None else _strict(data, guess)
        if text is not None:
            return _clean(Decoded(text, f"{label} but detected as {guess}"))
    note = f"{label}: read as cp1252"
    return _clean(Decoded(escaped.translate(_ESCAPED_TO_CP1252), note))


def _strict(data: bytes, codec: str) -> str | None:
    try:
        text = data.decode(codec)
    except (UnicodeError, LookupError):  # LookupError: a codec that is not a text encoding
        return None
    # utf-7 and friends can yield lone surrogates, which no database or encoder accepts.
    return None if _SURROGATE.search(text) else text


def _looks_western(data: bytes) -> bool:
    eight_bit = len(_EIGHT_BIT.findall(data))
    letters = len(_ASCII_LETTER.findall(data)) + eight_bit
    return eight_bit <= _WESTERN_MAX_EIGHT_BIT_SHARE * letters


def _detect(sample: bytes) -> str | None:
    best = charset_normalizer.from_bytes(sample).best()
    if best is None or best.encoding.startswith(_IMPLAUSIBLE_GUESSES):
        return None
    return best.encoding


def _clean(decoded: Decoded) -> Decoded:
    text = decoded.text.removeprefix("\ufeff")
    if "\x00" not in text:
        return Decoded(text, decoded.note)
    note = "NUL characters removed" if decoded.note is None else decoded.note + "; NUL removed"
    return Decoded(text.replace("\x00", ""), note)


def decode_words(value: str) -> tuple[str, list[str]]:
    """Decode the RFC 2047 encoded-words of an unfolded header value; returns text and notes.

    ``email.header.decode_header`` splits the words, drops the whitespace between adjacent
    encoded words (RFC 2047 section 6.2) and joins adjacent words of one charset before they
    are decoded (encoders split multi-byte characters across words); each run's bytes are then
    decoded leniently by `decode_text`. Never raises: an undecodable value stays as it came.
    """
    try:
        parts = decode_header(value)
    except (HeaderParseError, ValueError):  # bad base64 in a B word
        return value, ["undecodable encoded-word left as it came"]
    out: list[str] = []
    notes: list[str] = []
    for data, charset in parts:
        if isinstance(data, str):  # no encoded-word at all
            out.append(data)
        elif charset is None:  # text between words, handed back raw-unicode-escape encoded
            out.append(data.decode("raw-unicode-escape"))
        else:
            decoded = decode_text(data, charset.partition("*")[0])  # "utf-8*en": RFC 2231
            out.append(decoded.text)
            if decoded.note:
                notes.append(f"encoded-word {decoded.note}")
    return "".join(out), notes
