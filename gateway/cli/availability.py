"""``crm-gateway availability ...``, ``freebusy ...`` and ``conflicts``: when people are free,
their free/busy URLs, and the bookings that overlapped busy time."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from typing import Any

from gateway import freebusy
from gateway.availability import find_availability
from gateway.cli.base import Context, Failure, iso, parse_when
from gateway.config import public_base_url
from gateway.conflicts import clash_json, recent_conflicts
from gateway.errors import NotFound
from gateway.users import get_user

_DURATION = re.compile(r"(\d+)\s*(m|min|h)?")


def _duration(value: str) -> timedelta:
    shape = _DURATION.fullmatch(value.strip())
    if shape is None or int(shape[1]) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration like 30m or 1h")
    return timedelta(hours=int(shape[1])) if shape[2] == "h" else timedelta(
        minutes=int(shape[1]))


def register(commands: Any) -> None:
    find = commands.add_parser("availability", help="free windows common to users, inside "
                               "their working hours")
    find.add_argument("users", nargs="+", metavar="USERNAME")
    find.add_argument("--from", dest="start", required=True, metavar="ISO",
                      help="window start (naive times are UTC)")
    find.add_argument("--to", dest="end", required=True, metavar="ISO")
    find.add_argument("--duration", type=_duration, default=timedelta(minutes=30),
                      metavar="30m|1h", help="the least length of a window (default 30m)")
    find.set_defaults(handler=do_availability)

    group = commands.add_parser("freebusy", help="reps' secret free/busy URLs")
    sub = group.add_subparsers(dest="freebusy_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="make the user's secret free/busy URL (printed "
                            "once; an earlier one stops working)")
    create.add_argument("username")
    create.set_defaults(handler=do_create)
    revoke = sub.add_parser("revoke", help="revoke it: 404 from its next request")
    revoke.add_argument("username")
    revoke.set_defaults(handler=do_revoke)

    conflicts = commands.add_parser("conflicts", help="recorded overlaps with busy time, "
                                    "newest first")
    conflicts.add_argument("--user", metavar="USERNAME", help="only this user's busy time")
    conflicts.add_argument("--limit", type=int, default=50)
    conflicts.set_defaults(handler=do_conflicts)


def do_availability(context: Context, args: argparse.Namespace) -> int:
    start, end = parse_when(args.start, None), parse_when(args.end, None)
    if end <= start:
        raise Failure("--to is not after --from")
    with context.store.reading() as session:
        slots = find_availability(
            session, args.users, start, end, args.duration,
            default_hours=context.config.get("availability", "working_hours"),
            max_days=context.config.get("availability", "max_days"))
    data = [{"start": iso(s), "end": iso(e)} for s, e in slots]
    minutes = int(args.duration.total_seconds() // 60)
    lines = [f"{iso(s)}  {iso(e)}  ({int((e - s).total_seconds() // 60)} min)"
             for s, e in slots] or [f"no common free window of {minutes} min"]
    context.emit(data, lines)
    return 0


def do_create(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        url = freebusy.token_url(public_base_url(context.config),
                                 freebusy.create_token(session, user))
        username = user.username
    context.emit({"username": username, "url": url},
                 [f"free/busy URL of {username}: {url}",
                  "It is shown only this once; anyone with it can read the busy times."])
    return 0


def do_revoke(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        if not freebusy.revoke_token(session, user):
            raise NotFound(f"user {user.username} has no free/busy URL")
        username = user.username
    context.emit({"username": username, "revoked": True},
                 f"revoked the free/busy URL of {username}")
    return 0


def do_conflicts(context: Context, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise Failure("--limit must be at least 1")
    with context.store.reading() as session:
        user_id = get_user(session, args.user).id if args.user else None
        rows = recent_conflicts(session, user_id, limit=args.limit)
        data = [{"id": r.id, "entry_id": r.entry_id, "source": r.source,
                 "created_at": iso(r.created_at), "conflict": clash_json(r.clash)}
                for r in rows]
    lines = [f"entry {r.entry_id} ({r.source}) overlaps {r.clash.user}'s {r.clash.title!r} "
             f"{iso(r.clash.start)} to {iso(r.clash.end)}" for r in rows] or [
        "no recorded conflicts"]
    context.emit(data, lines)
    return 0
