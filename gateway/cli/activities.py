"""``crm-gateway activities ...``: read logged email. Activities are immutable: no command
changes or deletes one."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from gateway.activity_queries import (
    attachment_data,
    find_attachment,
    get_activity,
    links_of,
    list_activities,
)
from gateway.cli.base import Context, Failure, iso
from gateway.models import Activity


def register(commands: Any) -> None:
    group = commands.add_parser("activities", help="logged email (read-only)")
    sub = group.add_subparsers(dest="activities_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="list activities, oldest first")
    listing.add_argument("--user", metavar="USERNAME", help="only those linked to this user")
    listing.add_argument("--contact", metavar="EMAIL", help="only those linked to this contact")
    listing.set_defaults(handler=do_list)

    show = sub.add_parser("show", help="show one activity with its links and text body")
    show.add_argument("id", type=int)
    show.set_defaults(handler=do_show)

    attachment = sub.add_parser("attachment", help="save an attachment to a file")
    attachment.add_argument("id", type=int)
    attachment.add_argument("name", help="the attachment's filename (or its id)")
    attachment.add_argument("--out", required=True, metavar="PATH",
                            help="file to write; it must not exist yet")
    attachment.set_defaults(handler=do_attachment)


def summary(activity: Activity) -> dict[str, Any]:
    return {
        "id": activity.id, "message_id": activity.message_id, "direction": activity.direction,
        "source": activity.source, "subject": activity.subject, "date": iso(activity.sent_at),
        "from": activity.from_addr, "to": activity.to_addrs, "cc": activity.cc_addrs,
        "attachments": [
            {"id": a.id, "filename": a.filename, "content_type": a.content_type,
             "size": a.size, "inline": a.inline}
            for a in activity.attachments
        ],
    }


def detail(session: Session, activity: Activity) -> dict[str, Any]:
    links = links_of(session, activity.id)
    return {
        **summary(activity), "users": links.usernames, "contacts": links.contacts,
        "accounts": links.accounts, "notes": activity.notes, "text": activity.text_body,
        "html": activity.html_body, "raw_sha256": activity.raw_sha256,
        "logged_at": iso(activity.created_at),
    }


def _line(data: dict[str, Any]) -> str:
    clip = len(data["attachments"])
    extra = f"  [{clip} attachment{'s' if clip != 1 else ''}]" if clip else ""
    return (f"{data['id']:>6}  {data['date'] or '-':<20}  {data['direction']:<8}  "
            f"{data['from'] or '-':<32}  {data['subject']}{extra}")


def do_list(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        found = [summary(a) for a in list_activities(
            session, username=args.user, contact_email=args.contact)]
    context.emit(found, [_line(data) for data in found] or ["no activities"])
    return 0


def do_show(context: Context, args: argparse.Namespace) -> int:
    with context.store.reading() as session:
        data = detail(session, get_activity(session, args.id))
    lines = [
        f"activity {data['id']} ({data['direction']}, via {data['source']})",
        f"  subject:     {data['subject']}",
        f"  date:        {data['date'] or '-'}",
        f"  from:        {data['from'] or '-'}",
        f"  to:          {', '.join(data['to']) or '-'}",
        f"  cc:          {', '.join(data['cc']) or '-'}",
        f"  message-id:  {data['message_id'] or '-'}",
        f"  users:       {', '.join(data['users']) or '-'}",
        f"  contacts:    {', '.join(data['contacts']) or '-'}",
        f"  accounts:    {', '.join(data['accounts']) or '-'}",
    ]
    for attachment in data["attachments"]:
        lines.append(f"  attachment:  {attachment['filename']} ({attachment['content_type']}, "
                     f"{attachment['size']} bytes{', inline' if attachment['inline'] else ''})")
    if data["notes"]:
        lines += [f"  notes:       {line}" for line in data["notes"].splitlines()]
    lines.append("")
    if data["text"] is not None:
        lines.append(data["text"])
    elif data["html"] is not None:
        lines.append(f"(HTML body only, {len(data['html'])} characters: use --json)")
    else:
        lines.append("(no body)")
    context.emit(data, lines)
    return 0


def do_attachment(context: Context, args: argparse.Namespace) -> int:
    out = Path(args.out)
    with context.store.reading() as session:
        attachment = find_attachment(get_activity(session, args.id), args.name)
        data = attachment_data(session, attachment)
        filename = attachment.filename
    try:
        # O_EXCL: an existing file is never overwritten.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise Failure(f"{out} exists already; choose another --out") from None
    except OSError as exc:
        raise Failure(f"cannot write {out}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    context.emit({"activity": args.id, "filename": filename, "size": len(data), "out": str(out)},
                 f"wrote {filename} ({len(data)} bytes) to {out}")
    return 0
