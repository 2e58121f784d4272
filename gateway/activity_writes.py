"""Writing logged email: activity rows, their links and attachments, a batch at a time.

``gateway.activities`` decides what is logged; this module builds the rows and writes each
kind in one executemany per batch. Activities are inserted-or-nothing under their UNIQUE
``message_key`` and links under their partial unique indexes, so a concurrent writer or a
second arrival never duplicates one; attachments are written only for new activities.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.blobs import put_blobs
from gateway.clock import utcnow
from gateway.mail.parse import Address, ParsedEmail
from gateway.models import Activity, ActivityLink, Attachment
from gateway.participants import Links, is_logging_address
from gateway.upsert import insert_many_or_nothing, table_of

_KEY_LIMIT = 512  # activities.message_key
_NOTE_DEFECTS = 5  # how many parser notes an activity's notes repeat
_IN_CHUNK = 2000  # keys per IN (...) list, well inside SQLite's parameter limit


def storage_key(key: str) -> str:
    """``ParsedEmail.key``, or a digest of it when it is longer than the column."""
    if len(key) <= _KEY_LIMIT:
        return key
    prefix = key.partition(":")[0]
    return f"{prefix}:sha256:{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()}"


def insert_activities(
    session: Session, rows: Sequence[dict[str, object]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Insert-or-nothing each row (message keys distinct); returns two maps from message key
    to id: the rows inserted now, and those another arrival had stored already.
    """
    table = table_of(Activity)
    inserted = insert_many_or_nothing(session, Activity, rows,
                                      returning=(table.c.id, table.c.message_key))
    new = {row.message_key: row.id for row in inserted}
    clashed = [str(row["message_key"]) for row in rows if row["message_key"] not in new]
    stored: dict[str, int] = {}
    for start in range(0, len(clashed), _IN_CHUNK):
        found = session.execute(select(Activity.message_key, Activity.id)
                                .where(Activity.message_key.in_(clashed[start:start + _IN_CHUNK])))
        stored.update({key: activity_id for key, activity_id in found})
    return new, stored


def link_user(session: Session, activity_ids: Iterable[int], user_id: int) -> set[int]:
    """Link each activity to the user; returns the activities that were not linked yet."""
    table = table_of(ActivityLink)
    rows = [_link(activity_id, user_id=user_id) for activity_id in dict.fromkeys(activity_ids)]
    inserted = insert_many_or_nothing(session, ActivityLink, rows,
                                      returning=(table.c.activity_id,))
    return {row.activity_id for row in inserted}


def link_targets(session: Session, targets: Iterable[tuple[int, Links]]) -> None:
    """Link each activity to its contacts and accounts, unless already linked."""
    insert_many_or_nothing(session, ActivityLink, [
        row for activity_id, links in targets for row in (
            *(_link(activity_id, contact_id=contact_id) for contact_id in links.contact_ids),
            *(_link(activity_id, account_id=account_id) for account_id in links.account_ids),
        )
    ])


def add_attachments(session: Session, activities: Iterable[tuple[int, ParsedEmail]]) -> None:
    """Store the attachments of new activities, in order, their bytes as blobs."""
    found = [(activity_id, attachment) for activity_id, parsed in activities
             for attachment in parsed.attachments]
    if not found:
        return
    digests = put_blobs(session, [attachment.data for _, attachment in found])
    session.execute(table_of(Attachment).insert(), [
        {
            "activity_id": activity_id,
            "blob_sha256": digest,
            "filename": text(attachment.filename)[:255] or "attachment",
            "content_type": attachment.content_type[:255],
            "size": len(attachment.data),
            "inline": attachment.inline,
            "content_id": attachment.content_id[:255] if attachment.content_id else None,
        }
        for (activity_id, attachment), digest in zip(found, digests, strict=True)
    ])


def text(value: str | None) -> str:
    # PostgreSQL text cannot hold NUL; a malformed part may decode to one.
    return (value or "").replace("\x00", "")


def activity_row(parsed: ParsedEmail, key: str, user_emails: Collection[str], source: str,
                 logging_address: str, raw_sha: str | None) -> dict[str, object]:
    """The activity's row. ``direction`` comes from the From header alone: ``sent`` when it
    is a CRM user's address (``user_emails``, lower-cased), whichever user's copy came first.
    """
    sender = parsed.sender.email if parsed.sender is not None else ""

    def listed(addresses: Iterable[Address]) -> list[str]:
        return [a.email for a in addresses if not is_logging_address(a.email, logging_address)]

    return {
        "message_key": key,
        "message_id": parsed.message_id[:_KEY_LIMIT] if parsed.message_id else None,
        "direction": "sent" if sender in user_emails else "received",
        "source": source,
        "subject": text(parsed.subject),
        "text_body": text(parsed.text) if parsed.text is not None else None,
        "html_body": text(parsed.html) if parsed.html is not None else None,
        "sent_at": parsed.date,
        "from_addr": sender[:320],
        "to_addrs": listed(parsed.to),
        "cc_addrs": listed(parsed.cc),
        "raw_sha256": raw_sha,
        "notes": _notes(parsed, raw_sha),
        "created_at": utcnow(),
    }


def _notes(parsed: ParsedEmail, raw_sha: str | None) -> str | None:
    notes = []
    if parsed.truncated:
        notes.append(f"Parsing stopped early ({parsed.truncated}): what was parsed is logged; "
                     f"the raw message is kept (blob {raw_sha}).")
    if parsed.defects:
        shown = "; ".join(text(d) for d in parsed.defects[:_NOTE_DEFECTS])
        more = len(parsed.defects) - _NOTE_DEFECTS
        notes.append(f"Worked around: {shown}" + (f" (and {more} more)" if more > 0 else ""))
    return "\n".join(notes) or None


def _link(activity_id: int, *, user_id: int | None = None, contact_id: int | None = None,
          account_id: int | None = None) -> dict[str, object]:
    return {"activity_id": activity_id, "user_id": user_id, "contact_id": contact_id,
            "account_id": account_id, "created_at": utcnow()}
