"""Free/busy answers (RFC 5545 3.6.4 VFREEBUSY) and a rep's secret free/busy URL.

One VFREEBUSY covers the rep's whole diary (:mod:`gateway.busy`), merged into FREEBUSY
periods with FBTYPE=BUSY, as the CalDAV ``free-busy-query`` REPORT answers it (RFC 4791 7.10)
and as ``/freebusy/`` serves it to colleagues and booking tools.

The secret URL ``/freebusy/t/<token>.ifb`` needs no login; its token is kept as
``gateway.secret_urls`` keeps such tokens (only a hash, one per user, replaced or revoked on
the next request on every process).
"""

from __future__ import annotations

from datetime import datetime

from icalendar import Calendar, FreeBusy
from sqlalchemy.orm import Session

from gateway import secret_urls
from gateway.availability import check_window
from gateway.busy import busy_periods
from gateway.clock import utcnow
from gateway.models import FreeBusyToken, User

PRODID = "-//crm-gateway//free-busy//EN"
PATH_PREFIX = "freebusy/"


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


def token_url(base_url: str, token: str) -> str:
    """The secret URL under the public base URL (which ends in "/")."""
    return f"{base_url}{PATH_PREFIX}t/{token}.ifb"


def create_token(session: Session, user: User) -> str:
    """Issue the user's secret free/busy token (shown once), replacing any earlier one."""
    return secret_urls.issue(session, FreeBusyToken, user)


def revoke_token(session: Session, user: User) -> bool:
    """Delete the user's token; False when there was none."""
    return secret_urls.revoke(session, FreeBusyToken, user)


def has_token(session: Session, user_id: int) -> datetime | None:
    """When the user's live token was made, or None."""
    return secret_urls.issued_at(session, FreeBusyToken, user_id)


def resolve(session: Session, token: str) -> int | None:
    """The id of the user whose live token ``token`` is, or None."""
    return secret_urls.resolve(session, FreeBusyToken, token)
