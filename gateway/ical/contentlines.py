"""Content lines as text (RFC 5545 3.1): splitting, unfolding, folding and escaping.

The textual operations (``view_for``, ``patch_event``) keep every line they do not change
byte for byte, so they work on :class:`LogicalLine` values that remember their physical
text; the writers (``render_event`` and patched properties) build new lines here so
escaping and folding are done one way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FOLD_OCTETS = 75  # RFC 5545 3.1: lines SHOULD NOT be longer than 75 octets
_NEWLINE = re.compile(r"\r\n|\n|\r")
# RFC 5545 3.3.11: TEXT excludes control characters other than HTAB (newlines are escaped).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# RFC 5545 3.1 quotes values with : ; , ; a backslash is quoted too, because some parsers
# (icalendar among them) read "\:" in a parameter as an escape.
_PARAM_NEEDS_QUOTES = re.compile(r"[:;,\\]")


@dataclass(frozen=True)
class LogicalLine:
    """One unfolded content line and the exact physical text it came from."""

    raw: str  # the physical lines, folds and line endings included
    text: str  # unfolded, without the line ending

    @property
    def name(self) -> str:
        """The property name (or BEGIN/END), upper-cased."""
        end = len(self.text)
        for index, char in enumerate(self.text):
            if char in ";:":
                end = index
                break
        return self.text[:end].strip().upper()

    @property
    def head(self) -> str:
        """Name and parameters: the text before the first colon outside quotes."""
        return self.text[: self._separator()]

    @property
    def value(self) -> str:
        """The text after the first colon outside a quoted parameter value."""
        return self.text[self._separator() + 1 :]

    def _separator(self) -> int:
        quoted = False
        for index, char in enumerate(self.text):
            if char == '"':
                quoted = not quoted
            elif char == ":" and not quoted:
                return index
        return len(self.text)


def physical_lines(text: str) -> list[str]:
    """Split ``text`` into physical lines, each keeping its own line ending."""
    lines: list[str] = []
    start = 0
    for match in _NEWLINE.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def logical_lines(text: str) -> list[LogicalLine]:
    """Group physical lines into unfolded content lines (a fold starts with SPACE or TAB)."""
    groups: list[list[str]] = []
    for line in physical_lines(text):
        if groups and line[:1] in (" ", "\t"):
            groups[-1].append(line)
        else:
            groups.append([line])
    result = []
    for group in groups:
        unfolded = _strip_newline(group[0]) + "".join(
            _strip_newline(part)[1:] for part in group[1:]
        )
        result.append(LogicalLine("".join(group), unfolded))
    return result


def line_ending(text: str) -> str:
    """The line ending ``text`` uses (of its first line), CRLF when it has none."""
    match = _NEWLINE.search(text)
    return match.group(0) if match else "\r\n"


def _strip_newline(line: str) -> str:
    return _NEWLINE.sub("", line)


def fold(line: str, newline: str = "\r\n") -> str:
    """Fold one content line at 75 octets without splitting a UTF-8 sequence."""
    encoded = line.encode("utf-8")
    if len(encoded) <= FOLD_OCTETS:
        return line + newline
    parts: list[str] = []
    current: list[str] = []
    size = 0
    limit = FOLD_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, FOLD_OCTETS - 1  # the leading space counts
        current.append(char)
        size += width
    parts.append("".join(current))
    return (newline + " ").join(parts) + newline


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newline escaped."""
    value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    return (
        value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    )


def param_value(value: str) -> str:
    """A parameter value, caret-encoded (RFC 6868) and quoted when it has to be."""
    value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    value = value.replace("^", "^^").replace("\n", "^n").replace('"', "^'")
    if _PARAM_NEEDS_QUOTES.search(value):
        return f'"{value}"'
    return value


def content_line(name: str, value: str, params: Sequence[tuple[str, str]] = ()) -> str:
    """``NAME;P=v:value`` (unfolded); ``value`` must already be escaped for its type."""
    rendered = "".join(f";{key}={param_value(item)}" for key, item in params)
    return f"{name}{rendered}:{value}"


def join_lines(lines: Iterable[str], newline: str = "\r\n") -> str:
    """Fold and join unfolded content lines, each ended by ``newline``."""
    return "".join(fold(line, newline) for line in lines)
