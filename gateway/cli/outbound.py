"""``crm-gateway outbound ...``: the mail the gateway sends (notifications, invitations),
what became of each, and sending a failed one again."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.base import Context, Failure
from gateway.outbound import (
    STATUSES,
    describe_attempt,
    describe_mail,
    get_mail,
    list_mails,
    retry,
    store_settings,
)


def register(commands: Any) -> None:
    group = commands.add_parser("outbound", help="mail the gateway sends through the smarthost")
    sub = group.add_subparsers(dest="outbound_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="queued and sent mail, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only mail in this state")
    listing.add_argument("--limit", type=int, default=50, metavar="N")
    listing.add_argument("--before", type=int, metavar="ID", help="the page after this id")
    listing.set_defaults(handler=do_list)

    show = sub.add_parser("show", help="one mail with every attempt and its headers")
    show.add_argument("id", type=int)
    show.set_defaults(handler=do_show)

    again = sub.add_parser("retry", help="send a failed mail again (same Message-ID)")
    again.add_argument("id", type=int)
    again.set_defaults(handler=do_retry)


def _line(d: dict[str, Any]) -> str:
    return (f"{d['id']:>6}  {d['status']:<7}  {d['kind']:<12}  {d['recipient']}  "
            f"{d['subject']!r}  {d['attempts']} attempt(s)  {d['last_reply'] or ''}").rstrip()


def do_list(context: Context, args: argparse.Namespace) -> int:
    if args.limit <= 0:
        raise Failure("--limit must be a positive number")
    with context.store.reading() as session:
        found = [describe_mail(mail) for mail in list_mails(
            session, status=args.status, limit=args.limit, cursor=args.before)]
    off = store_settings(context.store) is None
    empty = ["no outbound mail" + (" (outbound mail is off: set outbound.smtp_url)"
                                   if off else "")]
    context.emit(found, [_line(d) for d in found] or empty)
    return 0


def do_show(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        mail, attempts = get_mail(session, args.id)
        headers = mail.message.split("\r\n\r\n", 1)[0]
        data = {**describe_mail(mail), "headers": headers,
                "attempts_made": [describe_attempt(a) for a in attempts]}
    lines = [_line(data), f"    Message-ID: <{data['message_id']}>"] + [
        f"    {a['at']}  {a['duration_ms']} ms  {a['reply'] or ''}"
        for a in data["attempts_made"]]
    context.emit(data, lines)
    return 0


def do_retry(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        data = describe_mail(retry(session, args.id))
    context.emit(data, f"outbound mail {args.id} to {data['recipient']} is due now "
                       f"(Message-ID <{data['message_id']}>)")
    return 0
