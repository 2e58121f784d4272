"""IMAP commands used to fill and inspect a test mailbox through a logged-in `imaplib` client.

Plain functions over a connection, so the same helpers work against any server; `DovecotServer`
wraps them with a login. Mailbox names are encoded as RFC 3501 section 5.1.3 modified UTF-7 and
sent as quoted strings (imaplib quotes nothing itself).
"""

from __future__ import annotations

import base64
import datetime as dt
import imaplib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# imaplib.IMAP4.append turns bare CR and LF into CRLF; the bulk path does the same, so both
# store identical bytes.
_LINE_ENDING = re.compile(rb"\r\n|\r(?!\n)|\n")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) ([0-9:,]+)\]")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")

# One MULTIAPPEND command carries at most this many messages or bytes of literals. Dovecot's
# imap_max_line_length (64 KiB) counts the command text between literals, about 50 bytes per
# message, so 500 messages stay well inside it.
BULK_MAX_MESSAGES = 500
BULK_MAX_BYTES = 8 * 1024 * 1024

_bulk_tags = itertools.count(1)


@dataclass(frozen=True)
class AppendMessage:
    """One message for `append_many`: raw RFC 5322 bytes, its flags and INTERNALDATE."""

    raw: bytes
    flags: Sequence[str] = ()
    date: dt.datetime | None = None


