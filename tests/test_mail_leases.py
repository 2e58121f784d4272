"""Leases, backoff and recorded outcomes of mail accounts, on SQLite and PostgreSQL.

Leasing is what keeps several pollers off one mailbox: whatever the interleaving, an account
is held by at most one owner until its lease runs out, and a holder whose lease was taken
can no longer write for that account.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from imap_world import SECRET_KEY, account_state
from sqlalchemy import update

from gateway.clock import utcnow
from gateway.db import Store
from gateway.mail_accounts import MailSettings, pause_account, set_account
from gateway.mail_import import LeaseRef, commit_batch
from gateway.mail_leases import (
    LEASE_SECONDS,
    LeaseLost,
    backoff_delay,
    lease_accounts,
    record_failure,
    record_success,
    renew,
)
from gateway.models import MailAccount, User
from gateway.secrets import SecretBox
from gateway.users import create_user, get_user


def make_accounts(store: Store, count: int) -> None:
    box = SecretBox(SECRET_KEY)
    with store.transaction() as session:
        for n in range(count):
            user = create_user(session, f"rep{n}", f"rep{n}@acme.example")
            set_account(session, user, MailSettings("127.0.0.1", 143, "none", f"rep{n}", "pw"),
                        box)


def test_concurrent_pollers_never_lease_one_account_twice(store: Store) -> None:
    make_accounts(store, 24)
    taken: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def poller(owner: str) -> None:
        start.wait()
        mine = taken.setdefault(owner, [])
        while batch := lease_accounts(store, owner, utcnow(), limit=3):
            mine.extend(batch)

    threads = [threading.Thread(target=poller, args=(f"poller-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [account for ids in taken.values() for account in ids]
    assert sorted(every) == sorted(set(every)) and len(every) == 24
    with store.reading() as session:
        owners = {a.id: a.lease_owner for a in session.query(MailAccount)}
    assert all(owners[a] == owner for owner, ids in taken.items() for a in ids)


def test_an_expired_lease_passes_on_and_the_old_holder_can_no_longer_write(
    store: Store,
) -> None:
    make_accounts(store, 1)
    now = utcnow()
    [account_id] = lease_accounts(store, "first", now, limit=5)
    assert lease_accounts(store, "second", now + timedelta(seconds=10), limit=5) == []
    later = now + timedelta(seconds=LEASE_SECONDS + 1)
    assert lease_accounts(store, "second", later, limit=5) == [account_id]

    with pytest.raises(LeaseLost):
        renew(store, account_id, "first", later)
    with store.reading() as session:
        user_id = session.query(User.id).scalar()
    with pytest.raises(LeaseLost):
        commit_batch(store, LeaseRef(account_id, user_id, "first"), None,  # type: ignore[arg-type]
                     folder="INBOX", uidvalidity=1, cursor_uid=10, messages=[], now=later)
    assert account_state(store, "rep0").lease_owner == "second"


def test_paused_accounts_and_users_without_email_sync_are_not_leased(store: Store) -> None:
    make_accounts(store, 3)
    with store.transaction() as session:
        pause_account(session, get_user(session, "rep0"))
        session.execute(update(User).where(User.username == "rep1").values(email_sync=False))
    leased = lease_accounts(store, "me", utcnow(), limit=10)
    assert leased == [account_state(store, "rep2").id]


def test_failures_back_off_exponentially_up_to_the_cap_and_success_resets(
    store: Store,
) -> None:
    make_accounts(store, 1)
    waits = []
    now = utcnow()
    for _ in range(5):
        [account_id] = lease_accounts(store, "me", now, limit=1, due_only=False)
        record_failure(store, account_id, "me", now, "connect failed: refused",
                       cap_seconds=300, pause=False)
        state = account_state(store, "rep0")
        waits.append((state.next_poll_at - now).total_seconds())
        assert state.lease_owner is None and not state.paused
    assert waits == [60, 120, 240, 300, 300]
    assert state.consecutive_failures == 5 and state.last_error == "connect failed: refused"
    assert lease_accounts(store, "me", now + timedelta(seconds=299), limit=1) == []

    [account_id] = lease_accounts(store, "me", now + timedelta(seconds=300), limit=1)
    record_success(store, account_id, "me", now, next_poll_at=now + timedelta(seconds=300),
                   keep_lease=False)
    state = account_state(store, "rep0")
    assert (state.consecutive_failures, state.last_success_at) == (0, now)


def test_backoff_delay_doubles_from_a_minute() -> None:
    assert [backoff_delay(n, 3600).total_seconds() for n in (1, 2, 3, 7, 50)] == [
        60, 120, 240, 3600, 3600]
