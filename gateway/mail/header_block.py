"""Split an entity's header block off its body, on bytes, never raising.

The stdlib parser is not used for this: it decodes header bytes as ASCII with surrogate
escapes and hands back `Header` objects for 8-bit values, while we want the raw bytes so that
`charsets.decode_text` can read them as utf-8 (RFC 6532) or cp1252.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.mail.charsets import decode_text

# RFC 5322 section 3.6.8 field name; obsolete syntax (section 4.5) allows blanks before ":".
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
# A field whose name holds bytes RFC 5322 forbids (8-bit, controls): skipped, not the body.
_BROKEN_FIELD = re.compile(rb"[^\s:]{1,76}[ \t]*:")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class HeaderBlock:
    """The header fields of one MIME entity, in order, and where its body starts."""

    fields: tuple[tuple[str, bytes], ...]  # (lower-cased name, raw value, still folded)
    body_start: int
    defects: tuple[str, ...] = ()
    # name -> values, so that a block of 100,000 fields is not scanned once per lookup
    _by_name: dict[str, list[bytes]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, list[bytes]] = {}
        for name, value in self.fields:
            by_name.setdefault(name, []).append(value)
        object.__setattr__(self, "_by_name", by_name)  # frozen: set once, here

    def raw_values(self, name: str) -> list[bytes]:
        """Every raw value of the field `name` (case-insensitive), in order."""
        return list(self._by_name.get(name.lower(), ()))

    def texts(self, name: str) -> list[str]:
        """Every value of `name`, unfolded and decoded (not RFC 2047 decoded), in order."""
        return [unfold(value) for value in self.raw_values(name)]

    def text(self, name: str) -> str | None:
        """The first value of `name`, as `texts` gives it; None when the field is absent."""
        values = self.raw_values(name)
        return unfold(values[0]) if values else None


def unfold(value: bytes) -> str:
    """Unfold (RFC 5322 section 2.2.3) and decode a raw field value; strips outer blanks."""
    return decode_text(_LINE_BREAK.sub(b"", value).strip(), None).text


def read_header_block(raw: bytes, start: int, end: int) -> HeaderBlock:
    """Read the header fields of the entity `raw[start:end]`.

    The block ends at the first empty line. A line that is neither a field nor a
    continuation also ends it (the empty line was left out) and starts the body, as the
    stdlib's feed parser does; a field whose name holds invalid bytes is skipped instead.
    Both are noted as defects, as are values that are neither ASCII nor utf-8.
    """
    # Each field's lines are joined once at the end: appending to bytes per continuation
    # line made a field folded over 80,000 lines take seconds.
    fields: list[tuple[str, list[bytes]]] = []
    defects: list[str] = []
    pos = start
    body_start = end
    while pos < end:
        newline = raw.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline + 1
        line = raw[pos:line_end]
        if not line.rstrip(b"\r\n"):
            body_start = line_end
            break
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1][1].append(line)
            else:
                defects.append("header block starts with a continuation line; ignored")
        elif (match := _FIELD.match(line)) is not None:
            fields.append((match.group(1).decode("ascii").lower(), [line[match.end() :]]))
        elif pos == start and line.startswith(b"From "):
            pass  # an mbox envelope line, as an exported .eml may keep
        elif _BROKEN_FIELD.match(line):
            defects.append(f"header field with an invalid name skipped: {line[:40]!r}")
            fields.append(("", []))  # swallows its continuation lines
        else:
            defects.append(
                "header block not ended by an empty line" if fields else "no header block"
            )
            body_start = pos
            break
        pos = line_end
    return _block([(name, b"".join(lines)) for name, lines in fields], body_start, defects)


def _block(fields: list[tuple[str, bytes]], body_start: int, defects: list[str]) -> HeaderBlock:
    for name, value in fields:
        # Only 8-bit bytes that are not utf-8 (RFC 6532 allows it) or a NUL need a guess.
        if name and (not value.isascii() or b"\x00" in value):
            note = decode_text(value, None).note
            if note:
                defects.append(f"{name} field: {note}")
    return HeaderBlock(tuple(field for field in fields if field[0]), body_start, tuple(defects))
