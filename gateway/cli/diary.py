"""``crm-gateway diary-types ...`` and ``crm-gateway entries ...``."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.base import Context, Failure, iso, parse_when
from gateway.conflicts import clash_json, recorded
from gateway.diary_types import KINDS, create_type, get_type, list_types, update_type
from gateway.entries import (
    EntryDraft,
    EntryEdit,
    TaskDraft,
    all_day_bounds,
    check_tzid,
    create_entry,
    delete_entry,
    get_entry,
    list_entries,
    update_entry,
)
from gateway.ical import KEEP
from gateway.models import DiaryEntry, DiaryType
from gateway.publication import publish_type


def register(commands: Any) -> None:
    types = commands.add_parser("diary-types", help="diary types (one calendar each)")
    sub = types.add_subparsers(dest="types_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a diary type")
    add.add_argument("name")
    _syncable_flags(add, default=True)
    add.add_argument("--color", default="#3A87AD", metavar="#RRGGBB")
    add.add_argument("--kind", choices=KINDS, default="event",
                     help="event (default) or task: the type's calendars are task lists")
    add.set_defaults(handler=do_type_add)
    sub.add_parser("list", help="list diary types").set_defaults(handler=do_type_list)
    change = sub.add_parser("set", help="change a diary type")
    change.add_argument("name")
    _syncable_flags(change, default=None)
    change.add_argument("--color", metavar="#RRGGBB")
    change.add_argument("--rename", metavar="NEW")
    change.add_argument("--kind", choices=KINDS, help="only while the type has no entries")
    change.set_defaults(handler=do_type_set)

    entries = commands.add_parser("entries", help="diary entries")
    sub = entries.add_subparsers(dest="entries_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create an entry")
    add.add_argument("--type", required=True, metavar="NAME")
    add.add_argument("--title", required=True)
    add.add_argument("--start", metavar="ISO", help="required for events; a task's start")
    add.add_argument("--end", metavar="ISO",
                     help="end time (events); with --all-day, the last day (inclusive)")
    _task_flags(add)
    add.add_argument("--organizer", metavar="USERNAME")
    add.add_argument("--attendee", action="append", default=[], metavar="USERNAME_OR_EMAIL")
    add.add_argument("--all-day", action="store_true")
    add.add_argument("--rrule", metavar="RRULE", help="e.g. FREQ=WEEKLY;BYDAY=MO")
    add.add_argument("--tz", metavar="TZID", help="IANA zone of the times (default UTC)")
    add.add_argument("--location")
    add.add_argument("--description")
    add.add_argument("--automation", action="store_true",
                     help="made by an automation: no organiser")
    add.add_argument("--force", action="store_true",
                     help="book it even if it overlaps busy time and the organiser's "
                          "conflicts setting is refuse")
    add.set_defaults(handler=do_entry_add)
    show = sub.add_parser("list", help="list entries")
    show.add_argument("--user", metavar="USERNAME")
    show.set_defaults(handler=do_entry_list)
    change = sub.add_parser("set", help="change an entry")
    change.add_argument("id", type=int)
    change.add_argument("--title")
    change.add_argument("--start", metavar="ISO")
    change.add_argument("--end", metavar="ISO")
    change.add_argument("--type", metavar="NAME")
    change.add_argument("--location", help='"" removes it')
    change.add_argument("--description", help='"" removes it')
    change.add_argument("--attendees", metavar="LIST",
                        help="usernames or emails, comma-separated: replaces the attendees "
                        '(those who stay keep their answer; "" removes all)')
    _task_flags(change)
    change.add_argument("--no-due", action="store_true", help="tasks: remove the due date")
    change.add_argument("--force", action="store_true",
                        help="move it even over busy time (conflicts = refuse)")
    change.set_defaults(handler=do_entry_set)
    delete = sub.add_parser("delete", help="delete an entry")
    delete.add_argument("id", type=int)
    delete.set_defaults(handler=do_entry_delete)


def _task_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--due", metavar="ISO", help="tasks: the due date")
    parser.add_argument("--priority", type=int, metavar="0-9",
                        help="tasks: 1 highest, 9 lowest, 0 none")
    parser.add_argument("--status", metavar="STATUS", type=str.upper,
                        help="tasks: NEEDS-ACTION, IN-PROCESS, COMPLETED or CANCELLED")
    parser.add_argument("--percent", type=int, metavar="0-100", help="tasks: percent complete")


def _task_args(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) not in (None, False)
               for name in ("due", "priority", "status", "percent", "no_due"))


def _syncable_flags(parser: argparse.ArgumentParser, default: bool | None) -> None:
    flags = parser.add_mutually_exclusive_group()
    flags.add_argument("--syncable", dest="syncable", action="store_true", default=default,
                       help="published as a calendar")
    flags.add_argument("--not-syncable", dest="syncable", action="store_false",
                       help="not published")


def describe_type(diary_type: DiaryType) -> dict[str, Any]:
    return {"name": diary_type.name, "slug": diary_type.slug, "color": diary_type.color,
            "syncable": diary_type.syncable, "kind": diary_type.kind}


def _type_line(diary_type: DiaryType) -> str:
    state = "syncable" if diary_type.syncable else "not syncable"
    return (f"{diary_type.name:<24} {diary_type.slug:<24} {diary_type.color}  "
            f"{diary_type.kind:<5}  {state}")


def do_type_add(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        diary_type = create_type(session, args.name, syncable=args.syncable, color=args.color,
                                 kind=args.kind)
        data = describe_type(diary_type)
    context.emit(data, f"created diary type {data['name']} ({data['slug']})")
    return 0


def do_type_list(context: Context, _args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        types = list_types(session)
        context.emit([describe_type(t) for t in types], [_type_line(t) for t in types])
    return 0


def do_type_set(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        diary_type = get_type(session, args.name)
        if update_type(session, diary_type, rename=args.rename, color=args.color,
                       syncable=args.syncable, kind=args.kind):
            publish_type(session, diary_type)
        data = describe_type(diary_type)
        line = _type_line(diary_type)
    context.emit(data, line)
    return 0


def describe_entry(entry: DiaryEntry) -> dict[str, Any]:
    if entry.type.kind == "task":  # its start/end columns are its time-range index
        start = iso(entry.task_start_utc) if entry.task_start_utc else None
        return {**_entry_fields(entry), "start": start, "end": None}
    return _entry_fields(entry)


def _entry_fields(entry: DiaryEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "uid": entry.uid, "type": entry.type.name, "title": entry.title,
        "start": iso(entry.start_utc), "end": iso(entry.end_utc), "tzid": entry.tzid,
        "all_day": entry.all_day, "rrule": entry.rrule, "origin": entry.origin,
        "organizer": entry.organizer.username if entry.organizer else entry.organizer_email,
        "location": entry.location,
        **({"task": describe_task(entry)} if entry.type.kind == "task" else {}),
        "participants": [
            {"email": p.email, "partstat": p.partstat,
             "kind": "user" if p.user_id else "contact" if p.contact_id else "external"}
            for p in entry.participants
        ],
    }


def describe_task(entry: DiaryEntry) -> dict[str, Any]:
    return {"start": iso(entry.task_start_utc) if entry.task_start_utc else None,
            "due": iso(entry.due_utc) if entry.due_utc else None,
            "completed": iso(entry.completed_utc) if entry.completed_utc else None,
            "priority": entry.priority, "status": entry.status,
            "percent_complete": entry.percent_complete}


def _entry_line(entry: DiaryEntry) -> str:
    if entry.type.kind == "task":
        due = entry.due_utc.strftime("%Y-%m-%d %H:%MZ") if entry.due_utc else "no due date"
        who = entry.organizer.username if entry.organizer else entry.organizer_email or "-"
        return (f"{entry.id:>5}  {due:<17} {entry.type.name:<14} {who:<12} {entry.title} "
                f"[{entry.status or 'NEEDS-ACTION'}]")
    when = (entry.start_utc.date().isoformat() if entry.all_day
            else entry.start_utc.strftime("%Y-%m-%d %H:%MZ"))
    who = entry.organizer.username if entry.organizer else entry.organizer_email or "automation"
    recurring = " (recurring)" if entry.rrule else ""
    return f"{entry.id:>5}  {when:<17} {entry.type.name:<14} {who:<12} {entry.title}{recurring}"


def _bounds(args: argparse.Namespace, tzid: str | None) -> tuple[Any, Any]:
    if args.start is None or args.end is None:
        raise Failure("an event needs --start and --end (tasks: --due, --start)")
    start, end = parse_when(args.start, tzid), parse_when(args.end, tzid)
    if args.all_day:
        if "T" in args.start or "T" in args.end:
            raise Failure("--all-day takes dates (YYYY-MM-DD), not times")
        return all_day_bounds(start, end)
    return start, end


def do_entry_add(context: Context, args: argparse.Namespace) -> int:
    tzid = check_tzid(args.tz)
    with context.store.reading() as session:
        kind = get_type(session, args.type).kind
    task = None
    if kind == "task":
        if args.end is not None or args.all_day:
            raise Failure(f"{args.type} is a task type: give --due (and --start), not --end")
        start = parse_when(args.start, tzid) if args.start else None
        end = None
        task = TaskDraft(start=start, due=parse_when(args.due, tzid) if args.due else None,
                         priority=args.priority, status=args.status,
                         percent_complete=args.percent)
    elif _task_args(args):
        raise Failure(f"{args.type} is an event type: --due, --priority, --status and "
                      "--percent are for task types")
    else:
        start, end = _bounds(args, None if args.all_day else tzid)
    draft = EntryDraft(
        type_name=args.type, title=args.title, start=start, end=end,
        organizer=args.organizer, attendees=tuple(args.attendee), all_day=args.all_day,
        rrule=args.rrule, tzid=tzid, location=args.location, description=args.description,
        automation=args.automation, task=task,
    )
    with context.store.transaction() as session:
        entry = create_entry(session, draft, force=args.force)
        data = describe_entry(entry)
        data["conflicts"] = [clash_json(c) for c in recorded(session, entry.id)]
    context.emit(data, [f"created entry {data['id']}: {data['title']}",
                        *_conflict_lines(data["conflicts"])])
    return 0


def _conflict_lines(conflicts: list[dict[str, Any]]) -> list[str]:
    return [f"  overlaps {c['user']}'s {c['title']!r} {c['start']} to {c['end']} "
            f"({c['calendar']})" for c in conflicts]


def do_entry_list(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        entries = list_entries(session, args.user)
        context.emit([describe_entry(e) for e in entries], [_entry_line(e) for e in entries])
    return 0


def do_entry_set(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        entry = get_entry(session, args.id)
        zone = None if entry.all_day else entry.tzid
        due: Any = KEEP
        if args.no_due:
            due = None
        elif args.due:
            due = parse_when(args.due, zone)
        edit = EntryEdit(
            title=args.title,
            start=parse_when(args.start, zone) if args.start else None,
            end=parse_when(args.end, zone) if args.end else None,
            type_name=args.type, location=args.location, description=args.description,
            attendees=None if args.attendees is None else tuple(
                name.strip() for name in args.attendees.split(",") if name.strip()),
            due=due,
            priority=KEEP if args.priority is None else args.priority,
            status=KEEP if args.status is None else args.status,
            percent_complete=KEEP if args.percent is None else args.percent,
        )
        update_entry(session, entry, edit, force=args.force)
        data = describe_entry(entry)
        data["conflicts"] = [clash_json(c) for c in recorded(session, entry.id)]
    context.emit(data, [f"updated entry {data['id']}: {data['title']}",
                        *_conflict_lines(data["conflicts"])])
    return 0


def do_entry_delete(context: Context, args: argparse.Namespace) -> int:
    with context.store.transaction() as session:
        entry = get_entry(session, args.id)
        delete_entry(session, entry)
    context.emit({"id": args.id, "deleted": True}, f"deleted entry {args.id}")
    return 0
