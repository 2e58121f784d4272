"""Who polls which mailbox, and what the last poll of each left behind.

Several poller processes share the accounts through the database: an account is leased to
one owner until `lease_until`, and every write the holder makes (a batch of activities with
its folder cursor, the outcome of a pass, a renewal) re-checks in the same transaction that
it still holds the lease and that the account is still to be polled (not paused, email sync
on), so ``mail pause`` stops a session that holds the account at its next write. PostgreSQL
picks due accounts with ``FOR UPDATE SKIP LOCKED``; SQLite, whose writers are serialised by
``BEGIN IMMEDIATE``, takes each with a conditional UPDATE.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from gateway.db import Store
from gateway.models import MailAccount, MailFolderCursor, User
from gateway.secrets import SecretBox
from gateway.webhook_payloads import mail_account_failed

# A holder renews well before this runs out (see bcc_ingest.imap.service).
LEASE_SECONDS = 120
BACKOFF_BASE_SECONDS = 60


class LeaseLost(Exception):
    """The lease ran out and another poller may have taken the account."""


class PollingStopped(LeaseLost):
    """The account was paused, or its user's email sync turned off, while it was held: the
    holder must stop and give the lease back."""


@dataclass(frozen=True)
class PollTarget:
    """What one poll of one account needs, read in one short transaction."""

    account_id: int
    user_id: int
    username: str
    host: str
    port: int
    tls: str
    login: str
    password: str
    folders: tuple[str, ...]
    cursors: dict[str, tuple[int, int]]  # folder -> (uidvalidity, last_uid)

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return f"PollTarget(account_id={self.account_id}, user={self.username!r})"


def _leasable(now: datetime) -> list[ColumnElement[bool]]:
    return [
        MailAccount.paused.is_(False),
        User.email_sync.is_(True),
        or_(MailAccount.lease_until.is_(None), MailAccount.lease_until < now),
    ]


def lease_accounts(
    store: Store,
    owner: str,
    now: datetime,
    *,
    limit: int,
    usernames: Sequence[str] | None = None,
    due_only: bool = True,
    exclude: Collection[int] = (),
) -> list[int]:
    """Lease up to `limit` accounts to `owner`; returns their ids.

    `due_only` skips accounts whose `next_poll_at` lies ahead (backoff, interval); a
    one-off pass asked for by an administrator ignores it.
    """
    if limit <= 0:
        return []
    query = select(MailAccount.id).join(User, User.id == MailAccount.user_id).where(*_leasable(now))
    if due_only:
        query = query.where(MailAccount.next_poll_at <= now)
    if usernames is not None:
        query = query.where(User.username.in_(list(usernames)))
    if exclude:
        query = query.where(MailAccount.id.not_in(list(exclude)))
    query = query.order_by(MailAccount.next_poll_at, MailAccount.id).limit(limit)
    until = now + timedelta(seconds=LEASE_SECONDS)
    with store.transaction() as session:
        if store.dialect == "postgresql":
            ids = list(session.scalars(query.with_for_update(skip_locked=True, of=MailAccount)))
            if ids:
                session.execute(
                    update(MailAccount).where(MailAccount.id.in_(ids))
                    .values(lease_owner=owner, lease_until=until,
                            updated_at=MailAccount.updated_at)
                )
            return ids
        leased = []
        for account_id in session.scalars(query):
            result = session.execute(
                update(MailAccount)
                .where(MailAccount.id == account_id, MailAccount.paused.is_(False),
                       or_(MailAccount.lease_until.is_(None), MailAccount.lease_until < now))
                .values(lease_owner=owner, lease_until=until, updated_at=MailAccount.updated_at)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                leased.append(account_id)
        return leased


def _still_polled() -> list[ColumnElement[bool]]:
    # Read by every renewal and every commit, so that a pause bites on a held session too.
    email_sync = select(User.id).where(User.id == MailAccount.user_id, User.email_sync.is_(True))
    return [MailAccount.paused.is_(False), email_sync.exists()]


def _lost(session: Session, account_id: int, owner: str) -> LeaseLost:
    """Why the holder's conditional update matched nothing."""
    row = session.execute(
        select(MailAccount.lease_owner, MailAccount.paused, MailAccount.paused_reason,
               User.email_sync)
        .join(User, User.id == MailAccount.user_id).where(MailAccount.id == account_id)
    ).one_or_none()
    if row is None:
        return LeaseLost(f"mail account {account_id} was removed")
    if row.lease_owner == owner and row.paused:
        return PollingStopped(f"mail account {account_id} was paused: {row.paused_reason}")
    if row.lease_owner == owner and not row.email_sync:
        return PollingStopped(f"mail account {account_id}: email sync was turned off")
    return LeaseLost(f"mail account {account_id}: lease of {owner} ran out")


