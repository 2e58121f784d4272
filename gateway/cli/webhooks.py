"""``crm-gateway webhooks ...``: endpoints the CRM application receives signed events at, what
was delivered to them, and sending a delivery again."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.base import Context, Failure
from gateway.key_check import check_key
from gateway.secrets import SecretBox
from gateway.webhooks import (
    EVENT_TYPES,
    add_endpoint,
    describe_attempt,
    describe_delivery,
    describe_endpoint,
    get_delivery,
    list_deliveries,
    list_endpoints,
    remove_endpoint,
    replay,
)


def register(commands: Any) -> None:
    group = commands.add_parser("webhooks", help="signed webhooks to the CRM application")
    sub = group.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add an endpoint (prints its signing secret once)")
    add.add_argument("url")
    add.add_argument("--events", required=True, metavar="LIST",
                     help=f"comma-separated: {', '.join(EVENT_TYPES)}, a group (entry.*) or *")
    add.add_argument("--description")
    add.set_defaults(handler=do_add)

    sub.add_parser("list", help="list endpoints").set_defaults(handler=do_list)

    remove = sub.add_parser("remove", help="remove an endpoint and its deliveries")
    remove.add_argument("id", type=int)
    remove.set_defaults(handler=do_remove)

    deliveries = sub.add_parser("deliveries", help="deliveries, newest first")
    deliveries.add_argument("--failed", action="store_true", help="only failed ones")
    deliveries.add_argument("--endpoint", type=int, metavar="ID")
    deliveries.add_argument("--limit", type=int, default=50, metavar="N")
    deliveries.add_argument("--before", type=int, metavar="ID",
                            help="the page after this delivery id")
    deliveries.set_defaults(handler=do_deliveries)

    show = sub.add_parser("show", help="one delivery with every attempt")
    show.add_argument("id", type=int)
    show.set_defaults(handler=do_show)

    again = sub.add_parser("replay", help="send a delivery's event again (same webhook-id)")
    again.add_argument("id", type=int)
    again.set_defaults(handler=do_replay)


def do_add(context: Context, args: argparse.Namespace) -> int:
    key = context.config.get("security", "secret_key")
    check_key(context.store, key)  # a secret stored under another key could not be read
    box = SecretBox(key)
    with context.store.transaction() as session:
        made = add_endpoint(session, args.url, args.events.split(","), args.description,
                            box=box)
        data = {**describe_endpoint(made.endpoint), "secret": made.secret}
    context.emit(data, [f"added webhook endpoint {data['id']}: {data['url']}",
                        f"events: {', '.join(data['events'])}",
                        f"secret: {made.secret}",
                        "(shown only now: give it to the receiver to verify signatures)"])
    return 0


def do_list(context: Context, _args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        found = [describe_endpoint(endpoint) for endpoint in list_endpoints(session)]
    context.emit(found, [f"{d['id']:>4}  {d['url']}  {','.join(d['events'])}"
                         + (f"  ({d['description']})" if d["description"] else "")
                         for d in found] or ["no webhook endpoints"])
    return 0


def do_remove(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        remove_endpoint(session, args.id)
    context.emit({"id": args.id, "removed": True}, f"removed webhook endpoint {args.id}")
    return 0


def _line(d: dict[str, Any]) -> str:
    last = d["last_error"] or (f"HTTP {d['last_status']}" if d["last_status"] else "")
    return (f"{d['id']:>6}  {d['status']:<9}  {d['event_type']:<20}  {d['event_id']}  "
            f"endpoint {d['endpoint_id']}  {d['attempts']} attempt(s)  {last}")


def do_deliveries(context: Context, args: argparse.Namespace) -> int:
    if args.limit <= 0:
        raise Failure("--limit must be a positive number")
    with context.store.reading() as session:
        found = [describe_delivery(delivery, event) for delivery, event in list_deliveries(
            session, failed_only=args.failed, limit=args.limit, cursor=args.before,
            endpoint_id=args.endpoint)]
    context.emit(found, [_line(d) for d in found] or ["no deliveries"])
    return 0


def do_show(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        delivery, event, attempts = get_delivery(session, args.id)
        data = {**describe_delivery(delivery, event), "payload": event.payload,
                "attempts_made": [describe_attempt(a) for a in attempts]}
    lines = [_line(data)] + [
        f"    {a['at']}  {a['status_code'] or '-'}  {a['duration_ms']} ms  {a['error'] or ''}"
        for a in data["attempts_made"]]
    context.emit(data, lines)
    return 0


def do_replay(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        again = replay(session, args.id)
        data = {"id": again.id, "replay_of": args.id, "event_id": again.event_id,
                "endpoint_id": again.endpoint_id, "status": again.status}
    context.emit(data, f"delivery {data['id']} queued: event {data['event_id']} again "
                       f"(replay of delivery {args.id})")
    return 0
