"""Deterministic mailbox for the IMAP benchmark: a rep's INBOX and Sent with some CRM mail.

From a seeded ``random.Random``: 80 % of the messages in INBOX, 20 % in Sent (written by the
rep). ``relevant_share`` of them (10 % by default) involve a CRM contact or someone at a CRM
account's domain; the rest are colleagues, strangers and newsletters. Bodies are plain text
of 1-4 KB, a third multipart/alternative with HTML, one in twenty with a small PDF attached.
Dates (and IMAP INTERNALDATEs) lie within the last ``days`` days, inside the poller's
backfill window.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

REP = "alice@acme.example"
INTERNAL_DOMAIN = "acme.example"
WORDS = ("order", "quote", "delivery", "invoice", "meeting", "pricing", "contract", "renewal",
         "discount", "shipment", "forecast", "pipeline", "proposal", "update", "spring",
         "summer", "volume", "support", "ticket", "follow", "up", "thanks", "regards",
         "please", "find", "attached", "next", "week", "call", "tomorrow")


@dataclass(frozen=True)
class Crm:
    """The CRM the benchmark seeds: accounts with one domain each, and their contacts."""

    domains: tuple[str, ...]
    contacts: tuple[str, ...]


@dataclass(frozen=True)
class GeneratedMessage:
    folder: str  # "INBOX" or "Sent"
    raw: bytes
    date: datetime
    relevant: bool


def make_crm(accounts: int = 50, contacts_per_account: int = 4) -> Crm:
    domains = tuple(f"customer{i}.example" for i in range(accounts))
    contacts = tuple(f"person{j}@{domain}" for domain in domains
                     for j in range(contacts_per_account))
    return Crm(domains, contacts)


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choice(WORDS) for _ in range(12))
        words.append(line)
        length += len(line) + 2
    return "\r\n".join(words)


def _counterpart(rng: random.Random, crm: Crm, relevant: bool) -> str:
    if relevant:
        if rng.random() < 0.7:
            return rng.choice(crm.contacts)
        return f"buyer{rng.randrange(1000)}@{rng.choice(crm.domains)}"  # known by domain only
    kind = rng.random()
    if kind < 0.3:
        return f"colleague{rng.randrange(40)}@{INTERNAL_DOMAIN}"
    if kind < 0.6:
        return f"news@list{rng.randrange(300)}.example"
    return f"someone{rng.randrange(5000)}@stranger{rng.randrange(2000)}.example"


def _message(rng: random.Random, index: int, crm: Crm, relevant: bool, sent: bool,
             date: datetime) -> bytes:
    other = _counterpart(rng, crm, relevant)
    sender, recipient = (REP, other) if sent else (other, REP)
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 8)))
    headers = [
        f"From: {sender}", f"To: {recipient}",
        f"Subject: {subject}", f"Date: {format_datetime(date)}",
        f"Message-ID: <bench-{index}@{sender.partition('@')[2]}>", "MIME-Version: 1.0",
    ]
    if not relevant and other.startswith("news@"):
        headers.append(f"List-Id: <news.{other.partition('@')[2]}>")
    text = _text(rng, rng.randrange(1000, 4000))
    shape = rng.random()
    if shape < 0.05:
        pdf = base64.encodebytes(rng.randbytes(12000)).decode().replace("\n", "\r\n")
        body = ("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n--b1\r\n"
                "Content-Type: application/pdf; name=\"quote.pdf\"\r\n"
                "Content-Disposition: attachment; filename=\"quote.pdf\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n" + pdf + "--b1--\r\n")
    elif shape < 0.38:
        html = "<html><body><p>" + text.replace("\r\n", "</p><p>") + "</p></body></html>"
        body = ("Content-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n--b2\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n--b2\r\n"
                "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--b2--\r\n")
    else:
        body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
    return ("\r\n".join(headers) + "\r\n" + body).encode("utf-8")


def generate(count: int, crm: Crm, *, relevant_share: float = 0.1, days: int = 20,
             seed: int = 5, now: datetime | None = None) -> list[GeneratedMessage]:
    """`count` messages in date order; exactly round(count * relevant_share) relevant."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC).replace(microsecond=0)
    relevant_indexes = set(rng.sample(range(count), round(count * relevant_share)))
    start = now - timedelta(days=days)
    messages = []
    for index in range(count):
        date = start + timedelta(seconds=index * days * 86400 // count)
        sent = rng.random() < 0.2
        relevant = index in relevant_indexes
        raw = _message(rng, index, crm, relevant, sent, date)
        messages.append(GeneratedMessage("Sent" if sent else "INBOX", raw, date, relevant))
    return messages
