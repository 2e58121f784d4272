"""``crm-gateway serve [--only ROLE]``: run the gateway until stopped.

Before any role starts, the process's ``security.secret_key`` is checked against the
fingerprint in the database: every process on one database must use the same key.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gateway import host
from gateway.cli.base import Context
from gateway.key_check import check_key


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the gateway (all roles, or one)")
    serve.add_argument("--only", choices=sorted(host.ROLES), metavar="ROLE",
                       help=f"run just one role: {', '.join(sorted(host.ROLES))}")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=do_serve, creates_store=True)


def do_serve(context: Context, args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Radicale logs every request at info: keep its chatter at warning unless debugging.
    if args.log_level != "debug":
        logging.getLogger("radicale").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    roles = [args.only] if args.only else sorted(host.ROLES)
    check_key(context.store, context.config.get("security", "secret_key"))
    return host.run(context.config, context.store, roles)
