"""The dedupe fingerprint of a message that has no Message-ID."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from gateway.mail.addresses import Address


def fingerprint(
    date: datetime | None,
    date_header: str | None,
    sender: Address | None,
    to: tuple[Address, ...],
    subject: str,
    body: str | None,
) -> str:
    """SHA-256 hex digest of the normalised Date, From, To, Subject and body text.

    Two copies of one message (the BCC copy and the IMAP copy, a retry) must agree, so each
    field is reduced to what survives transport: the date as a UTC instant (or its raw text,
    blanks collapsed, when unparsable), bare lower-cased addresses with To sorted, and the
    subject and body with every run of whitespace collapsed, which makes header folding,
    CRLF versus LF and trailing blanks irrelevant.
    """
    fields = [
        date.isoformat() if date is not None else _collapse(date_header or ""),
        sender.email if sender is not None else "",
        sorted(address.email for address in to),
        _collapse(subject),
        _collapse(body or ""),
    ]
    # ensure_ascii: the digest never depends on how an odd character would be encoded.
    canonical = json.dumps(fields, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _collapse(text: str) -> str:
    return " ".join(text.split())
