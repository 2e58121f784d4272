"""The events the core emits, and what each carries: ids and the fields a user sees.

Each function is called where its change is made, in that change's transaction, and costs
one read of the endpoints per transaction when nobody listens (the payload is then not even
built). Payloads name users by username and everything else by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from gateway.models import Contact, DiaryEntry, InboundMessage, MailAccount, User
from gateway.publication import etag_of
from gateway.webhooks import ORIGINS, emit, iso, matches, subscriptions


def listening(session: Session, event_type: str) -> bool:
    """Whether any endpoint listens to ``event_type`` (read once per transaction)."""
    return any(matches(patterns, event_type) for _, patterns in subscriptions(session))


def _username(session: Session, user_id: int | None) -> str | None:
    # Usually in the session's identity map already: no query.
    user = session.get(User, user_id) if user_id is not None else None
    return user.username if user is not None else None


def entry_changed(session: Session, change: str, entry: DiaryEntry, origin: str) -> None:
    """``entry.created`` | ``entry.updated`` | ``entry.deleted`` with who made the change."""
    event_type = f"entry.{change}"
    assert origin in ORIGINS, origin
    if not listening(session, event_type):
        return
    task = entry.type is not None and entry.type.kind == "task"
    # A task's start/end columns are its time-range index: it reports its own fields.
    times: dict[str, object] = {"start": iso(entry.start_utc), "end": iso(entry.end_utc)}
    if task:
        times = {"start": iso(entry.task_start_utc) if entry.task_start_utc else None,
                 "end": None, "task": {
                     "due": iso(entry.due_utc) if entry.due_utc else None,
                     "completed": iso(entry.completed_utc) if entry.completed_utc else None,
                     "priority": entry.priority, "status": entry.status,
                     "percent_complete": entry.percent_complete}}
    emit(session, event_type, {
        "id": entry.id, "uid": entry.uid, "title": entry.title, **times,
        "all_day": entry.all_day,
        "type": entry.type.name if entry.type is not None else None,
        "owner": _username(session, entry.owner_user_id),
        "organizer": entry.organizer_email, "origin": origin,
        "etag": etag_of(entry.ical) if change != "deleted" else None,
        "revision": entry.revision,
    })


def activity_logged(session: Session, activity_id: int, row: dict[str, object], user: User,
                    contact_ids: Sequence[int], account_ids: Sequence[int]) -> None:
    """``activity.logged``: a new activity (never for a copy linked to one already logged)."""
    if not listening(session, "activity.logged"):
        return
    sent_at = row.get("sent_at")
    emit(session, "activity.logged", {
        "id": activity_id, "message_id": row.get("message_id"), "subject": row.get("subject"),
        "direction": row.get("direction"), "source": row.get("source"),
        "sent_at": iso(sent_at) if sent_at is not None else None,  # type: ignore[arg-type]
        "from": row.get("from_addr"), "to": row.get("to_addrs"), "cc": row.get("cc_addrs"),
        "user": user.username, "contact_ids": list(contact_ids),
        "account_ids": list(account_ids),
    })


def contact_created(session: Session, contact_id: int, name: str, email: str,
                    account_id: int | None, source: str) -> None:
    """``contact.created``; ``source`` is ``crm`` (made by hand) or ``mail`` (from logged mail)."""
    if not listening(session, "contact.created"):
        return
    emit(session, "contact.created", {"id": contact_id, "name": name, "emails": [email],
                                      "account_id": account_id, "source": source})


def contact_made(session: Session, contact: Contact, email: str, source: str) -> None:
    contact_created(session, contact.id, contact.name, email, contact.account_id, source)


def mail_account_failed(session: Session, account: MailAccount, error: str,
                        paused: bool) -> None:
    """``mail_account.failed``: an account's polls went from working to failing."""
    if not listening(session, "mail_account.failed"):
        return
    emit(session, "mail_account.failed", {
        "id": account.id, "user": _username(session, account.user_id), "host": account.host,
        "login": account.login, "error": error, "paused": paused,
    })


def inbound_failed(session: Session, message: InboundMessage) -> None:
    """``inbound.failed``: a received message was parked after its last try."""
    if not listening(session, "inbound.failed"):
        return
    data: dict[str, Any] = {
        "id": message.id, "user": _username(session, message.user_id),
        "mail_from": message.mail_from, "received_at": iso(message.received_at),
        "attempts": message.attempts, "decision": message.decision,
        "last_error": message.last_error,
    }
    emit(session, "inbound.failed", data)
