"""Reps' mailboxes polled over IMAP: settings, provider presets, pause and resume.

One account per user. The password is stored only as a `SecretBox` token and never leaves
this module in a description. Changing the settings is the way out of a pause caused by a
failed login: the poller pauses an account whose server refused the password, and
`set_account` clears that pause.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.clock import seconds_since, utcnow
from gateway.errors import Invalid, NotFound
from gateway.models import MailAccount, MailFolderCursor, User
from gateway.secrets import SecretBox

TLS_MODES = ("ssl", "starttls", "none")
DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
DEFAULT_FOLDERS = ("INBOX",)
PAUSED_BY_COMMAND = "paused with 'crm-gateway mail pause'"
POP3_REFUSED = (
    "POP3 is not supported: a POP3 client downloads mail and usually deletes it from the "
    "server, and it cannot tell which messages it has already seen, so a POP3 mailbox cannot "
    "be synchronised without changing it. Use the mailbox's IMAP settings instead (every "
    "major provider offers IMAP; see --provider)"
)
_HOST_RE = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?")
_FOLDER_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Provider:
    host: str
    port: int
    tls: str
    note: str


# Providers' documented IMAP endpoints. All need an app password (or one made for IMAP)
# when the account has two-factor sign-in.
PROVIDERS: dict[str, Provider] = {
    "gmail": Provider("imap.gmail.com", 993, "ssl", "enable IMAP; use an app password"),
    "outlook": Provider("outlook.office365.com", 993, "ssl", "Outlook.com and Microsoft 365"),
    "exchange": Provider(
        "outlook.office365.com", 993, "ssl",
        "Exchange Online; for an on-premises Exchange give --host instead",
    ),
    "yahoo": Provider("imap.mail.yahoo.com", 993, "ssl", "use an app password"),
    "icloud": Provider("imap.mail.me.com", 993, "ssl", "use an app-specific password"),
}


@dataclass(frozen=True)
class MailSettings:
    """What a rep gives once to connect their mailbox (`password` in plaintext)."""

    host: str
    port: int
    tls: str
    login: str
    password: str
    folders: tuple[str, ...] = DEFAULT_FOLDERS

    def __repr__(self) -> str:  # never show the password in a traceback or log line
        return (f"MailSettings(host={self.host!r}, port={self.port}, tls={self.tls!r}, "
                f"login={self.login!r}, folders={self.folders!r})")


def resolve_settings(
    *,
    provider: str | None,
    host: str | None,
    port: int | None,
    tls: str | None,
    login: str,
    password: str,
    folders: Iterable[str] | None,
) -> MailSettings:
    """Combine explicit values with a provider preset; raises Invalid naming the bad value."""
    preset = None
    if provider is not None:
        preset = PROVIDERS.get(provider.lower())
        if preset is None:
            raise Invalid(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    host = host if host is not None else (preset.host if preset else None)
    if not host:
        raise Invalid("give the IMAP server with --host (or a --provider preset)")
    host = host.strip()
    if not _HOST_RE.fullmatch(host):
        raise Invalid(f"{host!r} is not a host name or IP address")
    tls = tls if tls is not None else (preset.tls if preset else "ssl")
    if tls not in TLS_MODES:
        raise Invalid(f"--tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
    if port is None:
        port = preset.port if preset and preset.tls == tls else DEFAULT_PORTS[tls]
    if not 0 < port < 65536:
        raise Invalid(f"port {port} is out of range (1-65535)")
    if not login.strip():
        raise Invalid("the login must not be empty")
    if not password:
        raise Invalid("the password must not be empty")
    return MailSettings(host, port, tls, login.strip(), password, check_folders(folders))


def check_folders(folders: Iterable[str] | None) -> tuple[str, ...]:
    if folders is None:
        return DEFAULT_FOLDERS
    names: list[str] = []
    for raw in folders:
        name = raw.strip()
        if not name:
            continue
        if _FOLDER_FORBIDDEN.search(name) or len(name) > 255:
            raise Invalid(f"{raw!r} is not a usable folder name")
        if name.upper() == "INBOX":
            name = "INBOX"  # RFC 3501 section 5.1: INBOX is case-insensitive
        if name not in names:
            names.append(name)
    if not names:
        raise Invalid("--folders names no folder")
    return tuple(names)


def find_account(session: Session, user: User) -> MailAccount | None:
    return session.scalar(select(MailAccount).where(MailAccount.user_id == user.id))


def get_account(session: Session, user: User) -> MailAccount:
    account = find_account(session, user)
    if account is None:
        raise NotFound(
            f"user {user.username!r} has no mail account; connect one with "
            f"'crm-gateway mail set {user.username} ...'"
        )
    return account


def set_account(
    session: Session, user: User, settings: MailSettings, box: SecretBox
) -> tuple[MailAccount, bool]:
    """Create or replace the user's mail account; returns it and whether it is new.

    New settings clear any pause and failure count. A different server or login is another
    mailbox, so its folder cursors are dropped (dedupe keeps already logged mail single).
    """
    account = find_account(session, user)
    created = account is None
    if account is None:
        account = MailAccount(user_id=user.id)
        session.add(account)
    elif (account.host, account.port, account.login) != (
        settings.host, settings.port, settings.login
    ):
        session.execute(
            delete(MailFolderCursor).where(MailFolderCursor.mail_account_id == account.id)
        )
    account.host = settings.host
    account.port = settings.port
    account.tls = settings.tls
    account.login = settings.login
    account.secret = box.encrypt(settings.password)
    account.folders = list(settings.folders)
    account.paused = False
    account.paused_reason = None
    account.consecutive_failures = 0
    account.last_error = None
    account.last_error_at = None
    account.next_poll_at = utcnow()
    session.flush()
    return account, created


def remove_account(session: Session, user: User) -> None:
    account = get_account(session, user)
    session.execute(
        delete(MailFolderCursor).where(MailFolderCursor.mail_account_id == account.id)
    )
    session.delete(account)
    session.flush()


def pause_account(session: Session, user: User, reason: str = PAUSED_BY_COMMAND) -> MailAccount:
    account = get_account(session, user)
    account.paused = True
    account.paused_reason = reason
    session.flush()
    return account


def pause_after_refused_login(session: Session, user: User, step: str, detail: str
                              ) -> MailAccount:
    """After a connectivity test the server refused the login of: the account is paused until
    its settings change (retrying a wrong password would only lock the mailbox)."""
    return pause_account(session, user, f"{step} failed: {detail}")


def resume_account(session: Session, user: User) -> MailAccount:
    account = get_account(session, user)
    account.paused = False
    account.paused_reason = None
    account.consecutive_failures = 0
    account.next_poll_at = utcnow()
    session.flush()
    return account


def folder_cursors(session: Session, account: MailAccount) -> list[MailFolderCursor]:
    return list(session.scalars(
        select(MailFolderCursor)
        .where(MailFolderCursor.mail_account_id == account.id)
        .order_by(MailFolderCursor.folder)
    ))


def describe(session: Session, user: User, account: MailAccount) -> dict[str, Any]:
    """Everything `mail show` prints, as plain values. The secret is never part of it."""
    return {
        "user": user.username,
        "host": account.host,
        "port": account.port,
        "tls": account.tls,
        "login": account.login,
        "folders": list(account.folders),
        "state": "paused" if account.paused else "active",
        "paused_reason": account.paused_reason,
        "last_success_at": account.last_success_at,
        "last_error": account.last_error,
        "last_error_at": account.last_error_at,
        "consecutive_failures": account.consecutive_failures,
        "next_poll_at": account.next_poll_at,
        "lease_owner": account.lease_owner,
        "lease_until": account.lease_until,
        "cursors": [
            {"folder": c.folder, "uidvalidity": c.uidvalidity, "last_uid": c.last_uid}
            for c in folder_cursors(session, account)
        ],
    }


@dataclass(frozen=True)
class PollerFacts:
    accounts: int  # polled (not paused)
    failing: int  # of those, failed their last poll
    lag_seconds: float | None  # since the stalest account's last success (or creation)


def poller_facts(session: Session, now: datetime) -> PollerFacts:
    """How far behind the poller is, over every mailbox still polled: one aggregate query."""
    since = func.coalesce(MailAccount.last_success_at, MailAccount.created_at)
    count, failing, oldest = session.execute(
        select(func.count(), func.count().filter(MailAccount.consecutive_failures > 0),
               func.min(since)).where(MailAccount.paused.is_(False))
    ).one()
    return PollerFacts(int(count), int(failing or 0), seconds_since(now, oldest))


def list_accounts(session: Session) -> list[tuple[str, MailAccount]]:
    """Every connected mailbox with its user's name, by username (the admin's overview)."""
    rows = session.execute(select(User.username, MailAccount).join(
        MailAccount, MailAccount.user_id == User.id).order_by(User.username))
    return [(username, account) for username, account in rows]
