"""The message-level header summary: who, when, what, and whether it is bulk mail.

`parse_headers` is cheap (no body is read) so that the IMAP poller can decide from
`BODY.PEEK[HEADER]` alone whether a message involves a known contact before fetching it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from gateway.mail.addresses import Address, parse_addresses
from gateway.mail.charsets import decode_words
from gateway.mail.header_block import HeaderBlock, read_header_block

_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
_MSG_ID = re.compile(r"<([^<>]*)>")
_TOKEN_END = re.compile(r"[;(\s]")  # "auto-replied; owner-email=..." or "auto-generated (x)"


@dataclass(frozen=True)
class HeaderSummary:
    """What the top-level header fields say; see `ParsedEmail` for each field's meaning."""

    message_id: str | None
    subject: str
    date: datetime | None
    sender: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    is_bulk: bool
    bulk_reason: str | None
    defects: tuple[str, ...]


def parse_headers(raw_headers: bytes) -> HeaderSummary:
    """Summarise a header block (a whole message is fine: reading stops at its body)."""
    return summarise(read_header_block(raw_headers, 0, len(raw_headers)))


def normalise_message_id(value: str | None) -> str | None:
    """`<ABC@Example.COM>` -> `abc@example.com`; None when absent or empty.

    Whitespace is removed (folding may split an id) and the first `<...>` is taken when
    there is one, so trailing comments or a second id do not change the key.
    """
    if value is None:
        return None
    compact = "".join(value.split())
    match = _MSG_ID.search(compact)
    ident = match.group(1) if match else compact.strip("<>")
    return ident.lower() or None


def summarise(block: HeaderBlock) -> HeaderSummary:
    """Build the summary of an already split top-level header block."""
    defects = [f"message: {defect}" for defect in block.defects]
    subject, notes = decode_words(block.text("subject") or "")
    defects.extend(f"subject: {note}" for note in notes)
    date = parse_date(block.text("date"))
    if date is None and block.text("date"):
        defects.append(f"date: unparsable {block.text('date')!r}")
    lists: dict[str, tuple[Address, ...]] = {}
    for field in ("from", "to", "cc", "bcc", "reply-to"):
        lists[field], notes = parse_addresses(block.texts(field))
        defects.extend(f"{field}: {note}" for note in notes)
    bulk_reason = detect_bulk(block)
    return HeaderSummary(
        message_id=normalise_message_id(block.text("message-id")),
        # Folding leaves tabs and runs of blanks where the sender's mailer broke the line.
        subject=" ".join(subject.split()),
        date=date,
        sender=lists["from"][0] if lists["from"] else None,
        to=lists["to"],
        cc=lists["cc"],
        bcc=lists["bcc"],
        reply_to=lists["reply-to"],
        is_bulk=bulk_reason is not None,
        bulk_reason=bulk_reason,
        defects=tuple(defects),
    )


def parse_date(value: str | None) -> datetime | None:
    """An RFC 5322 date as an aware UTC datetime; None when missing or unparsable.

    A date without a zone ("-0000", RFC 5322 section 3.3) is taken as UTC.
    """
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def detect_bulk(block: HeaderBlock) -> str | None:
    """Why the message is list or automated mail (RFC 2369/2919, RFC 3834), or None.

    `Auto-Submitted: no` is what people's own mail says, so it is not bulk.
    """
    list_id = block.text("list-id")
    if list_id:
        return f"List-Id: {list_id}"
    precedence = (block.text("precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    auto_submitted = _TOKEN_END.split((block.text("auto-submitted") or "").strip(), 1)[0].lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    return None
