"""``crm-gateway calendars``: link reps' own CalDAV accounts, test, sync, reset, dedupe.

``link`` tests the connection first (every step named, as ``mail test`` does) and stores
nothing when a step fails; the flow is ``gateway.linked_ops``, which the API and the pages
share. The password is read from an environment variable or a file
(never from the command line, where ``ps`` would show it), stored encrypted, never printed.
The server work runs in this process, in the foreground.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from gateway import linked_ops
from gateway.cli.base import Context, Failure, iso, step_lines
from gateway.cli.mail import _read_password
from gateway.connectivity import StepResult
from gateway.linked_calendars import (
    PROVIDERS,
    conflicts_of,
    describe,
    links_of,
    reset_link,
    resolve_url,
)
from gateway.linked_ops import DEFAULT_TARGET
from gateway.users import get_user


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


def _remote() -> None:
    from linked import REMOTE

    linked_ops.provide(REMOTE)


def _failed(command: str, username: str, result: StepResult) -> int:
    failed = result.failed
    assert failed is not None
    print(f"crm-gateway: calendars {command} {username}: failed at step {failed.name}: "
          f"{failed.detail}", file=sys.stderr)
    return 1


def _test_data(result: StepResult) -> dict[str, Any]:
    return {"ok": result.ok, "steps": [vars(s) for s in result.steps]}


def do_link(context: Context, args: argparse.Namespace) -> int:
    _remote()
    url = resolve_url(args.provider, args.url)
    request = linked_ops.LinkRequest(
        username=args.username, login=args.login, password=_read_password(args),
        provider=args.provider, url=args.url, target=args.target, sources=tuple(args.source),
        diary_type=args.type)
    try:
        linked = linked_ops.link_account(context.config, context.store, request)
    except linked_ops.LinkRefused as refused:
        context.emit({"user": args.username, "url": url, "test": _test_data(refused.check)},
                     [f"testing {args.login} at {url}:", *step_lines(refused.check)])
        return _failed("link", args.username, refused.check)
    except linked_ops.RemoteRefused as exc:
        raise Failure(str(exc)) from None
    target, sources = linked.target, linked.sources
    lines = [f"testing {args.login} at {url}:", *step_lines(linked.check)]
    if linked.made_target:
        lines.append(f"made the calendar {args.target!r} at {target.url}")
    lines.append(f"linked account {linked.link_id} of {args.username}: the diary goes to "
                 f"{target.name or target.url}" + (
                     "; events fetched from " + ", ".join(s.name or s.url for s in sources)
                     if sources else ""))
    context.emit({"user": args.username, "url": url, "test": _test_data(linked.check),
                  "link": linked.link_id, "target": target.url,
                  "sources": [s.url for s in sources]}, lines)
    return 0


def do_test(context: Context, args: argparse.Namespace) -> int:
    _remote()
    link_id, result = linked_ops.test_link(context.config, context.store, args.username,
                                           args.link)
    context.emit({"user": args.username, "link": link_id, **_test_data(result)},
                 step_lines(result))
    return 0 if result.ok else _failed("test", args.username, result)


def do_list_remote(context: Context, args: argparse.Namespace) -> int:
    _remote()
    result, calendars = linked_ops.remote_calendars(context.config, context.store,
                                                    args.username, args.link)
    if not result.ok:
        context.emit(_test_data(result), step_lines(result))
        return _failed("list-remote", args.username, result)
    rows = [{"url": c.url, "name": c.name, "role": role} for c, role in calendars]
    context.emit(rows, [f"{r['name'] or '-'}  {r['url']}" + (f"  ({r['role']})" if r["role"]
                                                              else "") for r in rows])
    return 0


def do_unlink(context: Context, args: argparse.Namespace) -> int:
    _remote()
    link_id, removal = linked_ops.unlink(context.config, context.store, args.username,
                                         args.link, remove_pushed=args.remove_pushed)
    lines: list[str] = []
    data: dict[str, Any] = {"user": args.username, "link": link_id}
    if removal is not None:
        lines.append(f"removed {len(removal.removed)} events the gateway had put on the account")
        if removal.kept:
            lines.append(f"left {len(removal.kept)} changed on the account since: "
                         + ", ".join(removal.kept))
        data.update(removed=removal.removed, kept=removal.kept)
    lines.append(f"unlinked account {link_id} of {args.username}")
    context.emit(data, lines)
    return 0


def do_reset(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        link = linked_ops.chosen_link(session, args.username, args.link)
        forgotten = reset_link(session, link)
        link_id = link.id
    context.emit({"user": args.username, "link": link_id, "forgotten": forgotten},
                 f"reset the sync of linked account {link_id}: {forgotten} objects forgotten; "
                 "the next pass reconciles by UID")
    return 0


def do_dedupe(context: Context, args: argparse.Namespace) -> int:
    _remote()
    link_id, hrefs = linked_ops.dedupe_link(context.config, context.store, args.username,
                                            args.link, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    context.emit({"user": args.username, "link": link_id, "dry_run": args.dry_run,
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
    _remote()
    reports = linked_ops.sync_links(context.config, context.store, args.username)
    context.emit([vars(r) for r in reports], pass_lines(args.username, reports))
    return 1 if any(r.error for r in reports) or not reports else 0


def pass_lines(username: str, reports: Sequence[linked_ops.PassLike]) -> list[str]:
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
        lines.append(f"{username}'s links are being synced by another process right now")
    return lines
