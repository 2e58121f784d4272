"""Sync profiles: a global default plus per-user overrides (None = inherit the default)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import Invalid, ReadOnly
from gateway.models import SyncProfile, User

RECORDS = ("all", "related")
DIRECTIONS = ("two_way", "crm_to_calendar", "calendar_to_crm")
# iMIP mail to attendees on CRM-side changes: never, always, or only for entries made after
# the rep's first calendar sync (connecting a client sends no invitations for the backlog).
INVITATIONS = ("never", "always", "after_first_sync")
# Settings an admin may let reps change for themselves (pause and what is synced are theirs
# anyway, on "My sync").
# What a CRM-side booking over busy time does (gateway.conflicts).
CONFLICTS = ("allow", "warn", "refuse")
REP_CHOOSABLE = ("records", "direction", "sync_invitees")


@dataclass(frozen=True)
class Profile:
    """The effective settings for one user."""

    records: str = "all"
    direction: str = "two_way"
    sync_invitees: bool = True
    paused: bool = False
    log_email: bool = True  # False: "calendar only", the user's mail is not logged
    invitations: str = "never"
    conflicts: str = "allow"

    @property
    def calendar_writable(self) -> bool:
        """Whether the user's type calendars accept writes from the client."""
        return not self.paused and self.direction != "crm_to_calendar"


@dataclass(frozen=True)
class ProfileChanges:
    records: str | None = None
    direction: str | None = None
    sync_invitees: bool | None = None
    paused: bool | None = None
    log_email: bool | None = None
    invitations: str | None = None
    conflicts: str | None = None

    def check(self) -> None:
        if self.records is not None and self.records not in RECORDS:
            raise Invalid(f"records must be one of {', '.join(RECORDS)}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise Invalid(f"direction must be one of {', '.join(DIRECTIONS)}")
        if self.invitations is not None and self.invitations not in INVITATIONS:
            raise Invalid(f"invitations must be one of {', '.join(INVITATIONS)}")
        if self.conflicts is not None and self.conflicts not in CONFLICTS:
            raise Invalid(f"conflicts must be one of {', '.join(CONFLICTS)}")


_FIELDS = tuple(field.name for field in fields(Profile))


def _global_row(session: Session) -> SyncProfile | None:
    return session.scalar(select(SyncProfile).where(SyncProfile.is_global))


def _user_row(session: Session, user_id: int) -> SyncProfile | None:
    return session.scalar(select(SyncProfile).where(SyncProfile.user_id == user_id))


def _merge(base: Profile, row: SyncProfile | None) -> Profile:
    if row is None:
        return base
    values = {name: getattr(row, name) for name in _FIELDS}
    return Profile(**{
        name: getattr(base, name) if value is None else value for name, value in values.items()
    })


def global_profile(session: Session) -> Profile:
    return _merge(Profile(), _global_row(session))


def effective_profile(session: Session, user_id: int) -> Profile:
    return _merge(global_profile(session), _user_row(session, user_id))


def update_profile(session: Session, user: User | None, changes: ProfileChanges) -> None:
    """Set fields of the global default (user None) or of one user's overrides."""
    changes.check()
    row = _global_row(session) if user is None else _user_row(session, user.id)
    if row is None:
        row = SyncProfile(is_global=user is None, user_id=user.id if user else None)
        session.add(row)
    for name in _FIELDS:
        value = getattr(changes, name)
        if value is not None:
            setattr(row, name, value)
    session.flush()


def overridden_fields(session: Session, user_id: int) -> tuple[str, ...]:
    """The fields the user's own profile sets; every other one is inherited."""
    row = _user_row(session, user_id)
    return tuple(name for name in _FIELDS if row is not None and getattr(row, name) is not None)


def explained_profile(session: Session, user_id: int) -> list[tuple[str, object, bool]]:
    """Each setting of the user's effective profile: (name, value, whether it is inherited
    from the global default rather than overridden for the user)."""
    row = _user_row(session, user_id)
    effective = effective_profile(session, user_id)
    return [(name, getattr(effective, name), row is None or getattr(row, name) is None)
            for name in _FIELDS]


def rep_choices(session: Session) -> tuple[str, ...]:
    """The settings reps may change for themselves (none unless an admin allows some)."""
    row = _global_row(session)
    return tuple(name for name in REP_CHOOSABLE if row is not None and name in
                 (row.rep_choices or ()))


def set_rep_choices(session: Session, names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in REP_CHOOSABLE]
    if unknown:
        raise Invalid(f"reps may be allowed to change {', '.join(REP_CHOOSABLE)}; not "
                      f"{', '.join(unknown)}")
    row = _global_row(session)
    if row is None:
        row = SyncProfile(is_global=True, user_id=None)
        session.add(row)
    row.rep_choices = [name for name in REP_CHOOSABLE if name in names]
    session.flush()


def check_rep_may_change(session: Session, changes: ProfileChanges) -> None:
    """Refuse a rep's own change of a setting the admin keeps (``rep_choices``)."""
    allowed = rep_choices(session)
    kept = [name for name in REP_CHOOSABLE
            if name not in allowed and getattr(changes, name) is not None]
    if kept:
        raise ReadOnly(f"your admin sets {', '.join(kept).replace('_', ' ')} for you")
