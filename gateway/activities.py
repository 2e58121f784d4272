"""The activity service: one logged email per message, shared by the SMTP and IMAP edges.

``record_email`` logs one parsed message for one CRM user, idempotently: the activity is keyed
by ``ParsedEmail.key`` under a UNIQUE constraint and inserted-or-nothing, so a second arrival
(a retry, another rep, the same mail over IMAP) only adds its links. Activities are immutable:
nothing here, or anywhere, updates or deletes one (database triggers refuse it).
``record_emails`` does the same for a batch (the IMAP poller's) in a few statements in all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from gateway.activity_writes import (
    activity_row,
    add_attachments,
    insert_activities,
    link_targets,
    link_user,
    storage_key,
)
from gateway.blobs import put_blobs
from gateway.directory import Directory, domain_of
from gateway.logging_policy import LoggingPolicy
from gateway.mail.addresses import Address
from gateway.mail.parse import ParsedEmail
from gateway.models import User
from gateway.participants import (
    Links,
    is_known,
    make_contacts,
    resolve_links,
    sort_participants,
)
from gateway.profiles import effective_profile
from gateway.rsvp import apply_replies, summary
from gateway.webhook_payloads import activity_logged

LOGGED = "logged"
LINKED = "linked"
NOT_LOGGED = "not_logged"


@dataclass(frozen=True)
class LogOutcome:
    status: str  # LOGGED | LINKED | NOT_LOGGED
    activity_id: int | None
    reason: str  # one line, recorded as the decision


@dataclass(frozen=True)
class _ToLog:
    """A message that passed the rules, with its external participants."""

    index: int
    parsed: ParsedEmail
    raw: bytes
    external: tuple[Address, ...]
    key: str


def record_email(session: Session, parsed: ParsedEmail, *, raw: bytes, user: User,
                 source: str, policy: LoggingPolicy) -> LogOutcome:
    """Log one message for one CRM user (the rep whose mail it is), idempotently."""
    [outcome] = record_emails(session, [(parsed, raw)], user=user, source=source, policy=policy)
    return outcome


def record_emails(session: Session, messages: Sequence[tuple[ParsedEmail, bytes]], *,
                  user: User, source: str, policy: LoggingPolicy) -> list[LogOutcome]:
    """``record_email`` for each (parsed, raw), with the same outcomes as one by one in order.

    Who the CRM knows is looked up once for the batch; activities, links and attachments are
    written with one statement each. Attendees' replies to invitations in the messages are
    applied first (``gateway.rsvp``), whether or not the mail is logged; what they did is
    added to the outcome's reason.
    """
    replies = [summary(apply_replies(session, parsed, user)) for parsed, _ in messages]
    return [replace(outcome, reason=f"{outcome.reason}; {note}") if note else outcome
            for outcome, note in zip(_record(session, messages, user, source, policy),
                                     replies, strict=True)]


def _record(session: Session, messages: Sequence[tuple[ParsedEmail, bytes]], user: User,
            source: str, policy: LoggingPolicy) -> list[LogOutcome]:
    if not user.email_sync:
        off = LogOutcome(NOT_LOGGED, None, f"not logged: email sync is off for {user.username}")
        return [off] * len(messages)
    if not effective_profile(session, user.id).log_email:
        off = LogOutcome(NOT_LOGGED, None,
                         f"not logged: {user.username} synchronises the calendar only")
        return [off] * len(messages)
    directory = Directory.load(
        session, (p.email for parsed, _ in messages for p in participants_of(parsed))
    )
    outcomes: list[LogOutcome | None] = []
    todo: list[_ToLog] = []
    for index, (parsed, raw) in enumerate(messages):
        skipped, external = _rules(parsed, policy, directory)
        outcomes.append(skipped)
        if skipped is None:
            todo.append(_ToLog(index, parsed, raw, external, storage_key(parsed.key)))
    if todo:
        for item, outcome in zip(todo, _log(session, todo, user, source, policy, directory),
                                 strict=True):
            outcomes[item.index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def _rules(parsed: ParsedEmail, policy: LoggingPolicy, directory: Directory
           ) -> tuple[LogOutcome | None, tuple[Address, ...]]:
    """Why the message is not logged, or None and its external participants."""
    if parsed.is_bulk:
        return LogOutcome(NOT_LOGGED, None, f"not logged: bulk mail ({parsed.bulk_reason})"), ()
    people = sort_participants(participants_of(parsed), policy, directory)
    if people.blocked_by is not None:
        return LogOutcome(
            NOT_LOGGED, None, f"not logged: a participant is on never_log ({people.blocked_by})"
        ), ()
    if not people.external:
        return LogOutcome(NOT_LOGGED, None, "not logged: no external participant"), ()
    return None, people.external


def _log(session: Session, todo: list[_ToLog], user: User, source: str,
         policy: LoggingPolicy, directory: Directory) -> list[LogOutcome]:
    fresh = make_contacts(session, (p for item in todo for p in item.external), policy,
                          directory)
    links = [resolve_links(item.external, policy, directory, fresh) for item in todo]
    # Beyond the parse limits the original is kept, so nothing the parser skipped is lost.
    truncated = [item for item in todo if item.parsed.truncated]
    raw_shas = dict(zip((item.index for item in truncated),
                        put_blobs(session, [item.raw for item in truncated]), strict=True))
    rows: dict[str, dict[str, object]] = {}  # the first of a key in the batch is inserted
    for item in todo:
        if item.key not in rows:
            rows[item.key] = activity_row(item.parsed, item.key, directory.user_emails, source,
                                          policy.logging_address, raw_shas.get(item.index))
    new, stored = insert_activities(session, list(rows.values()))
    ids = [new.get(item.key) or stored.get(item.key) for item in todo]
    assert None not in ids, "a conflicting insert implies a stored row"
    activity_ids = [activity_id for activity_id in ids if activity_id is not None]
    user_added = link_user(session, activity_ids, user.id)
    link_targets(session, zip(activity_ids, links, strict=True))
    outcomes: list[LogOutcome] = []
    fresh_activities: list[tuple[int, ParsedEmail]] = []
    seen: set[int] = set()
    for item, activity_id, linked in zip(todo, activity_ids, links, strict=True):
        first = activity_id not in seen  # a later copy in the batch finds it logged
        seen.add(activity_id)
        if first and item.key in new:
            fresh_activities.append((activity_id, item.parsed))
            activity_logged(session, activity_id, rows[item.key], user, linked.contact_ids,
                            linked.account_ids)
            reason = _logged_reason(activity_id, item.parsed, user, linked)
            outcomes.append(LogOutcome(LOGGED, activity_id, reason))
            continue
        done = "linked to" if first and activity_id in user_added else "already linked to"
        outcomes.append(LogOutcome(
            LINKED, activity_id, f"already logged as activity {activity_id}; {done} {user.username}"
        ))
    add_attachments(session, fresh_activities)
    return outcomes


def is_relevant(session: Session, addresses: Iterable[str], *, user: User,
                policy: LoggingPolicy, directory: Directory | None = None) -> bool:
    """Cheap check used on headers only: does any address belong to a CRM contact or an
    account's domain (and not never_log/internal)? The IMAP poller fetches full bodies only then.
    ``directory``, when given, must have been loaded for (at least) these addresses.
    """
    if not user.email_sync or not effective_profile(session, user.id).log_email:
        return False
    emails = [a.lower() for a in addresses]
    if directory is None:
        directory = Directory.load(session, emails)
    people = sort_participants((Address(e) for e in emails), policy, directory)
    if people.blocked_by is not None:
        return False
    return is_known(people.external, policy, directory)


def relevant_messages(session: Session, address_sets: Sequence[frozenset[str]], *, user: User,
                      policy: LoggingPolicy) -> list[bool]:
    """``is_relevant`` for each message's addresses, from one directory loaded for them all."""
    if not user.email_sync or not effective_profile(session, user.id).log_email:
        return [False] * len(address_sets)
    everyone = {address.lower() for addresses in address_sets for address in addresses}
    directory = Directory.load(session, everyone)
    # Necessary for relevance: a contact's address, or an account's domain. Most mail has
    # neither, and a set test spares it the rules.
    possible = {address for addresses in address_sets for address in addresses
                if address.lower() in directory.contacts
                or domain_of(address.lower()) in directory.account_domains}
    answers: dict[frozenset[str], bool] = {}
    for addresses in address_sets:
        if addresses not in answers:
            answers[addresses] = not addresses.isdisjoint(possible) and is_relevant(
                session, addresses, user=user, policy=policy, directory=directory)
    return [answers[addresses] for addresses in address_sets]


def participants_of(parsed: ParsedEmail) -> list[Address]:
    """Everyone on the message: From, To, Cc, and Bcc (present in the sender's own copy)."""
    found: list[Address] = [parsed.sender] if parsed.sender is not None else []
    found += [*parsed.to, *parsed.cc, *parsed.bcc]
    return found


def _logged_reason(activity_id: int, parsed: ParsedEmail, user: User, links: Links) -> str:
    reason = (f"logged as activity {activity_id} for {user.username}: "
              f"{len(links.contact_ids)} contact(s), {len(links.account_ids)} account(s)")
    if links.created:
        reason += f"; new contacts {', '.join(links.created)}"
    if parsed.truncated:
        reason += f"; parsing stopped early ({parsed.truncated}), raw message kept"
    return reason
