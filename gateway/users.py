"""CRM users: creation, settings, diary-sync eligibility."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from gateway.bcc_addresses import new_bcc_token
from gateway.errors import Conflict, Invalid, NotFound
from gateway.keyset import Page, page
from gateway.models import User

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
EMAIL_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def normalise_email(value: str) -> str:
    """Lowercase and check an addr-spec; raises Invalid naming the value."""
    email = value.strip().lower()
    if not EMAIL_RE.fullmatch(email) or ".." in email or len(email) > 320:
        raise Invalid(f"{value!r} is not a valid email address")
    return email


def check_username(value: str) -> str:
    if not USERNAME_RE.fullmatch(value):
        raise Invalid(
            f"{value!r} is not a valid username: use 1-64 lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return value


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def find_login(session: Session, login: str) -> User | None:
    """The user a CalDAV login names: a username, or the email of a diary-sync user."""
    user = session.scalar(select(User).where(User.username == login))
    if user is None and "@" in login:
        user = session.scalar(
            select(User).where(func.lower(User.email) == login.strip().lower(), User.diary_sync)
        )
    return user


def create_user(
    session: Session, username: str, email: str, *, name: str = "", admin: bool = False
) -> User:
    check_username(username)
    address = normalise_email(email)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"a user named {username!r} already exists")
    user = User(
        username=username, email=address, name=name, is_admin=admin,
        email_sync=True, diary_sync=False, bcc_token=new_bcc_token(),
    )
    session.add(user)
    session.flush()
    return user


@dataclass(frozen=True)
class UserChanges:
    email: str | None = None
    name: str | None = None
    email_sync: bool | None = None
    diary_sync: bool | None = None
    notify_client_adds: bool | None = None  # mail when a calendar app adds to the CRM


def check_diary_sync_eligible(session: Session, user: User, email: str, email_sync: bool) -> None:
    """Diary sync needs email sync on, a valid email, unique among diary-sync users."""
    if not email_sync:
        raise Invalid(
            f"user {user.username!r}: diary sync needs email sync on "
            "(use --email-sync on, or turn diary sync off)"
        )
    normalise_email(email)
    clash = session.scalar(
        select(User.username).where(
            func.lower(User.email) == email.lower(), User.diary_sync, User.id != user.id
        )
    )
    if clash is not None:
        raise Conflict(
            f"user {user.username!r}: {email} is already the email of diary-sync user "
            f"{clash!r}; diary-sync emails must be unique"
        )


def update_user(session: Session, user: User, changes: UserChanges) -> bool:
    """Apply changes; returns True when diary-sync publication must be recomputed."""
    email = normalise_email(changes.email) if changes.email is not None else user.email
    email_sync = user.email_sync if changes.email_sync is None else changes.email_sync
    diary_sync = user.diary_sync if changes.diary_sync is None else changes.diary_sync
    if diary_sync:
        check_diary_sync_eligible(session, user, email, email_sync)
    republish = diary_sync != user.diary_sync or (diary_sync and email != user.email)
    user.email = email
    user.email_sync = email_sync
    user.diary_sync = diary_sync
    if changes.name is not None:
        user.name = changes.name
    if changes.notify_client_adds is not None:
        user.notify_client_adds = changes.notify_client_adds
    session.flush()
    return republish


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def page_users(session: Session, *, limit: int, after: int | None) -> Page[User]:
    """Users by id, O(page)."""
    return page(session, select(User).options(selectinload(User.app_passwords)), User.id,
                limit, after)
