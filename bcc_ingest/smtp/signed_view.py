"""Which header fields of DKIM-authenticated mail may reach an activity.

A DKIM signature covers the bottom-most instance of each field its ``h=`` tag names (RFC 6376
section 5.4.2), while the parser reads the top-most: a replayed signed mail with an extra
Subject, Message-ID or To prepended still verifies. So mail in which a field the activity is
built from occurs more than once is not authenticated by DKIM (RFC 6376 section 8.15), and of
the fields that occur once, only those the signature covers are kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection

from gateway.mail.header_block import read_header_block

# What an activity is built from: who, what, when, and the dedupe key (RFC 5322 section
# 3.6 allows each of these once; Bcc is read for participants of the sender's own copy).
LOGGED_FIELDS = ("from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id")
# Also singletons: a second one changes how the signed body is read.
BODY_FIELDS = ("mime-version", "content-type", "content-transfer-encoding")

_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def repeated_fields(raw: bytes) -> list[str]:
    """The singleton fields that occur more than once in the top-level header block."""
    counts = Counter(name for name, _ in read_header_block(raw, 0, len(raw)).fields)
    return [name for name in (*LOGGED_FIELDS, *BODY_FIELDS) if counts[name] > 1]


def signed_view(raw: bytes, signed: Collection[str]) -> tuple[bytes, list[str]]:
    """``raw`` without the fields of `LOGGED_FIELDS` that ``signed`` (lower-cased ``h=``
    names) does not cover, and the names removed.

    Removing unsigned fields leaves the signature verifying. Only for mail whose singleton
    fields occur once (`repeated_fields` is empty), whose header block dkimpy has parsed.
    """
    unsigned = {name for name in LOGGED_FIELDS if name not in signed}
    kept: list[bytes] = []
    removed: list[str] = []
    dropping = False
    pos = 0
    while pos < len(raw):
        newline = raw.find(b"\n", pos)
        end = len(raw) if newline < 0 else newline + 1
        line = raw[pos:end]
        if not line.rstrip(b"\r\n"):
            break  # the empty line: the body follows
        if line[:1] not in (b" ", b"\t"):  # a new field (continuations follow their field)
            match = _FIELD_NAME.match(line)
            name = match.group(1).decode("ascii").lower() if match else ""
            dropping = name in unsigned
            if dropping:
                removed.append(name)
        if not dropping:
            kept.append(line)
        pos = end
    if not removed:
        return raw, []
    return b"".join(kept) + raw[pos:], removed
