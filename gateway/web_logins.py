"""Web sign-in for people: web passwords, one-time invitations, session versions.

A web password is separate from app passwords: it signs in to the web pages only and never
logs in to CalDAV (``gateway.logins`` reads app passwords alone), and an app password never
signs in here. An invitation token is shown once; only its SHA-256 is stored, it expires, and
redeeming it is a compare-and-set on ``used_at``, so two browsers racing with one link get one
success. Every session cookie carries the session version it was issued under; signing out,
setting a password and an admin's reset bump the version, which ends those sessions on their
next request on every process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.errors import Invalid, NotFound
from gateway.models import User, WebInvitation, WebLogin

_hasher = PasswordHasher()
# Verified against when no user or no password matches, so a miss costs what a hit costs.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD = 10
MAX_PASSWORD = 200
INVITATION_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class Invitation:
    token: str
    expires_at: datetime


def invitation_link(base_url: str, token: str) -> str:
    """The page that redeems ``token``, under the public base URL (ending in "/")."""
    return f"{base_url}account/invite/{token}"


def sign_in_link(base_url: str) -> str:
    return f"{base_url}account/"


def check_password(password: str) -> str:
    """A web password of 10 to 200 characters; raises Invalid saying what is wrong."""
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"a web password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"a web password has at most {MAX_PASSWORD} characters")
    return password


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row(session: Session, user: User) -> WebLogin:
    row = session.get(WebLogin, user.id)
    if row is None:
        row = WebLogin(user_id=user.id, password_hash=None, session_version=1)
        session.add(row)
        session.flush()
    return row


def _bump(session: Session, user_id: int, **values: object) -> None:
    session.execute(update(WebLogin).where(WebLogin.user_id == user_id).values(
        session_version=WebLogin.session_version + 1, updated_at=utcnow(), **values))


def invite(session: Session, user: User, *, now: datetime | None = None,
           lifetime: timedelta = INVITATION_LIFETIME) -> Invitation:
    """A new one-time link token for ``user`` (shown once); the user's earlier unused links
    stop working."""
    now = now or utcnow()
    session.execute(delete(WebInvitation).where(WebInvitation.user_id == user.id,
                                                WebInvitation.used_at.is_(None)))
    token = secrets.token_urlsafe(32)
    session.add(WebInvitation(user_id=user.id, token_hash=_token_hash(token), created_at=now,
                              expires_at=now + lifetime))
    session.flush()
    return Invitation(token, now + lifetime)


def invitation_user(session: Session, token: str, *, now: datetime | None = None) -> User:
    """The user a live invitation is for; raises NotFound when it is unknown, used or old."""
    now = now or utcnow()
    row = session.scalar(select(WebInvitation).where(
        WebInvitation.token_hash == _token_hash(token)))
    if row is None:
        raise NotFound("this invitation link is not known; ask your admin for a new one")
    if row.used_at is not None:
        raise NotFound("this invitation link was already used; sign in, or ask for a new one")
    if row.expires_at <= now:
        raise NotFound("this invitation link has expired; ask your admin for a new one")
    user = session.get(User, row.user_id)
    assert user is not None
    return user


def redeem(session: Session, token: str, password: str, *, now: datetime | None = None
           ) -> User:
    """Set the web password through an invitation, which is used up (compare-and-set)."""
    now = now or utcnow()
    user = invitation_user(session, token, now=now)
    check_password(password)
    taken = session.execute(update(WebInvitation).where(
        WebInvitation.token_hash == _token_hash(token), WebInvitation.used_at.is_(None),
        WebInvitation.expires_at > now).values(used_at=now))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("this invitation link was already used; sign in, or ask for a new one")
    set_password(session, user, password)
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Set the web password; every session of the user ends."""
    check_password(password)
    _row(session, user)
    _bump(session, user.id, password_hash=_hasher.hash(password))


def reset(session: Session, user: User) -> None:
    """An admin's reset: the web password is cleared and every session ends."""
    _row(session, user)
    _bump(session, user.id, password_hash=None)


def end_sessions(session: Session, user_id: int) -> None:
    """Sign out: every session cookie of the user is refused from its next request."""
    _bump(session, user_id)


def find_person(session: Session, login: str) -> User | None:
    """The user a sign-in names: a username, or an email only one user has."""
    login = login.strip()
    user = session.scalar(select(User).where(User.username == login))
    if user is None and "@" in login:
        found = list(session.scalars(
            select(User).where(func.lower(User.email) == login.lower()).limit(2)))
        user = found[0] if len(found) == 1 else None
    return user


def verify(session: Session, login: str, password: str) -> tuple[User | None, int]:
    """The user whose web password this is, with their session version; (None, 0) for any
    miss. Costs one argon2 verification whether or not the user exists."""
    user = find_person(session, login)
    row = session.get(WebLogin, user.id) if user is not None else None
    stored = row.password_hash if row is not None and row.password_hash else None
    try:
        matched = bool(_hasher.verify(stored or _DUMMY_HASH, password)) and stored is not None
    except (VerificationError, InvalidHashError):
        matched = False
    if not matched or user is None or row is None:
        return None, 0
    return user, row.session_version


def session_version(session: Session, user_id: int) -> int:
    """The live session version (0: the user has no web login, so no session is valid)."""
    return session.scalar(
        select(WebLogin.session_version).where(WebLogin.user_id == user_id)) or 0


def has_password(session: Session, user: User) -> bool:
    row = session.get(WebLogin, user.id)
    return row is not None and row.password_hash is not None


def get_person(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user
