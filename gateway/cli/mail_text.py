"""How ``crm-gateway mail`` shows accounts, tests and poll reports as text."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, true

from gateway.cli.base import iso, step_lines
from gateway.clock import utcnow
from gateway.db import Store
from gateway.mail_accounts import get_account
from gateway.models import MailAccount, User
from gateway.users import get_user

if TYPE_CHECKING:
    from bcc_ingest.imap.check import CheckResult
    from bcc_ingest.imap.session import AccountReport


def account_lines(data: dict[str, Any]) -> list[str]:
    """`mail show`: settings and polling state. The password is only said to be stored."""
    state = "active" if data["state"] == "active" else f"paused: {data['paused_reason']}"
    lines = [
        f"mail account of {data['user']}",
        f"  server:       {data['host']}:{data['port']} (tls {data['tls']})",
        f"  login:        {data['login']}",
        "  password:     stored encrypted",
        f"  folders:      {', '.join(data['folders'])} and the Sent folder",
        f"  state:        {state}",
        f"  last success: {iso(data['last_success_at']) or 'never'}",
    ]
    if data["last_error"]:
        lines.append(f"  last error:   {data['last_error']} (at {iso(data['last_error_at'])})")
    if data["consecutive_failures"]:
        lines.append(f"  failures:     {data['consecutive_failures']} in a row")
    if data["state"] == "active":
        lines.append(f"  next poll:    {iso(data['next_poll_at'])}")
    lease_until = data["lease_until"]
    if data["lease_owner"] and lease_until is not None and lease_until > utcnow():
        # A paused account's holder stops at its next write or lease renewal (30 s at most).
        stopping = ", stops within 30 s: paused" if data["state"] == "paused" else ""
        lines.append(f"  polled by:    {data['lease_owner']} (lease until {iso(lease_until)}"
                     f"{stopping})")
    for cursor in data["cursors"]:
        lines.append(f"  folder {cursor['folder']}: UIDVALIDITY {cursor['uidvalidity']}, "
                     f"logged up to UID {cursor['last_uid']}")
    return lines


def check_lines(result: CheckResult, paused: bool) -> list[str]:
    """`mail test`: one line per step, then the verdict."""
    lines = step_lines(result)
    if result.failed is not None and paused:
        lines.append("the account is paused until its settings change "
                     "('crm-gateway mail set ...')")
    return lines


def report_line(report: AccountReport) -> str:
    """`mail poll --once`: what one account's pass did."""
    name = report.username or f"account {report.account_id}"
    c = report.counts
    done = (f"{c.folders} folders, {c.examined} headers read, {c.fetched} messages fetched: "
            f"{c.logged} logged, {c.linked} linked, {c.not_logged} not logged")
    if c.set_aside:
        done += f", {c.set_aside} set aside as failed (see 'crm-gateway inbound')"
    if report.error:
        return f"{name}: failed: {report.error}" + (" (account paused)" if report.paused
                                                     else "") + f"; before that {done}"
    return f"{name}: {done}"


def unpolled_reason(store: Store, username: str) -> str:
    """Why a named account was not polled by `mail poll --once`."""
    with store.reading() as session:
        user: User = get_user(session, username)
        return _why_not(user, get_account(session, user))


def unpolled_lines(store: Store, polled: Collection[int]) -> list[str]:
    """`mail poll --once` without a user: why each account not in ``polled`` was left out."""
    with store.reading() as session:
        rows = session.execute(
            select(User, MailAccount).join(MailAccount, MailAccount.user_id == User.id)
            .where(MailAccount.id.not_in(list(polled)) if polled else true())
            .order_by(User.username)
        ).all()
        lines = [_why_not(user, account) for user, account in rows]
    if not lines and not polled:
        return ["no mail accounts are connected; connect one with 'crm-gateway mail set ...'"]
    return lines


def _why_not(user: User, account: MailAccount) -> str:
    name = user.username
    if account.paused:
        return f"{name}: not polled: paused: {account.paused_reason}"
    if not user.email_sync:
        return f"{name}: not polled: email sync is off for this user"
    if account.lease_owner and account.lease_until and account.lease_until > utcnow():
        # A poller in 'serve' renews its lease while it holds the mailbox.
        return (f"{name}: not polled: {account.lease_owner} is polling it (lease until "
                f"{iso(account.lease_until)}, renewed while it polls)")
    return f"{name}: not polled: another poller had it until just now; try again"
