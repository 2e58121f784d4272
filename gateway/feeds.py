"""Feed tokens: a rep's secret, revocable address of a read-only calendar feed.

The feed is ``<public url>feeds/<token>.ics``, read with no login by web calendars that
subscribe to a URL (Google Calendar "From URL", Outlook.com "Subscribe"), so the token is the
only credential. A token is ``<lookup>_<secret>``: only the SHA-256 of the whole token is
stored, with the clear ``lookup`` to find its row in one indexed query (as API tokens,
``gateway.api_tokens``). One per user: making a new one replaces the old, and revoking
deletes it. Every feed request reads the row, so either bites on the next request on every
process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.models import FeedToken, User

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SHAPE = re.compile(r"([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})")
PATH_PREFIX = "feeds/"


@dataclass(frozen=True)
class Feed:
    """A user's live feed, without its secret."""

    user_id: int
    created_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_url(base_url: str, token: str) -> str:
    """The feed's address under the public base URL (which ends in "/")."""
    return f"{base_url}{PATH_PREFIX}{token}.ics"


def create_feed(session: Session, user: User) -> str:
    """Issue the user's feed token (shown once), replacing any earlier one."""
    lookup = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    token = f"{lookup}_{secrets.token_urlsafe(32)}"
    row = session.scalar(select(FeedToken).where(FeedToken.user_id == user.id))
    if row is None:
        row = FeedToken(user_id=user.id)
        session.add(row)
    row.lookup, row.secret_sha256, row.created_at = lookup, _digest(token), utcnow()
    session.flush()  # the unique constraints decide a race between two issuers
    return token


def revoke_feed(session: Session, user: User) -> bool:
    """Delete the user's feed token; False when there was none."""
    result = session.execute(delete(FeedToken).where(FeedToken.user_id == user.id))
    return bool(getattr(result, "rowcount", 0))


def user_feed(session: Session, user_id: int) -> Feed | None:
    row = session.scalar(select(FeedToken).where(FeedToken.user_id == user_id))
    return Feed(row.user_id, row.created_at) if row is not None else None


def resolve(session: Session, token: str) -> int | None:
    """The id of the user whose live feed ``token`` is, or None."""
    shape = _SHAPE.fullmatch(token)
    if shape is None:
        return None
    row = session.scalar(select(FeedToken).where(FeedToken.lookup == shape.group(1)))
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(token)):
        return None
    return row.user_id
