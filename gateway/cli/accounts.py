"""``crm-gateway accounts add`` and ``contacts add``."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.base import Context
from gateway.contacts import create_account, create_contact, get_account


def register(commands: Any) -> None:
    accounts = commands.add_parser("accounts", help="accounts (companies)")
    sub = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--domain", action="append", default=[], metavar="DOMAIN",
                     help="an email domain of the account (repeatable)")
    add.set_defaults(handler=do_add_account)

    contacts = commands.add_parser("contacts", help="contacts (people at accounts)")
    sub = contacts.add_subparsers(dest="contacts_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a contact")
    add.add_argument("--email", required=True)
    add.add_argument("--name", default="")
    add.add_argument("--account", help="account name (default: the account of the domain)")
    add.set_defaults(handler=do_add_contact)


def do_add_account(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        account = create_account(session, args.name, args.domain)
        domains = [d.domain for d in account.domains]
        data = {"id": account.id, "name": account.name, "domains": domains}
    context.emit(data, f"created account {args.name}"
                 + (f" ({', '.join(domains)})" if domains else ""))
    return 0


def do_add_contact(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        account = get_account(session, args.account) if args.account else None
        contact = create_contact(session, args.email, name=args.name, account=account)
        account_name = contact.account.name if contact.account else None
        data = {"id": contact.id, "name": contact.name, "email": args.email.strip().lower(),
                "account": account_name}
    context.emit(data, f"created contact {data['email']}"
                 + (f" at {account_name}" if account_name else ""))
    return 0
