"""iMIP invitations to attendees when an entry changes on the CRM side (CLI, API, web).

Whether mail goes out follows the organiser's sync profile (``invitations``): ``never``;
``always``; ``after_first_sync``: only for entries made after the rep's first calendar sync
(``users.calendar_synced_at``), so connecting a client does not mail the backlog. Who gets
it: attendees who are contacts or external addresses; CRM users among them see the entry in
their Invitations calendar instead. What (RFC 5546 via RFC 6047):

- a new entry: ``REQUEST`` to every such attendee;
- a change of time, place or attendees: ``REQUEST`` (with the entry's bumped SEQUENCE) to
  those still invited, ``CANCEL`` to those taken off;
- a deletion: ``CANCEL`` to every such attendee;
- anything else (a new title, a re-save that changes nothing): no mail.

Everything is queued in the caller's transaction, one mail per recipient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.models import DiaryEntry, User
from gateway.outbound import CANCEL, REQUEST, OutboundSettings, enqueue, settings_of
from gateway.outbound_mail import cancel, request
from gateway.profiles import effective_profile


@dataclass(frozen=True)
class Snapshot:
    """What of an entry an attendee's invitation depends on."""

    start: datetime
    end: datetime
    all_day: bool
    location: str | None
    attendees: dict[str, str | None]  # email -> name, contacts and external addresses only


def snapshot(entry: DiaryEntry) -> Snapshot:
    return Snapshot(entry.start_utc, entry.end_utc, entry.all_day, entry.location or None,
                    {p.email: p.name for p in entry.participants if p.user_id is None})


def _organiser(session: Session, entry: DiaryEntry
               ) -> tuple[OutboundSettings, User] | None:
    """The settings and the organiser when this entry's attendees are mailed at all."""
    settings = settings_of(session)
    if settings is None or entry.organizer_user_id is None:
        return None
    user = session.get(User, entry.organizer_user_id)
    if user is None:
        return None
    mode = effective_profile(session, user.id).invitations
    if mode == "never":
        return None
    if mode == "after_first_sync" and (
            user.calendar_synced_at is None
            # Entries keep whole seconds: one made in the second of the sync counts as after.
            or entry.created_at < user.calendar_synced_at.replace(microsecond=0)):
        return None
    return settings, user


def _requests(session: Session, settings: OutboundSettings, user: User, entry: DiaryEntry,
              attendees: dict[str, str | None], *, update: bool) -> list[int]:
    return [enqueue(session, REQUEST, request(settings, user, entry, email, name, update=update),
                    user_id=user.id, entry_id=entry.id, settings=settings)
            for email, name in sorted(attendees.items())]


def _cancels(session: Session, settings: OutboundSettings, user: User, entry: DiaryEntry,
             attendees: dict[str, str | None], sequence: int) -> list[int]:
    return [enqueue(session, CANCEL, cancel(settings, user, entry, email, name,
                                            sequence=sequence),
                    user_id=user.id, entry_id=entry.id, settings=settings)
            for email, name in sorted(attendees.items())]


def entry_created(session: Session, entry: DiaryEntry) -> list[int]:
    """Invite the attendees of a new entry; returns the queued mails' ids."""
    found = _organiser(session, entry)
    if found is None:
        return []
    settings, user = found
    return _requests(session, settings, user, entry, snapshot(entry).attendees, update=False)


def entry_updated(session: Session, entry: DiaryEntry, before: Snapshot) -> list[int]:
    """Mail what the change means to each attendee, if it changed time, place or attendees."""
    after = snapshot(entry)
    if after == before:
        return []
    found = _organiser(session, entry)
    if found is None:
        return []
    settings, user = found
    removed = {email: name for email, name in before.attendees.items()
               if email not in after.attendees}
    return (_requests(session, settings, user, entry, after.attendees, update=True)
            + _cancels(session, settings, user, entry, removed, entry.sequence))


def entry_deleted(session: Session, entry: DiaryEntry) -> list[int]:
    """Tell every attendee the entry is cancelled."""
    found = _organiser(session, entry)
    if found is None:
        return []
    settings, user = found
    return _cancels(session, settings, user, entry, snapshot(entry).attendees,
                    entry.sequence + 1)
