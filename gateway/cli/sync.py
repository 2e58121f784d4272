"""``crm-gateway sync ...``: sync profiles, sync resets and duplicate clean-up."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from gateway.cli.base import Context, Failure, on_off
from gateway.profiles import (
    CONFLICTS,
    DIRECTIONS,
    INVITATIONS,
    RECORDS,
    REP_CHOOSABLE,
    ProfileChanges,
    effective_profile,
    global_profile,
    rep_choices,
    set_rep_choices,
)
from gateway.sync_admin import change_profile, dedupe, reset_sync
from gateway.users import get_user


def register(commands: Any) -> None:
    group = commands.add_parser("sync", help="calendar sync settings")
    sub = group.add_subparsers(dest="sync_command", metavar="ACTION", required=True)

    profile = sub.add_parser("profile", help="show or change a sync profile "
                             "(no USERNAME: the global default)")
    profile.add_argument("username", nargs="?", metavar="USERNAME")
    profile.add_argument("--records", choices=RECORDS)
    profile.add_argument("--direction", choices=DIRECTIONS)
    profile.add_argument("--sync-invitees", type=on_off, metavar="on|off")
    profile.add_argument("--paused", type=on_off, metavar="on|off")
    profile.add_argument("--log-email", type=on_off, metavar="on|off",
                         help="off: the user's mail is not logged (calendar only)")
    profile.add_argument("--invitations", choices=INVITATIONS,
                         help="iMIP mail to attendees on CRM-side changes (after_first_sync: "
                              "not for entries made before the rep's first calendar sync)")
    profile.add_argument("--conflicts", choices=CONFLICTS,
                         help="a CRM-side booking over busy time: allow (not checked), warn "
                              "(made, overlaps listed), refuse (refused unless --force)")
    profile.add_argument("--rep-choices", type=_choices, metavar="LIST",
                         help="global default only: the settings reps may change themselves "
                         f"on My sync, comma-separated ({', '.join(REP_CHOOSABLE)}; "
                         "'none' for none)")
    profile.set_defaults(handler=do_profile)

    reset = sub.add_parser("reset", help="refuse old sync tokens: clients resync fully")
    reset.add_argument("username", metavar="USERNAME")
    reset.set_defaults(handler=do_reset)

    clean = sub.add_parser("dedupe", help="remove entries a client re-import duplicated")
    clean.add_argument("username", metavar="USERNAME")
    clean.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    clean.set_defaults(handler=do_dedupe)


def _choices(value: str) -> list[str]:
    names = [] if value.strip() == "none" else [n.strip().replace("-", "_")
                                                for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in REP_CHOOSABLE]
    if unknown:
        raise argparse.ArgumentTypeError(f"not a setting reps may change: {', '.join(unknown)}"
                                         f" (one of {', '.join(REP_CHOOSABLE)})")
    return names


def do_profile(context: Context, args: argparse.Namespace) -> int:
    changes = ProfileChanges(records=args.records, direction=args.direction,
                             sync_invitees=args.sync_invitees, paused=args.paused,
                             log_email=args.log_email, invitations=args.invitations,
                             conflicts=args.conflicts)
    if args.rep_choices is not None and args.username:
        raise Failure("--rep-choices belongs to the global default: leave out USERNAME")
    with context.store.transaction() as session:
        user = get_user(session, args.username) if args.username else None
        change_profile(session, user, changes)
        if args.rep_choices is not None:
            set_rep_choices(session, args.rep_choices)
        profile = effective_profile(session, user.id) if user else global_profile(session)
        choices = None if user else list(rep_choices(session))
    data: dict[str, Any] = {"user": args.username, **asdict(profile)}
    if choices is not None:
        data["rep_choices"] = choices
    scope = f"user {args.username}" if args.username else "global default"
    context.emit(data, [f"sync profile ({scope}):"] + [
        f"  {key.replace('_', '-')}: {_show(value)}" for key, value in asdict(profile).items()
    ] + ([f"  reps may change: {', '.join(choices) or 'nothing'}"] if choices is not None
         else []))
    return 0


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def do_reset(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        count = reset_sync(session, get_user(session, args.username))
    context.emit({"user": args.username, "calendars_reset": count},
                 f"sync reset for {args.username}: {count} calendar(s); clients resync fully")
    return 0


def do_dedupe(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        removed = dedupe(session, get_user(session, args.username), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    lines = [f"{verb} {len(removed)} duplicate entr{'y' if len(removed) == 1 else 'ies'}"]
    lines += [f"  {d.id} ({d.title}, {d.start}) duplicates {d.kept_id}" for d in removed]
    context.emit({"user": args.username, "dry_run": args.dry_run,
                  "removed": [asdict(d) for d in removed]}, lines)
    return 0
