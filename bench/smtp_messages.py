"""Typical BCC'd mail for the SMTP benchmark, made deterministically from a seed.

A rep writes to one of twenty customers (each with its own account domain), sometimes copying
a colleague at the customer: about 10 KB of text, and every third message carries a 100 KB
attachment (a PDF-like binary, base64 on the wire). Every message has its own Message-ID, so
each one becomes its own activity.
"""

from __future__ import annotations

import base64
import random
import textwrap
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

SENDER = "rep@bench.example"
CUSTOMER_DOMAINS = tuple(f"customer{n:02d}.example" for n in range(20))
BODY_BYTES = 10 * 1024
ATTACHMENT_BYTES = 100 * 1024
WORDS = ("quote", "delivery", "pricing", "contract", "renewal", "meeting", "order", "widget",
         "schedule", "invoice", "discount", "support", "onboarding", "thanks", "regards", "next",
         "week", "team", "proposal", "volume", "terms", "update", "question", "call")


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return "\r\n".join(textwrap.wrap(" ".join(words), 72)) + "\r\n"


def message(number: int, seed: int = 7) -> bytes:
    """Message ``number`` of the benchmark's set (CRLF line ends, as SMTP carries it)."""
    rng = random.Random(f"{seed}-{number}")
    domain = CUSTOMER_DOMAINS[number % len(CUSTOMER_DOMAINS)]
    sent = datetime(2026, 3, 2, 9, 0, tzinfo=UTC) + timedelta(minutes=7 * number)
    cc = f"Cc: Team <team{number % 3}@{domain}>\r\n" if number % 4 == 0 else ""
    headers = (
        f"From: Rep <{SENDER}>\r\nTo: Buyer {number} <buyer{number % 50}@{domain}>\r\n{cc}"
        f"Subject: Order {number}: {rng.choice(WORDS)} {rng.choice(WORDS)}\r\n"
        f"Date: {format_datetime(sent)}\r\nMessage-ID: <bench-{seed}-{number}@bench.example>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    body = _text(rng, BODY_BYTES)
    if number % 3 != 0:
        return (headers + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()
    blob = rng.randbytes(ATTACHMENT_BYTES)
    encoded = "\r\n".join(textwrap.wrap(base64.b64encode(blob).decode(), 76))
    return (
        headers + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
        + f"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        f'filename="order-{number}.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + encoded + "\r\n--b--\r\n"
    ).encode()
