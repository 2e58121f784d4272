"""A small CRM and its reps' mailboxes for the IMAP tests, and what they observe.

The CRM: reps alice and bob at acme.example; the account Globex (globex.example) with the
contact Hank. Mailboxes live in the real Dovecot the test starts (tests/peers/dovecot.py).
What tests observe comes from the database and from Dovecot itself (its flags, its log of
how many message bodies each session fetched), never from the poller's own account.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from peers import TEST_SECRET_KEY
from peers.dovecot import DovecotServer
from sqlalchemy import select

from bcc_ingest.imap.service import make_context, owner_name, poll_once
from bcc_ingest.imap.session import AccountReport
from gateway.config import Config, load
from gateway.contacts import create_account, create_contact
from gateway.db import Store
from gateway.mail_accounts import MailSettings, set_account
from gateway.models import (
    Account,
    Activity,
    ActivityLink,
    ContactEmail,
    MailAccount,
    MailFolderCursor,
    User,
    utcnow,
)
from gateway.secrets import SecretBox
from gateway.users import create_user, get_user

PASSWORDS = {"alice": "alice's mail password", "bob": "bob's mail password"}
SECRET_KEY = TEST_SECRET_KEY
ALICE, BOB, HANK = "alice@acme.example", "bob@acme.example", "hank@globex.example"
_LOGGED_OUT = re.compile(r"imap\((\w+)\).*Disconnected.*\bbody_count=(\d+)")


def make_config(database_url: str, tmp_path: Path, **imap: str) -> Config:
    """The configuration a test's gateway runs with (``imap`` overrides [imap] options)."""
    environ = {
        "CRM_GATEWAY_DATABASE_URL": database_url,
        "CRM_GATEWAY_PATHS_DATA_DIR": str(tmp_path / "var"),
        "CRM_GATEWAY_SECURITY_SECRET_KEY": SECRET_KEY,
        "CRM_GATEWAY_SMTP_INTERNAL_DOMAINS": "acme.example",
    }
    environ.update({f"CRM_GATEWAY_IMAP_{key.upper()}": value for key, value in imap.items()})
    return load(None, environ=environ)


def seed_crm(store: Store) -> None:
    with store.transaction() as session:
        create_user(session, "alice", ALICE, name="Alice")
        create_user(session, "bob", BOB, name="Bob")
        create_account(session, "Globex", ["globex.example"])
        create_contact(session, HANK, name="Hank")


def connect_mailbox(
    store: Store, username: str, server: DovecotServer, *, tls: str = "none",
    host: str = "127.0.0.1", port: int | None = None, password: str | None = None,
    folders: Sequence[str] = ("INBOX",),
) -> None:
    """Store `username`'s mail account on `server` (what ``mail set`` does, minus the test)."""
    if port is None:
        port = server.tls_port if tls == "ssl" else server.port
    settings = MailSettings(host, port, tls, username, password or PASSWORDS[username],
                            tuple(folders))
    with store.transaction() as session:
        set_account(session, get_user(session, username), settings, SecretBox(SECRET_KEY))


def mail(sender: str, to: Sequence[str], subject: str, *, cc: Sequence[str] = (),
         message_id: str | None = None, headers: Sequence[str] = (),
         body: str = "Hello,\r\nsee the numbers below.\r\n") -> bytes:
    lines = [f"From: {sender}", f"To: {', '.join(to)}"]
    if cc:
        lines.append(f"Cc: {', '.join(cc)}")
    lines += [f"Subject: {subject}", f"Date: {format_datetime(utcnow())}"]
    if message_id is not None:
        lines.append(f"Message-ID: <{message_id}>")
    lines += [*headers, "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


async def poll(config: Config, store: Store, usernames: Sequence[str] | None = None,
               ) -> list[AccountReport]:
    """One pass, as ``mail poll --once`` runs it, on the test's reactor."""
    from twisted.internet import reactor

    ctx = make_context(reactor, store, config, owner_name(":test"))
    return await poll_once(ctx, usernames)


def activities(store: Store) -> dict[str, dict[str, Any]]:
    """Message-ID -> what was logged: direction, source, subject and who it is linked to."""
    with store.reading() as session:
        result: dict[str, dict[str, Any]] = {}
        for activity in session.scalars(select(Activity).order_by(Activity.id)):
            links = session.scalars(
                select(ActivityLink).where(ActivityLink.activity_id == activity.id)
            ).all()
            users = {session.get(User, link.user_id).username  # type: ignore[union-attr]
                     for link in links if link.user_id}
            contacts = set(session.scalars(select(ContactEmail.email).where(
                ContactEmail.contact_id.in_([link.contact_id for link in links
                                             if link.contact_id])
            )))
            accounts = set(session.scalars(select(Account.name).where(
                Account.id.in_([link.account_id for link in links if link.account_id])
            )))
            assert activity.message_id is not None
            result[activity.message_id] = {
                "direction": activity.direction, "source": activity.source,
                "subject": activity.subject, "users": users, "contacts": contacts,
                "accounts": accounts,
            }
        return result


def account_state(store: Store, username: str) -> MailAccount:
    with store.reading() as session:
        user = get_user(session, username)
        account = session.scalar(select(MailAccount).where(MailAccount.user_id == user.id))
        assert account is not None
        session.expunge(account)  # keeps the loaded values past the session's rollback
        return account


def cursors(store: Store, username: str) -> dict[str, tuple[int, int]]:
    account_id = account_state(store, username).id
    with store.reading() as session:
        return {c.folder: (c.uidvalidity, c.last_uid) for c in session.scalars(
            select(MailFolderCursor).where(MailFolderCursor.mail_account_id == account_id))}


def fetched_bodies(server: DovecotServer, login: str, sessions: int) -> int:
    """Message bodies Dovecot sent to `login` over its ended sessions (its own log says).

    Waits until `sessions` sessions of `login` have ended: Dovecot logs asynchronously.
    """
    deadline = time.monotonic() + 5
    while True:
        text = server.log_path.read_text(errors="replace")
        counts = [int(m.group(2)) for m in _LOGGED_OUT.finditer(text) if m.group(1) == login]
        if len(counts) >= sessions or time.monotonic() > deadline:
            assert len(counts) >= sessions, server.log_tail()
            return sum(counts)
        time.sleep(0.02)
