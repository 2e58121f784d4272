"""``crm-gateway mail``: connect reps' mailboxes, test them, poll them once.

``set``, ``test`` and ``poll`` talk to the IMAP server through the poller's own Twisted code,
on a reactor this process runs for the one command. The password is read from an
environment variable or a file (never from the command line, where ``ps`` would show it),
stored encrypted, and never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.cli.base import Context, Failure
from gateway.cli.mail_text import (
    account_lines,
    check_lines,
    report_line,
    unpolled_lines,
    unpolled_reason,
)
from gateway.key_check import check_key
from gateway.mail_accounts import (
    POP3_REFUSED,
    PROVIDERS,
    TLS_MODES,
    describe,
    get_account,
    pause_account,
    pause_after_refused_login,
    remove_account,
    resolve_settings,
    resume_account,
    set_account,
)
from gateway.secrets import SecretBox
from gateway.users import get_user

if TYPE_CHECKING:
    from bcc_ingest.imap import CheckResult

T = TypeVar("T")


def register(commands: Any) -> None:
    mail = commands.add_parser("mail", help="reps' mailboxes logged over IMAP")
    sub = mail.add_subparsers(dest="mail_command", metavar="ACTION", required=True)
    add = sub.add_parser("set", help="connect (or change) a user's mailbox, then test it")
    add.add_argument("username")
    add.add_argument("--provider", choices=sorted(PROVIDERS),
                     help="known host, port and TLS of a mail provider")
    add.add_argument("--host")
    add.add_argument("--port", type=int)
    add.add_argument("--tls", choices=TLS_MODES, help="default ssl (implicit TLS)")
    add.add_argument("--login")
    add.add_argument("--password-env", metavar="VAR",
                     help="environment variable holding the password")
    add.add_argument("--password-file", metavar="PATH", help="file holding the password")
    add.add_argument("--folders", help="comma-separated (default INBOX); Sent is always added")
    add.add_argument("--protocol", default="imap", help="imap (pop3 is refused, with why)")
    add.set_defaults(handler=do_set)
    for action, handler, text in (
        ("show", do_show, "show a user's mail account and its polling state"),
        ("remove", do_remove, "disconnect a user's mailbox (logged mail stays)"),
        ("pause", do_pause, "stop polling a user's mailbox"),
        ("resume", do_resume, "poll a paused mailbox again"),
        ("test", do_test, "check DNS, TCP, TLS, login and folders, step by step"),
    ):
        parser = sub.add_parser(action, help=text)
        parser.add_argument("username")
        parser.set_defaults(handler=handler)
    poll = sub.add_parser("poll", help="poll every mailbox (or one user's) once, now")
    poll.add_argument("username", nargs="?")
    poll.add_argument("--once", action="store_true",
                      help="one pass (the continuous poller runs in 'crm-gateway serve')")
    poll.set_defaults(handler=do_poll)


def _run_reactor(work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    from gateway.host import HostError, run_once

    try:
        return run_once(work)
    except HostError as exc:
        raise Failure(str(exc)) from None


def _read_password(args: argparse.Namespace) -> str:
    if bool(args.password_env) == bool(args.password_file):
        raise Failure("give the password with exactly one of --password-env VAR or "
                      "--password-file PATH")
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise Failure(f"environment variable {args.password_env} is not set or empty")
        return value
    try:
        text = Path(args.password_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise Failure(f"cannot read the password file {args.password_file}: {reason}") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise Failure(f"the password file {args.password_file} is empty")
    return value


def _test(context: Context, username: str) -> tuple[CheckResult, bool]:
    """Run the connectivity test; pause the account when the server refused the login."""
    # Imported here: the other commands need neither Twisted's TLS nor the poller.
    from bcc_ingest.imap import test_account

    with context.store.reading() as session:
        account_id = get_account(session, get_user(session, username)).id
    config, store = context.config, context.store
    result = _run_reactor(lambda reactor: test_account(reactor, config, store, account_id))
    failed = result.failed
    if failed is not None and result.auth_failed:
        with context.store.transaction() as session:
            pause_after_refused_login(session, get_user(session, username), failed.name,
                                      failed.detail)
    return result, result.auth_failed


def _finish_test(context: Context, command: str, username: str, data: dict[str, Any],
                 lines: list[str], result: CheckResult, paused: bool) -> int:
    data["test"] = {"ok": result.ok, "steps": [vars(step) for step in result.steps],
                    "paused": paused}
    context.emit(data, [*lines, *check_lines(result, paused)])
    failed = result.failed
    if failed is None:
        return 0
    print(f"crm-gateway: mail {command} {username}: failed at step {failed.name}: "
          f"{failed.detail}", file=sys.stderr)
    return 1


def do_set(context: Context, args: argparse.Namespace) -> int:
    if args.protocol.lower() == "pop3":
        raise Failure(POP3_REFUSED)
    if args.protocol.lower() != "imap":
        raise Failure(f"unknown --protocol {args.protocol!r}: only imap is supported")
    if not args.login:
        raise Failure("--login is required (the mailbox's IMAP user name)")
    settings = resolve_settings(
        provider=args.provider, host=args.host, port=args.port, tls=args.tls,
        login=args.login, password=_read_password(args),
        folders=args.folders.split(",") if args.folders is not None else None,
    )
    key = context.config.get("security", "secret_key")
    check_key(context.store, key)  # a password stored under another key could not be read
    box = SecretBox(key)
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        _, created = set_account(session, user, settings, box)
    verb = "connected" if created else "updated"
    lines = [f"{verb} the mailbox of {args.username}: {settings.login} at "
             f"{settings.host}:{settings.port} (tls {settings.tls}); testing it:"]
    result, paused = _test(context, args.username)
    data: dict[str, Any] = {"user": args.username, "created": created}
    return _finish_test(context, "set", args.username, data, lines, result, paused)


def do_test(context: Context, args: argparse.Namespace) -> int:
    result, paused = _test(context, args.username)
    return _finish_test(context, "test", args.username, {"user": args.username}, [], result,
                        paused)


def do_show(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        user = get_user(session, args.username)
        data = describe(session, user, get_account(session, user))
    context.emit(data, account_lines(data))
    return 0


def do_remove(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        remove_account(session, get_user(session, args.username))
    context.emit({"user": args.username, "removed": True},
                 f"removed the mail account of {args.username}; logged activities stay")
    return 0


def do_pause(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        pause_account(session, get_user(session, args.username))
    context.emit({"user": args.username, "state": "paused"},
                 f"paused polling of {args.username}'s mailbox")
    return 0


def do_resume(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        resume_account(session, get_user(session, args.username))
    context.emit({"user": args.username, "state": "active"},
                 f"resumed polling of {args.username}'s mailbox")
    return 0


def do_poll(context: Context, args: argparse.Namespace) -> int:
    if not args.once:
        raise Failure("mail poll needs --once (one pass now); the continuous poller runs in "
                      "'crm-gateway serve' or 'crm-gateway serve --only imap'")
    usernames = [args.username] if args.username else None
    if args.username:
        with context.store.reading() as session:
            get_account(session, get_user(session, args.username))  # NotFound: exit 2
    store, config = context.store, context.config
    from bcc_ingest.imap import poll_now

    reports = _run_reactor(lambda reactor: poll_now(reactor, config, store, usernames))
    lines = [report_line(report) for report in reports]
    failed = any(report.error for report in reports)
    if args.username and not reports:
        lines.append(unpolled_reason(context.store, args.username))
        failed = True
    if not args.username:
        # Accounts another poller holds (or paused ones) are not a failure of this pass.
        lines += unpolled_lines(context.store, [report.account_id for report in reports])
    context.emit([report.as_dict() for report in reports], lines)
    return 1 if failed else 0
