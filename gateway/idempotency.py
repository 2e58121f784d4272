"""Idempotent POSTs: the first answer to a key is stored with what the request created.

``claim`` inserts the key's row (insert-or-nothing on the UNIQUE (token, key) constraint) in
the transaction that then does the work, and ``settle`` fills in the answer before that
transaction commits. Of two concurrent requests with one key, the database makes the second
wait for the first; it then finds the first's row and returns its answer: one thing is
created. A key reused for a different request is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import Invalid
from gateway.models import ApiIdempotency
from gateway.upsert import insert_many_or_nothing, table_of

KEY_LIMIT = 255


class KeyReused(Invalid):
    """The key was first used for a different request."""


@dataclass(frozen=True)
class Stored:
    status: int
    headers: dict[str, str]
    body: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > KEY_LIMIT or not key.isprintable():
        raise Invalid("an Idempotency-Key has 1 to 255 printable characters")
    return key


def claim(session: Session, token_id: int, key: str, print_: str) -> Stored | None:
    """Take ``key`` for this request; or the stored answer of the request that took it."""
    inserted = insert_many_or_nothing(
        session, ApiIdempotency,
        [{"token_id": token_id, "key": key, "fingerprint": print_, "status": 0,
          "headers": {}, "body": ""}],
        returning=[table_of(ApiIdempotency).c.id])
    if inserted:
        return None
    row = session.scalar(select(ApiIdempotency).where(
        ApiIdempotency.token_id == token_id, ApiIdempotency.key == key))
    assert row is not None  # a committed row blocks the insert; a rolled-back one does not
    if row.fingerprint != print_:
        raise KeyReused(f"Idempotency-Key {key!r} was used for a different request")
    return Stored(row.status, dict(row.headers), row.body)


def settle(session: Session, token_id: int, key: str, answer: Stored) -> None:
    """Record the answer to the request that claimed ``key``, in its transaction."""
    row = session.scalar(select(ApiIdempotency).where(
        ApiIdempotency.token_id == token_id, ApiIdempotency.key == key))
    assert row is not None
    row.status, row.headers, row.body = answer.status, answer.headers, answer.body
    session.flush()
