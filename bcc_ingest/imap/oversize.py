"""Mail larger than ``imap.max_message_bytes``: logged from its headers alone.

The poller never reads such a message's body (EspoCRM treats oversize mail the same way):
the activity gets the message's own headers (subject, participants, date, Message-ID) and a
note in place of the body saying why it is missing.
"""

from __future__ import annotations

import dataclasses

from bcc_ingest.imap.protocol import FetchedMessage
from gateway.mail.parse import ParsedEmail, parse_message


def is_oversize(message: FetchedMessage, limit: int) -> bool:
    """Whether the size the server gave for `message` is over `limit`."""
    return (message.size or 0) > limit


def note(size: int, limit: int) -> str:
    return (f"This message was not read whole: it is {size:,} bytes, more than the "
            f"{limit:,} bytes the gateway reads from a mailbox (imap.max_message_bytes). "
            "Only its headers were logged.")


def parse_fetched(message: FetchedMessage, limit: int) -> ParsedEmail:
    """`message` as parsed for logging: whole, or (when oversize) from its header alone."""
    if not is_oversize(message, limit):
        return parse_message(message.data)
    size = message.size or 0
    header = parse_message(message.data.rstrip(b"\r\n") + b"\r\n\r\n")
    return dataclasses.replace(
        header, text=note(size, limit), html=None, attachments=(),
        truncated=f"message of {size} bytes over imap.max_message_bytes ({limit}); "
                  "only its headers were read",
    )
