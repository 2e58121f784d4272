"""The ``crm-gateway`` command line.

``crm-gateway [--config PATH] [--json] COMMAND``. A mistake, a configuration or database
error prints one line on stderr saying what is wrong and exits 2, with nothing written (each
command is one transaction). Output cut short by its reader (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from gateway.cli import (
    accounts,
    activities,
    api_tokens,
    availability,
    base,
    calendars,
    db,
    demo,
    diary,
    feeds,
    inbound,
    mail,
    outbound,
    serve,
    sync,
    users,
    webhooks,
)
from gateway.cli.base import Context, Failure
from gateway.config import ConfigError, load
from gateway.db import StoreError
from gateway.errors import DomainError

GROUPS = (serve, db, demo, users, diary, accounts, sync, activities, inbound, mail, webhooks,
          api_tokens, calendars, outbound, feeds, availability)


class Parser(argparse.ArgumentParser):
    """argparse, but usage mistakes are one line on stderr and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message}\n")


def build_parser() -> Parser:
    parser = Parser(prog="crm-gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--config", metavar="PATH", help="configuration file (TOML)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        print("crm-gateway: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    try:
        config = load(args.config, create_data_dir=False)
    except ConfigError as exc:
        print(f"crm-gateway: configuration: {exc}", file=sys.stderr)
        return 2
    context = Context(config, as_json=args.json,
                      creates_store=getattr(args, "creates_store", False))
    try:
        result = args.handler(context, args)
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
    except (DomainError, Failure) as exc:
        print(f"crm-gateway: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"crm-gateway: configuration: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"crm-gateway: database: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        print(f"crm-gateway: database: {base.one_line(exc.orig)}", file=sys.stderr)
        return 2
    finally:
        context.close()
    return int(result or 0)


def _reader_went_away() -> int:
    """``crm-gateway ... | head``: stop writing, without a traceback at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # what a shell reports for a command ended by SIGPIPE


__all__ = ["base", "build_parser", "main"]
