"""Feed tokens: a rep's secret, revocable address of a read-only calendar feed.

The feed is ``<public url>feeds/<token>.ics``, read with no login by web calendars that
subscribe to a URL (Google Calendar "From URL", Outlook.com "Subscribe"), so the token is the
only credential; it is kept as ``gateway.secret_urls`` keeps such tokens (only a hash,
one per user, replaced or revoked on the next request on every process).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway import secret_urls
from gateway.models import FeedToken, User

PATH_PREFIX = "feeds/"


@dataclass(frozen=True)
class Feed:
    """A user's live feed, without its secret."""

    user_id: int
    created_at: datetime


def feed_url(base_url: str, token: str) -> str:
    """The feed's address under the public base URL (which ends in "/")."""
    return f"{base_url}{PATH_PREFIX}{token}.ics"


def create_feed(session: Session, user: User) -> str:
    """Issue the user's feed token (shown once), replacing any earlier one."""
    return secret_urls.issue(session, FeedToken, user)


def revoke_feed(session: Session, user: User) -> bool:
    """Delete the user's feed token; False when there was none."""
    return secret_urls.revoke(session, FeedToken, user)


def user_feed(session: Session, user_id: int) -> Feed | None:
    made = secret_urls.issued_at(session, FeedToken, user_id)
    return Feed(user_id, made) if made is not None else None


def resolve(session: Session, token: str) -> int | None:
    """The id of the user whose live feed ``token`` is, or None."""
    return secret_urls.resolve(session, FeedToken, token)
