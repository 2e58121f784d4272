"""Walk a message's MIME tree iteratively, within limits, yielding its leaf entities.

The stdlib parser is not used for structure: it recurses once per nesting level (a
2,000-deep message raises RecursionError) and parses every part before we could stop it
(50,000 parts take 0.6 s under compat32, 8 s under `policy.default`). Here an explicit stack
of lazy boundary scanners walks the tree in document order; a too-deep subtree is skipped
and the walk stops at the part limit, with the reason kept in the `WalkReport`.

Boundaries follow RFC 2046 section 5.1.1: a delimiter is a line `--boundary`, optionally
followed by `--` (the close delimiter) and blanks; the line break before it belongs to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.mail.content_headers import ContentInfo, describe_content
from gateway.mail.header_block import read_header_block

# (id of a multipart/alternative ancestor, 1-based index of the child it passes through)
AlternativePath = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Leaf:
    """One non-multipart entity: where it sits, its Content-* fields and its raw body."""

    path: str  # IMAP-style part number: "1", "2.1", ...
    content: ContentInfo
    body: bytes  # still transfer-encoded
    alternatives: AlternativePath


@dataclass
class WalkReport:
    """Defects noted while walking, and why the walk stopped early (first reason wins)."""

    defects: list[str] = field(default_factory=list)
    truncated: str | None = None

    def truncate(self, reason: str) -> None:
        self.truncated = self.truncated or reason


class _Entity(NamedTuple):
    start: int
    end: int
    path: str  # "" for the top level
    depth: int  # the top level is 0
    default_type: str
    alternatives: AlternativePath


@dataclass
class _Container:
    entity: _Entity
    children: Iterator[tuple[int, int]]
    alternative_id: int | None  # set when this container is a multipart/alternative
    default_type: str  # RFC 2046 section 5.1.5: message/rfc822 inside multipart/digest
    index: int = 0

    def next_child(self) -> _Entity | None:
        span = next(self.children, None)
        if span is None:
            return None
        self.index += 1
        parent = self.entity
        alternatives = parent.alternatives
        if self.alternative_id is not None:
            alternatives += ((self.alternative_id, self.index),)
        path = f"{parent.path}.{self.index}" if parent.path else str(self.index)
        return _Entity(*span, path, parent.depth + 1, self.default_type, alternatives)


def iter_leaves(
    raw: bytes, *, max_depth: int, max_parts: int, report: WalkReport
) -> Iterator[Leaf]:
    """Yield the leaf entities of `raw` in document order.

    Every entity, containers included, counts against `max_parts`; a container whose
    children would lie deeper than `max_depth` (the top level is depth 0) is skipped whole.
    """
    stack: list[_Container] = []
    pending: _Entity | None = _Entity(0, len(raw), "", 0, "text/plain", ())
    seen = 0
    while pending is not None or stack:
        if pending is None:
            pending = stack[-1].next_child()
            if pending is None:
                stack.pop()
            continue
        entity, pending = pending, None
        seen += 1
        if seen > max_parts:
            report.truncate(f"more than {max_parts} MIME parts")
            return
        label = f"part {entity.path}" if entity.path else "message"
        block = read_header_block(raw, entity.start, entity.end)
        content, notes = describe_content(block, entity.default_type)
        report.defects.extend(f"{label}: {note}" for note in (*block.defects, *notes))
        if content.maintype == "multipart":
            if entity.depth >= max_depth:
                report.truncate(f"MIME nesting deeper than {max_depth} levels")
                continue
            children = _children(raw, block.body_start, entity.end, content.boundary, label, report)
            if children is not None:
                kind = content.content_type
                alternative_id = seen if kind == "multipart/alternative" else None
                default_type = "message/rfc822" if kind == "multipart/digest" else "text/plain"
                stack.append(_Container(entity, children, alternative_id, default_type))
                continue
            # RFC 2045 section 5.2: a multipart we cannot split is read as text/plain.
            content = ContentInfo("text/plain", None, None, None, None, None, "")
        body = raw[block.body_start : entity.end]
        # IMAP numbers the body of a single-part message "1".
        yield Leaf(entity.path or "1", content, body, entity.alternatives)


def _children(
    raw: bytes, start: int, end: int, boundary: bytes | None, label: str, report: WalkReport
) -> Iterator[tuple[int, int]] | None:
    """The child spans of a multipart body, or None when it cannot be split."""
    if boundary is None:
        report.defects.append(f"{label}: multipart without a boundary; read as text")
        return None
    marker = b"--" + boundary
    first = _find_delimiter(raw, marker, start, end)
    if first is None:
        report.defects.append(f"{label}: multipart boundary never found; read as text")
        return None
    return _spans(raw, marker, first, end, label, report)


def _spans(
    raw: bytes, marker: bytes, first: _Delimiter, end: int, label: str, report: WalkReport
) -> Iterator[tuple[int, int]]:
    delimiter = first
    while not delimiter.closes:
        part_start = delimiter.next_line
        following = _find_delimiter(raw, marker, part_start, end)
        if following is None:
            report.defects.append(f"{label}: closing boundary missing")
            yield part_start, end
            return
        yield part_start, _before_line_break(raw, part_start, following.start)
        delimiter = following


class _Delimiter(NamedTuple):
    start: int  # where the "--boundary" line starts
    next_line: int  # where the line after it starts
    closes: bool  # "--boundary--"


def _find_delimiter(raw: bytes, marker: bytes, pos: int, end: int) -> _Delimiter | None:
    """The first delimiter line in `raw[pos:end]`; `pos` is at the start of a line.

    `bytes.find` rather than a MULTILINE regex: a regex anchored on "^" is tried at every
    position; on a fully walked 2,000-deep message (each level scans the rest) that took
    1.2 s instead of 0.15 s.
    """
    while (found := raw.find(marker, pos, end)) >= 0:
        pos = found + 1
        if found > 0 and raw[found - 1] != 0x0A:
            continue  # not at the start of a line
        after = found + len(marker)
        closes = raw.startswith(b"--", after, end)
        after += 2 if closes else 0
        while after < end and raw[after] in b" \t":  # RFC 2046 transport padding
            after += 1
        if raw.startswith(b"\r", after, end):
            after += 1
        if after == end:
            return _Delimiter(found, end, closes)
        if raw[after] == 0x0A:
            return _Delimiter(found, after + 1, closes)
    return None


def _before_line_break(raw: bytes, start: int, pos: int) -> int:
    """`pos` less the line break before it, which belongs to the delimiter (RFC 2046)."""
    if pos > start and raw[pos - 1] == 0x0A:
        pos -= 1
        if pos > start and raw[pos - 1] == 0x0D:
            pos -= 1
    return pos
