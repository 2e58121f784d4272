"""Raw RFC 5322 bytes to one plain `ParsedEmail`: the value both mail edges hand on.

Pure: no database, no network, no clock. `parse_message` never raises on any input and is
bounded by `ParseLimits`: when a limit stops it, it returns what it parsed so far and says
why in `truncated`. Anything malformed it worked around is described in `defects`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.mail.addresses import Address
from gateway.mail.body_parts import BodyCollector, ParsedAttachment
from gateway.mail.fingerprint import fingerprint
from gateway.mail.header_block import read_header_block
from gateway.mail.headers import HeaderSummary, normalise_message_id, parse_headers, summarise
from gateway.mail.mime_tree import WalkReport, iter_leaves
from gateway.mail.transfer_encoding import decode_transfer

__all__ = [
    "DEFAULT_LIMITS",
    "Address",
    "HeaderSummary",
    "ParseLimits",
    "ParsedAttachment",
    "ParsedEmail",
    "normalise_message_id",
    "parse_headers",
    "parse_message",
]


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on the work one message may cause.

    `max_depth`: multipart nesting below the top level; deeper subtrees are skipped.
    `max_parts`: MIME entities (containers included) read before the walk stops.
    `max_decoded_bytes`: total decoded size of bodies and attachments; the part that would
    exceed it is dropped and the walk stops.
    """

    max_depth: int = 20
    max_parts: int = 500
    max_decoded_bytes: int = 50 * 1024 * 1024


DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True)
class ParsedEmail:
    """One message as plain values.

    `message_id`: normalised (see `normalise_message_id`); None when absent or empty.
    `key`: the dedupe key, "mid:" + message_id, or without one "fp:" + `fingerprint`.
    `subject`: RFC 2047 decoded, unfolded, runs of whitespace collapsed; "" when absent.
    `date`: aware UTC; None when missing or unparsable.
    `sender`: the first From address. `bcc`: only present in the sender's own copy.
    `text`, `html`: the text/plain and text/html bodies (see `body_parts` for how they are
    chosen and concatenated); None when the message has none.
    `is_bulk`, `bulk_reason`: List-Id, Precedence bulk/list/junk, or Auto-Submitted not "no".
    `truncated`: None, or which limit stopped parsing early.
    `defects`: notes on malformed parts and mislabelled charsets that were worked around.
    """

    message_id: str | None
    key: str
    subject: str
    date: datetime | None
    sender: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    text: str | None
    html: str | None
    attachments: tuple[ParsedAttachment, ...]
    is_bulk: bool
    bulk_reason: str | None
    truncated: str | None
    defects: tuple[str, ...]


def parse_message(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedEmail:
    """Parse one message; never raises, and stops early at `limits` (see `ParseLimits`)."""
    top = read_header_block(raw, 0, len(raw))
    headers = summarise(top)
    report = WalkReport()
    bodies = BodyCollector()
    decoded_bytes = 0
    leaves = iter_leaves(raw, max_depth=limits.max_depth, max_parts=limits.max_parts, report=report)
    for leaf in leaves:
        data, note = decode_transfer(leaf.body, leaf.content.transfer_encoding)
        if note:
            report.defects.append(f"part {leaf.path}: {note}")
        decoded_bytes += len(data)
        if decoded_bytes > limits.max_decoded_bytes:
            report.truncate(f"decoded content over {limits.max_decoded_bytes} bytes")
            break
        bodies.add(leaf, data, report.defects)
    if headers.message_id is not None:
        key = "mid:" + headers.message_id
    else:
        body = bodies.text if bodies.text is not None else bodies.html
        key = "fp:" + fingerprint(
            headers.date, top.text("date"), headers.sender, headers.to, headers.subject, body
        )
    return ParsedEmail(
        message_id=headers.message_id,
        key=key,
        subject=headers.subject,
        date=headers.date,
        sender=headers.sender,
        to=headers.to,
        cc=headers.cc,
        bcc=headers.bcc,
        reply_to=headers.reply_to,
        text=bodies.text,
        html=bodies.html,
        attachments=tuple(bodies.attachments),
        is_bulk=headers.is_bulk,
        bulk_reason=headers.bulk_reason,
        truncated=report.truncated,
        # The top-level header defects are seen by both passes; keep each note once.
        defects=tuple(dict.fromkeys((*headers.defects, *report.defects))),
    )
