"""``crm-gateway demo``: seed the demo CRM and print how to log in."""

from __future__ import annotations

import argparse
from typing import Any

from gateway import web_logins
from gateway.bcc_addresses import bcc_address
from gateway.cli.base import Context
from gateway.config import public_base_url
from gateway.demo import seed
from gateway.users import get_user


def register(commands: Any) -> None:
    demo = commands.add_parser("demo", help="seed a demo CRM (idempotent) and print logins")
    demo.set_defaults(handler=do_demo, creates_store=True)


def calendar_base_url(context: Context) -> str:
    return public_base_url(context.config)


def do_demo(context: Context, _args: argparse.Namespace) -> int:
    logging_address = context.config.get("smtp", "logging_address")
    with context.store.transaction() as session:
        logins = seed(session)
        bcc = {x.username: bcc_address(session, get_user(session, x.username), logging_address,
                                       rotate=False) for x in logins}
        tokens = {x.username: web_logins.invite(session, get_user(session, x.username)).token
                  for x in logins}
    base = calendar_base_url(context)
    invitations = {name: web_logins.invitation_link(base, token) for name, token in tokens.items()}
    data = [{"username": x.username, "email": x.email, "app_password": x.password,
             "calendar_url": f"{base}{x.username}/", "bcc_address": bcc[x.username],
             "invitation": invitations[x.username]}
            for x in logins]
    lines = ["Demo CRM ready. Logins (username or email, with the app password):"]
    lines += [f"  {x.username:<8} {x.email:<28} {x.password}" for x in logins]
    lines += ["", f"Calendar apps (CalDAV): add an account for server {base}, or each "
              "user's URL:"]
    lines += [f"  {x.username:<8} {base}{x.username}/" for x in logins]
    lines += ["", f"Web pages: sign in at {web_logins.sign_in_link(base)} after setting a web "
              "password with a one-time link (valid 7 days):"]
    lines += [f"  {x.username:<8} {invitations[x.username]}" for x in logins]
    lines += ["", "BCC logging: mail BCC'd to a user's secret address is logged for them:"]
    lines += [f"  {x.username:<8} {bcc[x.username]}" for x in logins]
    context.emit({"users": data, "sign_in": web_logins.sign_in_link(base)}, lines)
    return 0
