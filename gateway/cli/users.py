"""``crm-gateway users ...``: CRM users, app passwords and BCC addresses."""

from __future__ import annotations

import argparse
from typing import Any

from gateway import app_passwords, web_logins
from gateway.availability import WorkingHours, set_working_hours
from gateway.bcc_addresses import bcc_address
from gateway.cli.base import Context, on_off
from gateway.config import public_base_url
from gateway.models import User
from gateway.publication import publish_user
from gateway.users import (
    UserChanges,
    create_user,
    get_user,
    list_users,
    update_user,
)


def register(commands: Any) -> None:
    group = commands.add_parser("users", help="CRM users")
    sub = group.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--email", required=True)
    add.add_argument("--name", default="")
    add.add_argument("--admin", action="store_true")
    add.set_defaults(handler=do_add)

    sub.add_parser("list", help="list users").set_defaults(handler=do_list)

    show = sub.add_parser("show", help="show one user")
    show.add_argument("username")
    show.set_defaults(handler=do_show)

    change = sub.add_parser("set", help="change a user's settings")
    change.add_argument("username")
    change.add_argument("--email-sync", type=on_off, metavar="on|off")
    change.add_argument("--diary-sync", type=on_off, metavar="on|off")
    change.add_argument("--email")
    change.add_argument("--name")
    change.add_argument("--admin", action=argparse.BooleanOptionalAction, default=None,
                        help="may use the admin console (--no-admin: may not)")
    change.add_argument("--notify", action=argparse.BooleanOptionalAction, default=None,
                        help="mail the user when an event made in their calendar app lands "
                             "in the CRM (--no-notify: do not)")
    change.add_argument("--working-hours", metavar="HOURS",
                        help="e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin'; 'default' for the "
                             "configured availability.working_hours")
    change.set_defaults(handler=do_set)

    password = sub.add_parser("app-password", help="issue an app password (printed once)")
    password.add_argument("username")
    password.add_argument("--label", default="")
    password.set_defaults(handler=do_app_password)

    revoke = sub.add_parser("revoke-password", help="revoke an app password")
    revoke.add_argument("username")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=do_revoke)

    invite = sub.add_parser("invite", help="print a one-time link to set a web password")
    invite.add_argument("username")
    invite.set_defaults(handler=do_invite)

    reset = sub.add_parser("reset-web-password",
                           help="clear the user's web password and end their web sessions")
    reset.add_argument("username")
    reset.set_defaults(handler=do_reset_web_password)

    bcc = sub.add_parser("bcc-address", help="print the user's secret BCC logging address")
    bcc.add_argument("username")
    bcc.add_argument("--rotate", action="store_true",
                     help="issue a new address; the old one is refused from then on")
    bcc.set_defaults(handler=do_bcc_address)


def describe(user: User) -> dict[str, Any]:
    return {
        "username": user.username, "email": user.email, "name": user.name,
        "admin": user.is_admin, "email_sync": user.email_sync, "diary_sync": user.diary_sync,
        "notify_client_adds": user.notify_client_adds,
        "working_hours": str(WorkingHours.from_json(user.working_hours))
        if user.working_hours else None,
        "app_passwords": [
            {"id": p.id, "label": p.label, "created": p.created_at, "revoked": p.revoked_at,
             "last_used": p.last_used_at}
            for p in user.app_passwords
        ],
    }


def _line(user: User) -> str:
    flags = []
    if user.is_admin:
        flags.append("admin")
    flags.append("email-sync " + ("on" if user.email_sync else "off"))
    flags.append("diary-sync " + ("on" if user.diary_sync else "off"))
    return f"{user.username:<16} {user.email:<32} {user.name:<24} {', '.join(flags)}"


def do_add(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = create_user(session, args.username, args.email, name=args.name, admin=args.admin)
        data = describe(user)
    context.emit(data, f"created user {args.username}")
    return 0


def do_list(context: Context, _args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        users = list_users(session)
        context.emit([describe(user) for user in users], [_line(user) for user in users])
    return 0


def do_show(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        user = get_user(session, args.username)
        data = describe(user)
        first = _line(user)
    lines = [first] + [_password_line(p) for p in data["app_passwords"]]
    context.emit(data, lines)
    return 0


def _password_line(password: dict[str, Any]) -> str:
    used = password["last_used"]
    # last_used_at is recorded at most once a minute.
    seen = f"last used {used:%Y-%m-%d %H:%M} UTC" if used else "never used"
    revoked = ", revoked" if password["revoked"] else ""
    return f"  app password {password['id']}: {password['label']} ({seen}{revoked})"


def do_set(context: Context, args: argparse.Namespace) -> int:
    changes = UserChanges(
        email=args.email, name=args.name, email_sync=args.email_sync,
        diary_sync=args.diary_sync, notify_client_adds=args.notify,
    )
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        if update_user(session, user, changes):
            publish_user(session, user)
        if args.admin is not None:
            user.is_admin = args.admin
        if args.working_hours is not None:
            hours = args.working_hours.strip()
            set_working_hours(session, user, None if hours in ("", "default") else hours)
        data = describe(user)
        line = _line(user)
    context.emit(data, line)
    return 0


def do_app_password(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        issued = app_passwords.issue(session, user, args.label)
    context.emit(
        {"username": args.username, "id": issued.id, "label": issued.label,
         "password": issued.password},
        [f"app password for {args.username} ({issued.label}): {issued.password}",
         "It is shown only this once."],
    )
    return 0


def do_revoke(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        app_passwords.revoke(session, user, args.id)
    context.emit({"username": args.username, "revoked": args.id},
                 f"revoked app password {args.id} of {args.username}")
    return 0


def do_invite(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        invitation = web_logins.invite(session, user)
    link = web_logins.invitation_link(public_base_url(context.config), invitation.token)
    context.emit({"username": args.username, "link": link, "expires": invitation.expires_at},
                 [f"invitation for {args.username} (works once, until "
                  f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):", link])
    return 0


def do_reset_web_password(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        web_logins.reset(session, get_user(session, args.username))
    context.emit({"username": args.username, "reset": True},
                 f"web password of {args.username} cleared; their web sessions are ended "
                 "(send a new invitation)")
    return 0


def do_bcc_address(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        address = bcc_address(session, user, context.config.get("smtp", "logging_address"),
                              rotate=args.rotate)
    context.emit({"username": args.username, "bcc_address": address, "rotated": args.rotate},
                 address)
    return 0
