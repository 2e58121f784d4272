"""Users: validation, diary-sync eligibility, app passwords."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway import app_passwords
from gateway.db import Store
from gateway.errors import Conflict, Invalid
from gateway.models import AppPassword, User
from gateway.users import UserChanges, create_user, get_user, update_user


def test_create_user_validates_username_email_and_uniqueness(store: Store) -> None:
    with store.transaction() as session:
        user = create_user(session, "alice", "Alice@Example.com", name="Alice")
        assert user.email == "alice@example.com"
        assert user.email_sync and not user.diary_sync
        assert user.bcc_token and len(user.bcc_token) == 16
    for username, email, error in [
        ("alice", "other@example.com", Conflict),
        ("Bad Name", "x@example.com", Invalid),
        ("bob", "not-an-email", Invalid),
        ("bob", "bob@localhost", Invalid),
    ]:
        with pytest.raises(error), store.transaction() as session:
            create_user(session, username, email)
    with store.reading() as session:
        assert session.scalars(select(User.username)).all() == ["alice"]


def test_diary_sync_needs_email_sync(store: Store) -> None:
    with store.transaction() as session:
        user = create_user(session, "alice", "alice@example.com")
        update_user(session, user, UserChanges(email_sync=False))
    with pytest.raises(Invalid, match="diary sync needs email sync"), \
            store.transaction() as session:
        update_user(session, get_user(session, "alice"), UserChanges(diary_sync=True))
    # Turning email sync off under a diary-sync user is refused the same way.
    with store.transaction() as session:
        user = get_user(session, "alice")
        update_user(session, user, UserChanges(email_sync=True, diary_sync=True))
    with pytest.raises(Invalid, match="diary sync needs email sync"), \
            store.transaction() as session:
        update_user(session, get_user(session, "alice"), UserChanges(email_sync=False))
    with store.reading() as session:
        user = get_user(session, "alice")
        assert user.email_sync and user.diary_sync


def test_diary_sync_emails_are_unique_case_insensitively(store: Store) -> None:
    with store.transaction() as session:
        alice = create_user(session, "alice", "shared@example.com")
        update_user(session, alice, UserChanges(diary_sync=True))
        # The same address is fine for a user without diary sync...
        create_user(session, "alice2", "SHARED@example.com")
    # ...but not once that user wants diary sync too.
    with pytest.raises(Conflict, match="already the email of diary-sync user 'alice'"), \
            store.transaction() as session:
        update_user(session, get_user(session, "alice2"), UserChanges(diary_sync=True))
    # The database enforces the rule too, whatever the code path.
    with pytest.raises(IntegrityError), store.transaction() as session:
        session.execute(update(User).where(User.username == "alice2").values(diary_sync=True))


def test_app_passwords_are_hashed_verified_by_username_or_email_and_revocable(
    store: Store,
) -> None:
    with store.transaction() as session:
        alice = create_user(session, "alice", "alice@example.com")
        update_user(session, alice, UserChanges(diary_sync=True))
        issued = app_passwords.issue(session, alice, "iPhone")
        other = app_passwords.issue(session, alice, "")
    assert issued.label == "iPhone" and other.label == "app password 2"
    with store.reading() as session:
        stored = session.scalars(select(AppPassword.password_hash)).all()
        assert all(issued.password not in value and value.startswith("$argon2")
                   for value in stored)
        assert app_passwords.verify(session, "alice", issued.password) is not None
        assert app_passwords.verify(session, "ALICE@example.com", issued.password) is not None
        assert app_passwords.verify(session, "alice", "wrong-password") is None
        assert app_passwords.verify(session, "nobody", issued.password) is None
    with store.transaction() as session:
        app_passwords.revoke(session, get_user(session, "alice"), issued.id)
    with store.reading() as session:
        assert app_passwords.verify(session, "alice", issued.password) is None
        assert app_passwords.verify(session, "alice", other.password) is not None


def test_email_login_only_for_diary_sync_users(store: Store) -> None:
    with store.transaction() as session:
        bob = create_user(session, "bob", "bob@example.com")
        issued = app_passwords.issue(session, bob)
    with store.reading() as session:
        assert app_passwords.verify(session, "bob", issued.password) is not None
        assert app_passwords.verify(session, "bob@example.com", issued.password) is None
