"""``crm-gateway feeds ...``: a rep's secret calendar feed address (read-only, no login)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway import feeds
from gateway.cli.base import Context
from gateway.config import public_base_url
from gateway.errors import NotFound
from gateway.users import get_user


def register(commands: Any) -> None:
    group = commands.add_parser("feeds", help="reps' read-only calendar feeds")
    sub = group.add_subparsers(dest="feeds_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="make the user's feed address (printed once; an "
                            "earlier one stops working)")
    create.add_argument("username")
    create.set_defaults(handler=do_create)
    revoke = sub.add_parser("revoke", help="revoke the user's feed: 404 from its next request")
    revoke.add_argument("username")
    revoke.set_defaults(handler=do_revoke)


def do_create(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        url = feeds.feed_url(public_base_url(context.config), feeds.create_feed(session, user))
        username = user.username
    context.emit({"username": username, "url": url},
                 [f"calendar feed of {username}: {url}",
                  "It is shown only this once; anyone with it can read the feed."])
    return 0


def do_revoke(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        if not feeds.revoke_feed(session, user):
            raise NotFound(f"user {user.username} has no calendar feed")
        username = user.username
    context.emit({"username": username, "revoked": True},
                 f"revoked the calendar feed of {username}")
    return 0
