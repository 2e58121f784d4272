"""Address lists (From, To, Cc, Bcc, Reply-To) as plain `Address` values."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses

from gateway.mail.charsets import decode_words


@dataclass(frozen=True)
class Address:
    """One mailbox: the lower-cased addr-spec and the RFC 2047 decoded display name."""

    email: str
    name: str | None = None


def parse_addresses(values: list[str]) -> tuple[tuple[Address, ...], list[str]]:
    """Parse every value of one address field; returns the addresses and notes.

    Group syntax ("undisclosed-recipients:;") and empty addresses yield nothing; an address
    without "@" cannot match a CRM contact and is dropped with a note. Duplicates keep the
    first occurrence. Display names are RFC 2047 decoded even inside quotes, which RFC 2047
    forbids but many mailers produce.
    """
    found: dict[str, Address] = {}
    notes: list[str] = []
    # Names are decoded after splitting: an encoded comma must not split an address.
    for name, addr in getaddresses(values):
        email = "".join(addr.split()).lower()
        if not email:
            continue
        if "@" not in email.strip("@"):
            notes.append(f"address without domain dropped: {email!r}")
            continue
        display, name_notes = decode_words(name)
        notes.extend(name_notes)
        found.setdefault(email, Address(email, " ".join(display.split()) or None))
    return tuple(found.values()), notes