def hold(session: Session, account_id: int, owner: str, now: datetime) -> None:
    """Extend the lease inside the caller's transaction; raises LeaseLost if it is gone, and
    PollingStopped if the account must not be polled any more."""
    result = session.execute(
        update(MailAccount)
        # Owner alone decides: a taker overwrites lease_owner, so ours means nobody took it.
        .where(MailAccount.id == account_id, MailAccount.lease_owner == owner, *_still_polled())
        .values(lease_until=now + timedelta(seconds=LEASE_SECONDS),
                updated_at=MailAccount.updated_at)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise _lost(session, account_id, owner)


def renew(store: Store, account_id: int, owner: str, now: datetime) -> None:
    with store.transaction() as session:
        hold(session, account_id, owner, now)


def load_target(store: Store, account_id: int, box: SecretBox) -> PollTarget:
    """The account's settings with its password decrypted (raises SecretError)."""
    with store.reading() as session:
        account = session.get(MailAccount, account_id)
        if account is None:
            raise LeaseLost(f"mail account {account_id} was removed")
        user = session.get(User, account.user_id)
        assert user is not None  # the foreign key guarantees it
        cursors = {
            c.folder: (c.uidvalidity, c.last_uid)
            for c in session.scalars(
                select(MailFolderCursor).where(MailFolderCursor.mail_account_id == account_id)
            )
        }
        secret = account.secret
        return PollTarget(
            account_id=account.id, user_id=user.id, username=user.username,
            host=account.host, port=account.port, tls=account.tls, login=account.login,
            password=box.decrypt(secret), folders=tuple(account.folders or ("INBOX",)),
            cursors=cursors,
        )


def save_cursor(
    session: Session, account_id: int, folder: str, uidvalidity: int, last_uid: int,
    now: datetime,
) -> None:
    """Move a folder's cursor forward (a new UIDVALIDITY starts it afresh)."""
    cursor = session.scalar(
        select(MailFolderCursor).where(
            MailFolderCursor.mail_account_id == account_id, MailFolderCursor.folder == folder
        )
    )
    if cursor is None:
        session.add(MailFolderCursor(mail_account_id=account_id, folder=folder,
                                     uidvalidity=uidvalidity, last_uid=last_uid, updated_at=now))
    elif cursor.uidvalidity != uidvalidity:
        cursor.uidvalidity, cursor.last_uid, cursor.updated_at = uidvalidity, last_uid, now
    elif last_uid > cursor.last_uid:
        cursor.last_uid, cursor.updated_at = last_uid, now
    session.flush()


def record_success(
    store: Store, account_id: int, owner: str, now: datetime, *, next_poll_at: datetime,
    keep_lease: bool,
) -> None:
    """A pass completed: clear the failure count; release the lease unless still polling.

    Keeping it raises LeaseLost when it is gone, and PollingStopped (the lease given back)
    when the account may not be polled any more.
    """
    values: dict[str, object] = {
        "last_success_at": now, "consecutive_failures": 0, "next_poll_at": next_poll_at,
        "updated_at": MailAccount.updated_at,
    }
    if keep_lease:
        values["lease_until"] = now + timedelta(seconds=LEASE_SECONDS)
    else:
        values.update(lease_owner=None, lease_until=None)
    held = [MailAccount.id == account_id, MailAccount.lease_owner == owner]
    lost = None
    with store.transaction() as session:
        result = session.execute(
            update(MailAccount).where(*held, *(_still_polled() if keep_lease else ()))
            .values(**values)
        )
        if keep_lease and result.rowcount != 1:  # type: ignore[attr-defined]
            lost = _lost(session, account_id, owner)
            if isinstance(lost, PollingStopped):  # the pass is recorded; the lease goes back
                session.execute(update(MailAccount).where(*held).values(
                    **{**values, "lease_owner": None, "lease_until": None}))
    if lost is not None:
        raise lost


def backoff_delay(failures: int, cap_seconds: int) -> timedelta:
    """60 s after the first failure, doubling each time, never more than `cap_seconds`."""
    exponent = min(max(failures - 1, 0), 30)
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2**exponent, cap_seconds))


def record_failure(
    store: Store, account_id: int, owner: str, now: datetime, error: str, *,
    cap_seconds: int, pause: bool,
) -> None:
    """A pass failed: count it, back off, release the lease; `pause` stops polling for good."""
    with store.transaction() as session:
        account = session.get(MailAccount, account_id)
        if account is None or account.lease_owner != owner:
            return  # removed, or no longer ours: the new holder records its own outcome
        failures = account.consecutive_failures + 1
        session.execute(
            update(MailAccount).where(MailAccount.id == account_id).values(
                last_error=error, last_error_at=now, consecutive_failures=failures,
                next_poll_at=now + backoff_delay(failures, cap_seconds),
                lease_owner=None, lease_until=None,
                paused=account.paused or pause,
                paused_reason=error if pause else account.paused_reason,
                updated_at=MailAccount.updated_at,
            )
        )
        if failures == 1:  # from working to failing: later failures of the run stay quiet
            mail_account_failed(session, account, error, account.paused or pause)


def release(store: Store, account_id: int, owner: str, *, next_poll_at: datetime) -> None:
    """Give the lease back without recording an outcome (the poller is stopping)."""
    with store.transaction() as session:
        session.execute(
            update(MailAccount)
            .where(MailAccount.id == account_id, MailAccount.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, next_poll_at=next_poll_at,
                    updated_at=MailAccount.updated_at)
        )
