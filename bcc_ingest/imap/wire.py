"""IMAP wire details as pure functions: quoting, mailbox names, UID sets, response lines.

No sockets and no Deferreds here, so each rule is tested directly. Lines are untagged
responses as Twisted's `IMAP4Client` hands them over: without the leading ``* ``, with each
literal inlined after its ``{n}\\r\\n`` marker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from twisted.mail import imap4  # registers the "imap4-utf-7" codec (RFC 3501 5.1.3)

_FETCH_HEAD = re.compile(rb"(\d+) FETCH \(", re.IGNORECASE)
_LITERAL = re.compile(rb"\{(\d+)\}\r\n")
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
_RESPONSE_CODE = re.compile(r"^\[([A-Za-z0-9.-]+)[^\]]*\]\s*")
# RFC 3501 section 4.2: number and nz-number are unsigned 32-bit integers.
MAX_NUMBER = 2**32 - 1
# Server text stored on an account (last_error) or shown by ``mail show`` / ``mail test``.
MAX_SHOWN_CHARS = 300


class ImapError(imap4.IMAP4Exception):
    """The server answered something the poller cannot work with."""


class OutOfRange(ImapError):
    """A number in an answer lies outside the protocol's range; the rest is still usable."""


class ImapNo(ImapError):
    """A command was refused (tagged NO or BAD). `code` is the RFC 5530 response code."""

    def __init__(self, what: str, text: str) -> None:
        self.what = what
        match = _RESPONSE_CODE.match(text)
        self.code = match.group(1).upper() if match else None
        self.text = printable(text)
        super().__init__(f"{what}: {self.text}")

    def __str__(self) -> str:
        return f"{self.what}: {self.text}"


@dataclass(frozen=True)
class ListedFolder:
    name: str
    attributes: frozenset[str]  # lower-cased, e.g. "\\sent", "\\noselect"

    @property
    def selectable(self) -> bool:
        return not self.attributes & {"\\noselect", "\\nonexistent"}


def printable(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """`text` (from a server, maybe hostile) as one line fit to store and show.

    Runs of unprintable characters (controls, line breaks, undecodable bytes) become one
    space or "?"; at most `limit` characters, the cut marked with "...".
    """
    out: list[str] = []
    for char in text:
        if char.isprintable() and char != "\ufffd":
            out.append(char)
            continue
        mark = " " if char.isspace() else "?"
        if not out or out[-1] not in (" ", "?"):
            out.append(mark)
        elif mark == "?":
            out[-1] = "?"
    line = "".join(out).strip()
    return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


def small_number(digits: bytes) -> int | None:
    """`digits` as an int, or None when longer than any 32-bit number can be."""
    return int(digits) if len(digits) <= 10 else None


def protocol_number(raw: bytes, what: str, *, zero: bool = False) -> int:
    """A number from an answer; OutOfRange beyond 32 bits (or 0 where `zero` is false)."""
    value = small_number(raw)
    low = 0 if zero else 1
    if value is None or value > MAX_NUMBER or value < low:
        shown = printable(raw.decode("ascii", "replace"), 40)
        raise OutOfRange(f"the server sent {what} {shown}, outside the protocol's range "
                         f"({low} to {MAX_NUMBER})")
    return value


def quoted(value: bytes) -> bytes:
    """An IMAP quoted string (RFC 3501 section 4.3); the caller keeps out CR, LF and NUL."""
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def encode_mailbox(name: str) -> bytes:
    """A mailbox argument: modified UTF-7, quoted. INBOX is sent as the atom it is."""
    if name.upper() == "INBOX":
        return b"INBOX"
    return quoted(name.encode("imap4-utf-7"))


def decode_mailbox(raw: bytes) -> str:
    try:
        return raw.decode("imap4-utf-7")
    except (UnicodeDecodeError, ValueError):
        return raw.decode("utf-8", "replace")  # UTF8=ACCEPT servers send UTF-8


def uid_set(uids: Iterable[int]) -> bytes:
    """`[1, 2, 3, 7, 9, 10]` -> ``1:3,7,9:10`` (RFC 3501 sequence-set), ascending."""
    ranges: list[str] = []
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an empty UID set")
    start = prev = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        ranges.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(ranges).encode("ascii")


def capabilities_of(lines: Sequence[bytes]) -> set[str]:
    """Capability names from CAPABILITY lines or a ``CAPABILITY ...`` response code."""
    names: set[str] = set()
    for line in lines:
        tokens = line.decode("ascii", "replace").split()
        if tokens and tokens[0].upper() == "CAPABILITY":
            names.update(token.upper() for token in tokens[1:])
    return names


def parse_list_line(line: bytes) -> ListedFolder | None:
    """``LIST (\\HasNoChildren \\Sent) "/" Sent`` -> ListedFolder; None when malformed."""
    try:
        parts = imap4.parseNestedParens(line)
    except (imap4.MismatchedNesting, ValueError):
        return None
    if len(parts) < 4 or not isinstance(parts[1], list):
        return None
    name = parts[3]
    if isinstance(name, tuple):
        name = name[0]
    if not isinstance(name, bytes):
        return None
    attributes = frozenset(
        a.decode("ascii", "replace").lower() for a in parts[1] if isinstance(a, bytes)
    )
    return ListedFolder(decode_mailbox(name), attributes)


def parse_fetch(line: bytes) -> tuple[int, int | None, bytes | None] | None:
    """One FETCH response -> (uid, RFC822.SIZE or None, the body literal or None).

    The response carries at most one literal, the one body section asked for. Its bytes are
    sliced out by the announced length, so nothing in the message can confuse the parse;
    the data items around it are found by name, in whatever order the server sent them.
    None when the line is no FETCH or names no UID.
    """
    head = _FETCH_HEAD.match(line)
    if head is None:
        return None
    body: bytes | None = None
    literal = _LITERAL.search(line, head.end())
    if literal is not None:
        start = literal.end()
        end = start + min(int(literal.group(1)[:20]), len(line))  # checked by the guard
        body = line[start:end]
        items = line[head.end():literal.start()] + b" " + line[end:]
    else:
        items = line[head.end():]
        if b"BODY[" in items.upper():
            # An empty section may come as "" or NIL instead of a literal.
            body = b""
    uid = _UID.search(items)
    value = small_number(uid.group(1)) if uid is not None else None
    if value is None:
        return None
    size = _SIZE.search(items)
    # A size past 32 bits is oversize all the same.
    octets = (small_number(size.group(1)) or MAX_NUMBER + 1) if size else None
    return value, octets, body


def fetch_uid(line: bytes) -> int | None:
    """The UID named in a FETCH response's items before its first literal, if any."""
    head = _FETCH_HEAD.match(line)
    if head is None:
        return None
    literal = _LITERAL.search(line, head.end())
    uid = _UID.search(line, head.end(), literal.start() if literal else len(line))
    return small_number(uid.group(1)) if uid else None
