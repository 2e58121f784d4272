"""``crm-gateway db upgrade`` and ``db record-key``."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.exc import DBAPIError

from gateway.cli.base import Context, one_line
from gateway.db import StoreError, shared_store
from gateway.key_check import record_key


def register(commands: Any) -> None:
    group = commands.add_parser("db", help="database schema")
    sub = group.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = sub.add_parser("upgrade", help="apply pending migrations")
    upgrade.set_defaults(handler=do_upgrade, creates_store=True)
    record = sub.add_parser(
        "record-key", help="make this security.secret_key the one every process must use")
    record.set_defaults(handler=do_record_key)


def do_upgrade(context: Context, _args: argparse.Namespace) -> int:
    store = shared_store(context.config.get("database", "url"))
    try:
        before = store.current_revision()
        store.upgrade()
        after = store.current_revision()
    except DBAPIError as exc:
        raise StoreError(f"cannot use {store.engine.url!r}: {one_line(exc.orig)}") from None
    message = (
        f"database is current (revision {after})" if before == after
        else f"database upgraded from {before or 'empty'} to {after}"
    )
    context.emit({"from": before, "to": after}, message)
    return 0


def do_record_key(context: Context, _args: argparse.Namespace) -> int:
    changed = record_key(context.store, context.config.get("security", "secret_key"))
    context.emit(
        {"changed": changed},
        "security.secret_key recorded: processes with another key now refuse to start; "
        "mailbox passwords stored under the old key must be set again ('mail set')"
        if changed else "security.secret_key is already the recorded one",
    )
    return 0
