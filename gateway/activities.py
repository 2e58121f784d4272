"""The activity service: one logged email per message, shared by the SMTP and IMAP edges.

``record_email`` logs one parsed message for one CRM user, idempotently: the activity is keyed
by ``ParsedEmail.key`` under a UNIQUE constraint and inserted-or-nothing, so a second arrival
(a retry, another rep, the same mail over IMAP) only adds its links. Activities are immutable:
nothing here, or anywhere, updates or deletes one (database triggers refuse it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bcc_ingest.parse import Address, ParsedEmail
from gateway.blobs import put_blob
from gateway.config import Config
from gateway.models import Activity, ActivityLink, Attachment, User, utcnow
from gateway.participants import (
    FREE_MAIL_DOMAINS,
    Links,
    Participant,
    is_known,
    is_logging_address,
    resolve_links,
    sort_participants,
)
from gateway.upsert import insert_many_or_nothing, insert_or_nothing, insert_returning

LOGGED = "logged"
LINKED = "linked"
NOT_LOGGED = "not_logged"

_KEY_LIMIT = 512  # activities.message_key
_NOTE_DEFECTS = 5  # how many parser notes an activity's notes repeat


@dataclass(frozen=True)
class LoggingPolicy:
    """What gets logged and who becomes a contact; see ``gateway.participants``."""

    logging_address: str
    internal_domains: frozenset[str]
    never_log: frozenset[str]  # addresses or domains
    auto_create_contacts: bool
    free_mail_domains: frozenset[str]

    @classmethod
    def from_config(cls, config: Config) -> LoggingPolicy:
        return cls(
            logging_address=config.get("smtp", "logging_address"),
            internal_domains=frozenset(config.get("smtp", "internal_domains")),
            never_log=frozenset(config.get("smtp", "never_log")),
            auto_create_contacts=config.get("smtp", "auto_create_contacts"),
            free_mail_domains=FREE_MAIL_DOMAINS,
        )


@dataclass(frozen=True)
class LogOutcome:
    status: str  # LOGGED | LINKED | NOT_LOGGED
    activity_id: int | None
    reason: str  # one line, recorded as the decision


def record_email(session: Session, parsed: ParsedEmail, *, raw: bytes, user: User,
                 source: str, policy: LoggingPolicy) -> LogOutcome:
    """Log one message for one CRM user (the rep whose mail it is), idempotently."""
    if not user.email_sync:
        return LogOutcome(NOT_LOGGED, None, f"not logged: email sync is off for {user.username}")
    if parsed.is_bulk:
        return LogOutcome(NOT_LOGGED, None, f"not logged: bulk mail ({parsed.bulk_reason})")
    people = sort_participants(session, participants_of(parsed), policy)
    if people.blocked_by is not None:
        return LogOutcome(
            NOT_LOGGED, None, f"not logged: a participant is on never_log ({people.blocked_by})"
        )
    if not people.external:
        return LogOutcome(NOT_LOGGED, None, "not logged: no external participant")

    key = storage_key(parsed.key)
    # Beyond the parse limits the original is kept, so nothing the parser skipped is lost.
    raw_sha = put_blob(session, raw) if parsed.truncated else None
    activity_id = insert_returning(
        session, Activity, _activity_row(parsed, key, user, source, policy, raw_sha), Activity.id
    )
    is_new = activity_id is not None
    if activity_id is None:
        activity_id = session.scalar(select(Activity.id).where(Activity.message_key == key))
        assert activity_id is not None, "a conflicting insert implies a stored row"
    links = resolve_links(session, people.external, policy)
    user_added = insert_or_nothing(session, ActivityLink, _link(activity_id, user_id=user.id))
    insert_many_or_nothing(session, ActivityLink, [
        *(_link(activity_id, contact_id=contact_id) for contact_id in links.contact_ids),
        *(_link(activity_id, account_id=account_id) for account_id in links.account_ids),
    ])
    if not is_new:
        done = "linked to" if user_added else "already linked to"
        return LogOutcome(
            LINKED, activity_id, f"already logged as activity {activity_id}; {done} {user.username}"
        )
    for attachment in parsed.attachments:
        session.add(Attachment(
            activity_id=activity_id,
            blob_sha256=put_blob(session, attachment.data),
            filename=_text(attachment.filename)[:255] or "attachment",
            content_type=attachment.content_type[:255],
            size=len(attachment.data),
            inline=attachment.inline,
            content_id=attachment.content_id[:255] if attachment.content_id else None,
        ))
    session.flush()
    return LogOutcome(LOGGED, activity_id, _logged_reason(activity_id, parsed, user, links))


def is_relevant(session: Session, addresses: Iterable[str], *, user: User,
                policy: LoggingPolicy) -> bool:
    """Cheap check used on headers only: does any address belong to a CRM contact or an
    account's domain (and not never_log/internal)? The IMAP poller fetches full bodies only then.
    """
    if not user.email_sync:
        return False
    people = sort_participants(session, (Participant(a.lower()) for a in addresses), policy)
    if people.blocked_by is not None:
        return False
    return is_known(session, people.external, policy)


def participants_of(parsed: ParsedEmail) -> list[Participant]:
    """Everyone on the message: From, To, Cc, and Bcc (present in the sender's own copy)."""
    found = [parsed.sender] if parsed.sender is not None else []
    found += [*parsed.to, *parsed.cc, *parsed.bcc]
    return [Participant(a.email, a.name) for a in found]


def storage_key(key: str) -> str:
    """``ParsedEmail.key``, or a digest of it when it is longer than the column."""
    if len(key) <= _KEY_LIMIT:
        return key
    prefix = key.partition(":")[0]
    return f"{prefix}:sha256:{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()}"


def _text(value: str | None) -> str:
    # PostgreSQL text cannot hold NUL; a malformed part may decode to one.
    return (value or "").replace("\x00", "")


def _activity_row(parsed: ParsedEmail, key: str, user: User, source: str,
                  policy: LoggingPolicy, raw_sha: str | None) -> dict[str, object]:
    sender = parsed.sender.email if parsed.sender is not None else ""

    def listed(addresses: Iterable[Address]) -> list[str]:
        return [a.email for a in addresses
                if not is_logging_address(a.email, policy.logging_address)]

    return {
        "message_key": key,
        "message_id": parsed.message_id[:_KEY_LIMIT] if parsed.message_id else None,
        "direction": "sent" if sender == user.email.lower() else "received",
        "source": source,
        "subject": _text(parsed.subject),
        "text_body": _text(parsed.text) if parsed.text is not None else None,
        "html_body": _text(parsed.html) if parsed.html is not None else None,
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
        shown = "; ".join(_text(d) for d in parsed.defects[:_NOTE_DEFECTS])
        more = len(parsed.defects) - _NOTE_DEFECTS
        notes.append(f"Worked around: {shown}" + (f" (and {more} more)" if more > 0 else ""))
    return "\n".join(notes) or None


def _link(activity_id: int, *, user_id: int | None = None, contact_id: int | None = None,
          account_id: int | None = None) -> dict[str, object]:
    return {"activity_id": activity_id, "user_id": user_id, "contact_id": contact_id,
            "account_id": account_id, "created_at": utcnow()}


def _logged_reason(activity_id: int, parsed: ParsedEmail, user: User, links: Links) -> str:
    reason = (f"logged as activity {activity_id} for {user.username}: "
              f"{len(links.contact_ids)} contact(s), {len(links.account_ids)} account(s)")
    if links.created:
        reason += f"; new contacts {', '.join(links.created)}"
    if parsed.truncated:
        reason += f"; parsing stopped early ({parsed.truncated}), raw message kept"
    return reason
