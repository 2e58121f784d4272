"""Secret, revocable per-user addresses that need no login (a rep's calendar feed, their
free/busy URL): the token in the URL is the only credential.

A token is ``<lookup>_<secret>``: only the SHA-256 of the whole token is stored, with the
clear ``lookup`` to find its row in one indexed query (as API tokens, ``gateway.api_tokens``).
One per user and kind: making a new one replaces the old, and revoking deletes it. Every
request reads the row, so either bites on the next request on every process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.models import FeedToken, FreeBusyToken, User

# A kind of token: a table with user_id, lookup, secret_sha256, created_at.
Row = TypeVar("Row", FeedToken, FreeBusyToken)

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SHAPE = re.compile(r"([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session: Session, rows: type[Row], user: User) -> str:
    """Issue the user's token (shown once), replacing any earlier one."""
    lookup = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    token = f"{lookup}_{secrets.token_urlsafe(32)}"
    row = session.scalar(select(rows).where(rows.user_id == user.id))
    if row is None:
        row = rows(user_id=user.id)
        session.add(row)
    row.lookup, row.secret_sha256, row.created_at = lookup, _digest(token), utcnow()
    session.flush()  # the unique constraints decide a race between two issuers
    return token


def revoke(session: Session, rows: type[Row], user: User) -> bool:
    """Delete the user's token; False when there was none."""
    result = session.execute(delete(rows).where(rows.user_id == user.id))
    return bool(getattr(result, "rowcount", 0))


def issued_at(session: Session, rows: type[Row], user_id: int) -> datetime | None:
    """When the user's live token was made, or None."""
    return session.scalar(select(rows.created_at).where(rows.user_id == user_id))


def resolve(session: Session, rows: type[Row], token: str) -> int | None:
    """The id of the user whose live token ``token`` is, or None."""
    shape = _SHAPE.fullmatch(token)
    if shape is None:
        return None
    row = session.scalar(select(rows).where(rows.lookup == shape.group(1)))
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(token)):
        return None
    return row.user_id
