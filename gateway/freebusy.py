"""Free/busy answers (RFC 5545 3.6.4 VFREEBUSY) and a rep's secret free/busy URL.

One VFREEBUSY covers the rep's whole diary (:mod:`gateway.busy`), merged into FREEBUSY
periods with FBTYPE=BUSY, as the CalDAV ``free-busy-query`` REPORT answers it (RFC 4791 7.10)
and as ``/freebusy/`` serves it to colleagues and booking tools.

The secret URL ``/freebusy/t/<token>.ifb`` needs no login, so its token is stored as feed
tokens are (:mod:`gateway.feeds`): the SHA-256 of the whole token, found by its clear
``lookup``; one per user, a new one replaces it, revoking deletes it, and every request reads
the row, so both bite on the next request on every process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from icalendar import Calendar, FreeBusy
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.availability import check_window
from gateway.busy import busy_periods
from gateway.clock import utcnow
from gateway.models import FreeBusyToken, User

PRODID = "-//crm-gateway//free-busy//EN"
PATH_PREFIX = "freebusy/"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SHAPE = re.compile(r"([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})")


def vfreebusy(session: Session, user: User, start: datetime, end: datetime,
              max_days: int) -> str:
    """The user's busy time in [start, end) as a VCALENDAR holding one VFREEBUSY."""
    check_window(start, end, max_days)
    return render(user, start, end, busy_periods(session, user.id, start, end))


def render(user: User, start: datetime, end: datetime,
           periods: list[tuple[datetime, datetime]]) -> str:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    component = FreeBusy()
    component.add("dtstamp", utcnow().replace(microsecond=0))
    component.add("dtstart", start.replace(microsecond=0))
    component.add("dtend", end.replace(microsecond=0))
    component.add("organizer", f"mailto:{user.email.lower()}")
    for period in periods:
        component.add("freebusy", period, parameters={"FBTYPE": "BUSY"})
    calendar.add_component(component)
    return calendar.to_ical().decode()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_url(base_url: str, token: str) -> str:
    """The secret URL under the public base URL (which ends in "/")."""
    return f"{base_url}{PATH_PREFIX}t/{token}.ifb"


def create_token(session: Session, user: User) -> str:
    """Issue the user's secret free/busy token (shown once), replacing any earlier one."""
    lookup = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    token = f"{lookup}_{secrets.token_urlsafe(32)}"
    row = session.scalar(select(FreeBusyToken).where(FreeBusyToken.user_id == user.id))
    if row is None:
        row = FreeBusyToken(user_id=user.id)
        session.add(row)
    row.lookup, row.secret_sha256, row.created_at = lookup, _digest(token), utcnow()
    session.flush()  # the unique constraints decide a race between two issuers
    return token


def revoke_token(session: Session, user: User) -> bool:
    """Delete the user's token; False when there was none."""
    result = session.execute(delete(FreeBusyToken).where(FreeBusyToken.user_id == user.id))
    return bool(getattr(result, "rowcount", 0))


def has_token(session: Session, user_id: int) -> datetime | None:
    """When the user's live token was made, or None."""
    return session.scalar(select(FreeBusyToken.created_at)
                          .where(FreeBusyToken.user_id == user_id))


def resolve(session: Session, token: str) -> int | None:
    """The id of the user whose live token ``token`` is, or None."""
    shape = _SHAPE.fullmatch(token)
    if shape is None:
        return None
    row = session.scalar(select(FreeBusyToken).where(FreeBusyToken.lookup == shape.group(1)))
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(token)):
        return None
    return row.user_id