def encode_mailbox_name(name: str) -> str:
    """Encode `name` as modified UTF-7 (RFC 3501 section 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            encoded = base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",")
            out.append(f"&{encoded}-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def quote_mailbox(name: str) -> str:
    """The mailbox argument for a command: modified UTF-7 inside an IMAP quoted string."""
    encoded = encode_mailbox_name(name).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


def _check(
    conn: imaplib.IMAP4, result: tuple[str, Sequence[object]], what: str
) -> Sequence[object]:
    status, data = result
    if status != "OK":
        raise conn.error(f"{what}: {status} {data!r}")
    return data


def _joined(data: Iterable[object]) -> bytes:
    parts: list[bytes] = []
    for item in data:
        if isinstance(item, bytes):
            parts.append(item)
        elif isinstance(item, tuple):
            parts.extend(part for part in item if isinstance(part, bytes))
    return b" ".join(parts)


def _uid_set(text: bytes) -> list[int]:
    uids: list[int] = []
    for part in text.split(b","):
        first, _, last = part.partition(b":")
        low, high = sorted((int(first), int(last or first)))
        uids.extend(range(low, high + 1))
    return uids


def _appended_uids(response: bytes, expected: int) -> list[int]:
    match = _APPENDUID.search(response)
    if match is None:
        raise imaplib.IMAP4.error(f"no APPENDUID (RFC 4315) in {response!r}")
    uids = _uid_set(match.group(2))
    if len(uids) != expected:
        raise imaplib.IMAP4.error(f"APPENDUID names {len(uids)} messages, sent {expected}")
    return uids


def append(
    conn: imaplib.IMAP4,
    folder: str,
    raw: bytes,
    flags: Iterable[str] = (),
    date: dt.datetime | None = None,
) -> int:
    """APPEND one message; return its UID (from the UIDPLUS APPENDUID response code)."""
    flag_list = " ".join(flags)
    data = _check(
        conn,
        conn.append(quote_mailbox(folder), f"({flag_list})" if flag_list else None, date, raw),
        f"APPEND to {folder!r}",
    )
    return _appended_uids(_joined(data), 1)[0]


def _append_batch(conn: imaplib.IMAP4, folder: str, batch: list[AppendMessage]) -> list[int]:
    tag = b"FILL%d" % next(_bulk_tags)
    parts = [tag, b" APPEND ", quote_mailbox(folder).encode("ascii")]
    for message in batch:
        if message.flags:
            parts.append(b" (" + " ".join(message.flags).encode("ascii") + b")")
        if message.date is not None:
            parts.append(b" " + imaplib.Time2Internaldate(message.date).encode("ascii"))
        literal = _LINE_ENDING.sub(b"\r\n", message.raw)
        # LITERAL+ (RFC 7888): no round trip waiting for "+" before each literal.
        parts.append(b" {%d+}\r\n" % len(literal))
        parts.append(literal)
    parts.append(b"\r\n")
    conn.send(b"".join(parts))
    while True:
        line = conn.readline()
        if not line:
            raise conn.abort(f"connection closed during APPEND to {folder!r}")
        if line.startswith(tag + b" "):
            if not line[len(tag) + 1 :].startswith(b"OK"):
                raise conn.error(f"APPEND to {folder!r}: {line!r}")
            return _appended_uids(line, len(batch))


def append_many(
    conn: imaplib.IMAP4,
    folder: str,
    messages: Iterable[bytes | AppendMessage],
) -> list[int]:
    """APPEND many messages in few round trips; return their UIDs in order.

    Uses MULTIAPPEND (RFC 3502) with non-synchronizing literals (LITERAL+, RFC 7888): each
    command carries up to `BULK_MAX_MESSAGES` messages and is one transaction on the server.
    """
    # The greeting's capabilities (conn.capabilities) predate login; ask again.
    capabilities = _joined(_check(conn, conn.capability(), "CAPABILITY")).decode().upper()
    missing = {"MULTIAPPEND", "LITERAL+"} - set(capabilities.split())
    if missing:
        raise conn.error(f"server lacks {sorted(missing)} needed for bulk APPEND")
    uids: list[int] = []
    batch: list[AppendMessage] = []
    size = 0
    for item in messages:
        message = item if isinstance(item, AppendMessage) else AppendMessage(item)
        batch.append(message)
        size += len(message.raw)
        if len(batch) >= BULK_MAX_MESSAGES or size >= BULK_MAX_BYTES:
            uids += _append_batch(conn, folder, batch)
            batch, size = [], 0
    if batch:
        uids += _append_batch(conn, folder, batch)
    return uids


def create_folder(conn: imaplib.IMAP4, folder: str) -> None:
    """CREATE `folder`."""
    _check(conn, conn.create(quote_mailbox(folder)), f"CREATE {folder!r}")


def delete_folder(conn: imaplib.IMAP4, folder: str) -> None:
    """DELETE `folder` with its messages (Dovecot refuses while it has child folders)."""
    _check(conn, conn.delete(quote_mailbox(folder)), f"DELETE {folder!r}")


def uidvalidity(conn: imaplib.IMAP4, folder: str) -> int:
    """The folder's UIDVALIDITY, from STATUS (does not select the folder)."""
    data = _check(conn, conn.status(quote_mailbox(folder), "(UIDVALIDITY)"), "STATUS")
    match = _UIDVALIDITY.search(_joined(data))
    if match is None:
        raise conn.error(f"no UIDVALIDITY in STATUS reply {data!r}")
    return int(match.group(1))


def fetch_flags(conn: imaplib.IMAP4, folder: str) -> dict[int, set[str]]:
    """UID -> flags of every message, read through EXAMINE so nothing is changed.

    The session flag ``\\Recent`` is left out: it says which session saw a message first, not
    anything a client stored.
    """
    _check(conn, conn.select(quote_mailbox(folder), readonly=True), f"EXAMINE {folder!r}")
    try:
        data = _check(conn, conn.uid("FETCH", "1:*", "(UID FLAGS)"), f"FETCH in {folder!r}")
    finally:
        conn.close()
    result: dict[int, set[str]] = {}
    for item in data:
        if not isinstance(item, bytes):
            continue
        uid = _FETCH_UID.search(item)
        flags = _FETCH_FLAGS.search(item)
        if uid is None or flags is None:
            raise conn.error(f"unexpected FETCH reply {item!r}")
        names = set(flags.group(1).decode("ascii").split())
        result[int(uid.group(1))] = names - {"\\Recent"}
    return result
