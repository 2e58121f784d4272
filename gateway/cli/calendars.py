"""``crm-gateway calendars``: link reps' own CalDAV accounts, test, sync, reset, dedupe.

``link`` tests the connection first (every step named, as ``mail test`` does) and stores
nothing when a step fails. The password is read from an environment variable or a file
(never from the command line, where ``ps`` would show it), stored encrypted, never printed.
The server work runs in this process, in the foreground.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.cli.base import Context, Failure, iso, step_lines
from gateway.cli.mail import _read_password
from gateway.diary_types import get_type
from gateway.errors import Invalid
from gateway.key_check import check_key
from gateway.linked_calendars import (
    PROVIDERS,
    LinkTarget,
    RemoteCalendar,
    choose_calendar,
    conflicts_of,
    create_link,
    default_source_type,
    describe,
    get_link,
    links_of,
    load_link,
    remove_link,
    reset_link,
    resolve_url,
)
from gateway.models import DiaryType, LinkedAccount
from gateway.secrets import SecretBox
from gateway.users import get_user

DEFAULT_TARGET = "CRM"


def register(commands: Any) -> None:
    group = commands.add_parser("calendars", help="reps' own calendar accounts, linked")
    sub = group.add_subparsers(dest="calendars_command", metavar="ACTION", required=True)
    link = sub.add_parser("link", help="link a rep's CalDAV account (tested first)")
    link.add_argument("username")
    link.add_argument("--url", help="the account's CalDAV URL (default: the provider's)")
    link.add_argument("--login", required=True)
    link.add_argument("--password-env", metavar="VAR",
                      help="environment variable holding the (app-specific) password")
    link.add_argument("--password-file", metavar="PATH", help="file holding the password")
    link.add_argument("--provider", choices=sorted(PROVIDERS), default="custom")
    link.add_argument("--target", metavar="NAME", default=DEFAULT_TARGET,
                      help=f"calendar the diary is pushed to (made if missing; default "
                      f"{DEFAULT_TARGET})")
    link.add_argument("--source", metavar="NAME", action="append", default=[],
                      help="a calendar whose events are fetched (repeatable)")
    link.add_argument("--type", metavar="TYPE",
                      help="diary type of fetched events (default: the first syncable)")
    link.set_defaults(handler=do_link)
    unlink = sub.add_parser("unlink", help="forget a link (what was pushed stays, unless "
                            "--remove-pushed)")
    unlink.add_argument("username")
    unlink.add_argument("link", nargs="?", help="link number (default: the only one)")
    unlink.add_argument("--remove-pushed", action="store_true",
                        help="delete from the account every event the gateway put there")
    unlink.set_defaults(handler=do_unlink)
    for action, handler, text in (
        ("list-remote", do_list_remote, "the linked account's calendars"),
        ("test", do_test, "check resolve, connect, TLS, auth, discovery, calendar list"),
        ("reset", do_reset, "forget the sync state; the next pass reconciles by UID"),
        ("dedupe", do_dedupe, "remove duplicate events on the account (same UID, or same "
                              "title, start and end), keeping the one the CRM knows"),
    ):
        parser = sub.add_parser(action, help=text)
        parser.add_argument("username")
        parser.add_argument("link", nargs="?", help="link number (default: the only one)")
        if action == "dedupe":
            parser.add_argument("--dry-run", action="store_true",
                                help="list what would be removed; remove nothing")
        parser.set_defaults(handler=handler)
    show = sub.add_parser("show", help="a rep's links, their state and counts")
    show.add_argument("username")
    show.set_defaults(handler=do_show)
    sync = sub.add_parser("sync", help="one sync pass now, in the foreground")
    sync.add_argument("username")
    sync.add_argument("--now", action="store_true",
                      help="one pass (the continuous sync runs in 'crm-gateway serve')")
    sync.set_defaults(handler=do_sync)


def _box(context: Context) -> SecretBox:
    key = context.config.get("security", "secret_key")
    check_key(context.store, key)  # a password stored under another key could not be read
    return SecretBox(key)


def _timeout(context: Context) -> int:
    return int(context.config.get("linked", "timeout_seconds"))


def _chosen(session: Any, username: str, link: str | None) -> LinkedAccount:
    user = get_user(session, username)
    if link is not None:
        return get_link(session, user, link)
    links = links_of(session, user)
    if len(links) != 1:
        raise Failure(f"{username} has {len(links) or 'no'} linked accounts: name one "
                      "(see 'crm-gateway calendars show')" if links else
                      f"{username} has no linked calendar account")
    return links[0]


def _target(context: Context, username: str, link: str | None) -> LinkTarget:
    with context.store.reading() as session:
        link_id = _chosen(session, username, link).id
    return load_link(context.store, link_id, _box(context))


def _failed(command: str, username: str, result: Any) -> int:
    failed = result.failed
    print(f"crm-gateway: calendars {command} {username}: failed at step {failed.name}: "
          f"{failed.detail}", file=sys.stderr)
    return 1


def do_link(context: Context, args: argparse.Namespace) -> int:
    from linked import Account, RemoteError, check_account

    url = resolve_url(args.provider, args.url)
    password = _read_password(args)
    box = _box(context)
    with context.store.reading() as session:
        user = get_user(session, args.username)
        if not user.diary_sync:
            raise Invalid(f"{args.username} does not have diary sync on: enable it first")
        source_type = get_type(session, args.type) if args.type else default_source_type(session)
        type_id = source_type.id
    result = check_account(url, args.login, password, timeout=_timeout(context))
    data: dict[str, Any] = {"user": args.username, "url": url,
                            "test": {"ok": result.ok, "steps": [vars(s) for s in result.steps]}}
    lines = [f"testing {args.login} at {url}:", *step_lines(result)]
    if not result.ok:
        context.emit(data, lines)
        return _failed("link", args.username, result)
    sources: list[RemoteCalendar] = []
    for name in args.source:
        found = choose_calendar(result.calendars, name)
        if found is None:
            raise Failure(f"no calendar {name!r} on the account (it has: "
                          f"{', '.join(c.name or c.url for c in result.calendars) or 'none'})")
        sources.append(found)
    target = choose_calendar(result.calendars, args.target)
    if target is None:
        account = Account(url, args.login, password, _timeout(context))
        try:
            target = account.make_calendar(result.home_url or url, args.target)
        except RemoteError as exc:
            raise Failure(str(exc)) from None
        finally:
            account.close()
        lines.append(f"made the calendar {args.target!r} at {target.url}")
    with context.store.transaction() as session:
        user = get_user(session, args.username)
        fetch_into = session.get(DiaryType, type_id)
        assert fetch_into is not None
        link = create_link(session, user, url=url, login=args.login, password=password,
                           provider=args.provider, box=box, principal_url=result.principal_url,
                           home_url=result.home_url, target=target, sources=sources,
                           source_type=fetch_into)
        link_id = link.id
    lines.append(f"linked account {link_id} of {args.username}: the diary goes to "
                 f"{target.name or target.url}" + (
                     "; events fetched from " + ", ".join(s.name or s.url for s in sources)
                     if sources else ""))
    data.update(link=link_id, target=target.url, sources=[s.url for s in sources])
    context.emit(data, lines)
    return 0


def do_test(context: Context, args: argparse.Namespace) -> int:
    from linked import check_account

    target = _target(context, args.username, args.link)
    result = check_account(target.url, target.login, target.password, timeout=_timeout(context))
    context.emit({"user": args.username, "link": target.link_id, "ok": result.ok,
                  "steps": [vars(s) for s in result.steps]}, step_lines(result))
    return 0 if result.ok else _failed("test", args.username, result)


def do_list_remote(context: Context, args: argparse.Namespace) -> int:
    from linked import check_account

    target = _target(context, args.username, args.link)
    result = check_account(target.url, target.login, target.password, timeout=_timeout(context))
    if not result.ok:
        context.emit({"ok": False, "steps": [vars(s) for s in result.steps]},
                     step_lines(result))
        return _failed("list-remote", args.username, result)
    roles = {c.url: c.role for c in target.calendars}
    rows = [{"url": c.url, "name": c.name, "role": roles.get(c.url)} for c in result.calendars]
    context.emit(rows, [f"{r['name'] or '-'}  {r['url']}" + (f"  ({r['role']})" if r["role"]
                                                              else "") for r in rows])
    return 0


def do_unlink(context: Context, args: argparse.Namespace) -> int:
    lines: list[str] = []
    data: dict[str, Any] = {"user": args.username}
    if args.remove_pushed:
        from linked import remove_pushed

        target = _target(context, args.username, args.link)
        removal = remove_pushed(context.store, target, timeout=_timeout(context))
        lines.append(f"removed {len(removal.removed)} events the gateway had put on the account")
        if removal.kept:
            lines.append(f"left {len(removal.kept)} changed on the account since: "
                         + ", ".join(removal.kept))
        data.update(removed=removal.removed, kept=removal.kept)
    with context.store.transaction() as session:
        link = _chosen(session, args.username, args.link)
        data["link"] = link.id
        remove_link(session, link)
    lines.append(f"unlinked account {data['link']} of {args.username}")
    context.emit(data, lines)
    return 0


def do_reset(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        link = _chosen(session, args.username, args.link)
        forgotten = reset_link(session, link)
        link_id = link.id
    context.emit({"user": args.username, "link": link_id, "forgotten": forgotten},
                 f"reset the sync of linked account {link_id}: {forgotten} objects forgotten; "
                 "the next pass reconciles by UID")
    return 0


def do_dedupe(context: Context, args: argparse.Namespace) -> int:
    from linked import dedupe

    target = _target(context, args.username, args.link)
    hrefs = dedupe(context.store, target, dry_run=args.dry_run, timeout=_timeout(context))
    verb = "would remove" if args.dry_run else "removed"
    context.emit({"user": args.username, "link": target.link_id, "dry_run": args.dry_run,
                  "duplicates": hrefs},
                 [f"{verb} {len(hrefs)} duplicates", *(f"  {href}" for href in hrefs)])
    return 0


def do_show(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        user = get_user(session, args.username)
        data = []
        for link in links_of(session, user):
            shown = describe(session, link)
            shown["conflicts"] = [
                {"href": o.href, "note": o.conflict_note, "at": o.conflict_at,
                 "kept": o.conflict_ical} for o in conflicts_of(session, link.id)]
            data.append(shown)
    lines = []
    for item in data:
        lines.append(f"link {item['link']}: {item['login']} at {item['url']} ({item['provider']}"
                     f", {item['status']}, direction {item['direction']})")
        lines.append(f"  last success {iso(item['last_success_at']) or 'never'}"
                     + (f"; last error {item['last_error']} at {iso(item['last_error_at'])}"
                        if item["last_error"] else "")
                     + (f"; {item['failures']} failures in a row" if item["failures"] else ""))
        for cal in item["calendars"]:
            lines.append(f"  {cal['role']:6} {cal['name'] or cal['url']}: {cal['pushed']} "
                         f"pushed, {cal['fetched']} fetched, {cal['busy']} busy, "
                         f"{cal['conflicts']} conflicts (sync by {cal['sync']})")
        lines += [f"  conflict {c['href']}: {c['note']}" for c in item["conflicts"]]
    context.emit(data, lines or [f"{args.username} has no linked calendar account"])
    return 0


def do_sync(context: Context, args: argparse.Namespace) -> int:
    if not args.now:
        raise Failure("calendars sync needs --now (one pass now); the continuous sync runs in "
                      "'crm-gateway serve' or 'crm-gateway serve --only linked'")
    from linked import sync_now

    with context.store.reading() as session:
        if not links_of(session, get_user(session, args.username)):
            raise Failure(f"{args.username} has no linked calendar account")
    _box(context)
    reports = sync_now(context.config, context.store, [args.username])
    lines = []
    for report in reports:
        if report.error:
            lines.append(f"link {report.link_id}: failed: {report.error}")
            continue
        lines.append(f"link {report.link_id}: pushed {report.pushed}, deleted {report.deleted}"
                     f" on the account; fetched {report.fetched}, removed {report.removed}, "
                     f"busy {report.busy} into the CRM; {report.requests} requests")
        lines += [f"  conflict {c}" for c in report.conflicts]
        lines += [f"  not taken {r}" for r in report.refused]
    if not reports:
        lines.append(f"{args.username}'s links are being synced by another process right now")
    context.emit([r.as_dict() for r in reports], lines)
    return 1 if any(r.error for r in reports) or not reports else 0
