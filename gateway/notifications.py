"""Mail to a rep when an event they made in their calendar app lands in the CRM.

One short mail per new entry (``gateway.outbound_mail.notification``), queued in the
transaction of the PUT that made it: never for a change to an entry the CRM already holds,
never for entries made on the CRM side (the rep made those there), and not for reps who
turned it off (``users.notify_client_adds``) or when the gateway sends no mail.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.models import DiaryEntry, User
from gateway.outbound import NOTIFICATION, enqueue, settings_of
from gateway.outbound_mail import notification


def client_added(session: Session, user: User, entry: DiaryEntry) -> int | None:
    """Queue the notification for ``entry``, new from ``user``'s calendar app; returns the
    mail's id, or None when none is sent."""
    settings = settings_of(session)
    if settings is None or not user.notify_client_adds or not user.email:
        return None
    return enqueue(session, NOTIFICATION, notification(settings, user, entry),
                   user_id=user.id, entry_id=entry.id, settings=settings)
