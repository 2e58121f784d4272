"""App passwords: argon2-hashed, labelled, revocable; the clear text is shown once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.errors import Invalid, NotFound
from gateway.models import AppPassword, User
from gateway.users import find_login

_hasher = PasswordHasher()
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o/1/l: read aloud and typed on phones


@dataclass(frozen=True)
class IssuedPassword:
    id: int
    label: str
    password: str


def generate() -> str:
    """Four groups of four, ~80 bits: xxxx-xxxx-xxxx-xxxx."""
    groups = ("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))
    return "-".join(groups)


def issue(session: Session, user: User, label: str = "") -> IssuedPassword:
    label = label.strip() or f"app password {len(user.app_passwords) + 1}"
    if len(label) > 100:
        raise Invalid("an app password label has at most 100 characters")
    password = generate()
    row = AppPassword(user_id=user.id, label=label, password_hash=_hasher.hash(password))
    session.add(row)
    session.flush()
    return IssuedPassword(row.id, label, password)


def revoke(session: Session, user: User, password_id: int) -> AppPassword:
    row = session.get(AppPassword, password_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"user {user.username!r} has no app password {password_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def verify(session: Session, login: str, password: str) -> User | None:
    """The user whose live app password this is, or None. Costs one argon2 per candidate."""
    user = find_login(session, login)
    if user is None or not matches(session, user, password):
        return None
    return user


def matches(session: Session, user: User, password: str) -> bool:
    """Whether ``password`` is one of ``user``'s live app passwords (one argon2 each)."""
    rows = session.scalars(
        select(AppPassword).where(AppPassword.user_id == user.id, AppPassword.revoked_at.is_(None))
    )
    for row in rows:
        try:
            _hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            continue
        return True
    return False
