"""``crm-gateway inbound ...``: the queue of received mail, what became of each message, and
retrying the ones parked after too many failed tries."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select

from gateway.cli.base import Context, Failure, iso
from gateway.inbound_queue import STATUSES, get_message, list_messages, retry, retry_failed
from gateway.mail.headers import parse_headers
from gateway.models import InboundMessage, User


def register(commands: Any) -> None:
    group = commands.add_parser("inbound", help="the queue of received mail")
    sub = group.add_subparsers(dest="inbound_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="list queued and processed messages")
    listing.add_argument("--status", choices=STATUSES)
    listing.set_defaults(handler=do_list)

    show = sub.add_parser("show", help="show one message and what happened to it")
    show.add_argument("id", type=int)
    show.set_defaults(handler=do_show)

    again = sub.add_parser("retry", help="queue a failed (or skipped) message again")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, nargs="?")
    which.add_argument("--all", action="store_true", help="every failed message")
    again.set_defaults(handler=do_retry)


def describe(row: InboundMessage, username: str | None) -> dict[str, Any]:
    return {
        "id": row.id, "status": row.status, "source": row.source,
        "received": iso(row.received_at), "peer": row.peer, "mail_from": row.mail_from,
        "rcpt_tos": row.rcpt_tos, "user": username, "size": row.size,
        "attempts": row.attempts,
        # Only a queued message has a next attempt; for the others it is a spent lease.
        "next_attempt": iso(row.next_attempt_at) if row.status == "queued" else None,
        "decision": row.decision, "last_error": row.last_error,
        "activity_id": row.activity_id, "processed": iso(row.processed_at),
    }


def _line(data: dict[str, Any]) -> str:
    return (f"{data['id']:>6}  {data['status']:<8}  {data['received']:<20}  "
            f"{data['user'] or '-':<12}  {data['mail_from'] or '<>':<32}  "
            f"{data['decision'] or data['last_error'] or ''}")


def do_list(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        names: dict[int | None, str] = {
            user_id: name for user_id, name in session.execute(select(User.id, User.username))
        }
        found = [describe(row, names.get(row.user_id)) for row in list_messages(
            session, args.status)]
    context.emit(found, [_line(data) for data in found] or ["no messages"])
    return 0


def do_show(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        row = get_message(session, args.id)
        user = session.get(User, row.user_id) if row.user_id is not None else None
        data = describe(row, user.username if user else None)
        headers = parse_headers(bytes(row.raw))
    data["headers"] = {
        "message_id": headers.message_id, "subject": headers.subject,
        "from": headers.sender.email if headers.sender else None,
    }
    lines = [f"inbound message {data['id']}: {data['status']}"]
    for label, key in (("received", "received"), ("client", "peer"), ("mail from", "mail_from"),
                       ("recipients", "rcpt_tos"), ("user", "user"), ("size", "size"),
                       ("attempts", "attempts"), ("next attempt", "next_attempt"),
                       ("decision", "decision"), ("last error", "last_error"),
                       ("activity", "activity_id"), ("processed", "processed")):
        value = data[key]
        shown = ", ".join(value) if isinstance(value, list) else value
        lines.append(f"  {label + ':':<14}{shown if shown not in (None, '') else '-'}")
    lines += [f"  {'subject:':<14}{headers.subject or '-'}",
              f"  {'from header:':<14}{data['headers']['from'] or '-'}",
              f"  {'message-id:':<14}{headers.message_id or '-'}"]
    context.emit(data, lines)
    return 0


def do_retry(context: Context, args: argparse.Namespace) -> int:
    if args.all:
        with context.store.transaction() as session:
            count = retry_failed(session)
        context.emit({"requeued": count}, f"queued {count} failed message(s) again")
        return 0
    if args.id is None:
        raise Failure("give a message ID or --all")
    with context.store.transaction() as session:
        row = retry(session, args.id)
        row_id = row.id
    context.emit({"requeued": 1, "id": row_id}, f"queued inbound message {row_id} again")
    return 0
