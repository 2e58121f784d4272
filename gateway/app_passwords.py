"""App passwords: argon2-hashed, labelled, revocable; the clear text is shown once.

A password is four groups of four (``xxxx-xxxx-xxxx-xxxx``, ~80 bits). Its first group is
stored in clear as the row's ``lookup``: a login finds the one live password it can be with one
indexed query and runs at most one argon2 verification, whatever the number of passwords. The
other ~60 bits stay behind argon2. Passwords issued before ``lookup`` existed are still tried
one by one until their first successful login fills it in (``record_use``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, false, func, or_, select, text, update
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.errors import Invalid, NotFound
from gateway.models import AppPassword, User

_hasher = PasswordHasher()
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: read aloud and typed on phones
_SHAPE = re.compile(f"([{_ALPHABET}]{{4}})(-[{_ALPHABET}]{{4}}){{3}}")
_ISSUE_TRIES = 20

# Spelled as uq_users_diary_sync_email's WHERE clause: SQLite uses a partial index only for
# a query that repeats its condition literally (``diary_sync = 1`` scans the table).
_DIARY_SYNC = text("users.diary_sync")

# last_used_at is written at most this often per password: a syncing phone does not turn
# every request into a write.
USE_RECORD_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedPassword:
    id: int
    label: str
    password: str


@dataclass(frozen=True)
class Candidate:
    """A live app password a presented password may be; ``legacy``: found without lookup."""

    id: int
    password_hash: str
    legacy: bool
    last_used_at: datetime | None


@dataclass(frozen=True)
class LoginState:
    """What one query tells about a login: the user and the passwords worth verifying."""

    user_id: int
    username: str
    diary_sync: bool
    candidates: tuple[Candidate, ...]


def generate() -> str:
    """Four groups of four, ~80 bits: xxxx-xxxx-xxxx-xxxx."""
    groups = ("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))
    return "-".join(groups)


def lookup_of(password: str) -> str | None:
    """The lookup of a password of the issued shape; None for anything else."""
    found = _SHAPE.fullmatch(password)
    return found.group(1) if found else None


def issue(session: Session, user: User, label: str = "") -> IssuedPassword:
    label = label.strip() or f"app password {len(user.app_passwords) + 1}"
    if len(label) > 100:
        raise Invalid("an app password label has at most 100 characters")
    live = set(session.scalars(select(AppPassword.lookup).where(
        AppPassword.user_id == user.id, AppPassword.revoked_at.is_(None))))
    for _ in range(_ISSUE_TRIES):
        password = generate()
        if lookup_of(password) not in live:
            break
    row = AppPassword(user_id=user.id, label=label, password_hash=_hasher.hash(password),
                      lookup=lookup_of(password))
    session.add(row)
    session.flush()  # the unique index decides a race between two issuers
    return IssuedPassword(row.id, label, password)


def revoke(session: Session, user: User, password_id: int) -> AppPassword:
    row = session.get(AppPassword, password_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"user {user.username!r} has no app password {password_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def login_state(session: Session, login: str, password: str) -> LoginState | None:
    """The user ``login`` names (a username, or a diary-sync user's email) and the live
    passwords ``password`` can be: the one with its lookup, then any without one. One query;
    None when no user has that login."""
    lookup = lookup_of(password)
    joined = and_(
        AppPassword.user_id == User.id,
        AppPassword.revoked_at.is_(None),
        or_(AppPassword.lookup == lookup, AppPassword.lookup.is_(None))
        if lookup is not None else false(),
    )
    # Usernames never contain "@", so a login is one or the other (users.find_login).
    named = (
        and_(func.lower(User.email) == login.strip().lower(), _DIARY_SYNC)
        if "@" in login else User.username == login
    )
    rows = session.execute(
        select(User.id, User.username, User.diary_sync, AppPassword.id,
               AppPassword.password_hash, AppPassword.lookup, AppPassword.last_used_at)
        .outerjoin(AppPassword, joined).where(named).order_by(AppPassword.id)
    ).all()
    if not rows:
        return None
    candidates = sorted(
        (Candidate(row[3], row[4], row[5] is None, row[6]) for row in rows if row[3] is not None),
        key=lambda candidate: candidate.legacy,
    )
    first = rows[0]
    return LoginState(first[0], first[1], bool(first[2]), tuple(candidates))


def verify_hash(password_hash: str, password: str) -> bool:
    """One argon2 verification (the expensive step; ~50-250 ms of CPU)."""
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def use_is_due(candidate: Candidate, now: datetime) -> bool:
    """Whether a login with ``candidate`` should be written down (see USE_RECORD_INTERVAL)."""
    return (candidate.legacy or candidate.last_used_at is None
            or now - candidate.last_used_at >= USE_RECORD_INTERVAL)


def record_use(session: Session, candidate: Candidate, password: str, now: datetime,
               user_id: int | None = None) -> None:
    """Set ``last_used_at`` (unless another process just did) and, for a password issued
    before lookups existed, its lookup; the user's first calendar sync when this is it."""
    values: dict[str, object] = {"last_used_at": now}
    if candidate.legacy:
        values["lookup"] = lookup_of(password)
    session.execute(
        update(AppPassword)
        .where(AppPassword.id == candidate.id,
               or_(AppPassword.last_used_at.is_(None),
                   AppPassword.last_used_at <= now - USE_RECORD_INTERVAL,
                   AppPassword.lookup.is_(None)))
        .values(**values)
    )
    if user_id is not None:
        session.execute(update(User).where(User.id == user_id,
                                           User.calendar_synced_at.is_(None))
                        .values(calendar_synced_at=now))


def verify(session: Session, login: str, password: str) -> User | None:
    """The user whose live app password this is, or None. At most one argon2 per password
    with a lookup (passwords issued before lookups existed cost one each)."""
    state = login_state(session, login, password)
    if state is None:
        return None
    if any(verify_hash(candidate.password_hash, password) for candidate in state.candidates):
        return session.get(User, state.user_id)
    return None
