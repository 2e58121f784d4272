"""Who a message involves, as the CRM sees them (ARCHITECTURE.md, "Email logging").

Every address of a message is one of: a logging address (ignored), on ``never_log`` (the
message is not logged), internal (a CRM user's address or one of ``internal_domains``), or
external. External addresses are matched to contacts by address and to accounts by domain;
free-mail domains never match an account. Unknown external addresses become contacts when
the policy says so; internal ones never do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.errors import Invalid
from gateway.models import AccountDomain, Contact, ContactEmail, User
from gateway.users import normalise_email

if TYPE_CHECKING:
    from gateway.activities import LoggingPolicy

# Domains anyone can get an address at: they say nothing about a customer's company.
FREE_MAIL_DOMAINS = frozenset({
    "aol.com", "gmail.com", "googlemail.com", "gmx.com", "gmx.de", "gmx.net", "hey.com",
    "hotmail.co.uk", "hotmail.com", "hotmail.fr", "icloud.com", "live.com", "mac.com",
    "mail.com", "mail.ru", "me.com", "msn.com", "outlook.com", "proton.me", "protonmail.com",
    "qq.com", "t-online.de", "web.de", "yahoo.co.uk", "yahoo.com", "yahoo.fr", "yandex.com",
    "yandex.ru", "zoho.com",
})


@dataclass(frozen=True)
class Participant:
    """One address of a message, lower-cased, with the display name it came with."""

    email: str
    name: str | None = None


@dataclass(frozen=True)
class Sorted:
    """The outcome of sorting a message's addresses."""

    external: tuple[Participant, ...]
    blocked_by: str | None  # the never_log entry that names a participant


@dataclass
class Links:
    """What an activity links to besides its user."""

    contact_ids: list[int] = field(default_factory=list)
    account_ids: list[int] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # addresses that became contacts


def domain_of(email: str) -> str:
    return email.rpartition("@")[2]


def named_by(entries: frozenset[str], email: str) -> str | None:
    """The entry (the address, its domain or a parent domain) that names ``email``."""
    if email in entries:
        return email
    labels = domain_of(email).split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in entries:
            return candidate
    return None


def is_logging_address(email: str, logging_address: str) -> bool:
    """The shared logging address or one of its ``+token`` sub-addresses."""
    local, _, domain = email.lower().rpartition("@")
    base, _, base_domain = logging_address.lower().rpartition("@")
    return domain == base_domain and (local == base or local.startswith(base + "+"))


def sort_participants(
    session: Session, participants: Iterable[Participant], policy: LoggingPolicy
) -> Sorted:
    first: dict[str, Participant] = {}
    for participant in participants:
        first.setdefault(participant.email.lower(), participant)
    unique = list(first.values())
    emails = list(first)
    user_emails = set(session.scalars(
        select(func.lower(User.email)).where(func.lower(User.email).in_(emails))
    )) if emails else set()
    external: list[Participant] = []
    for participant in unique:
        email = participant.email.lower()
        if is_logging_address(email, policy.logging_address):
            continue
        entry = named_by(policy.never_log, email)
        if entry is not None:
            return Sorted((), entry)
        if email in user_emails or named_by(policy.internal_domains, email) is not None:
            continue
        external.append(Participant(email, participant.name))
    return Sorted(tuple(external), None)


def _known_contacts(session: Session, emails: list[str]) -> dict[str, tuple[int, int | None]]:
    rows = session.execute(
        select(ContactEmail.email, Contact.id, Contact.account_id)
        .join(Contact, Contact.id == ContactEmail.contact_id)
        .where(ContactEmail.email.in_(emails))
    )
    return {email: (contact_id, account_id) for email, contact_id, account_id in rows}


def _account_domains(
    session: Session, emails: list[str], policy: LoggingPolicy
) -> dict[str, int]:
    domains = {domain_of(email) for email in emails} - policy.free_mail_domains
    if not domains:
        return {}
    rows = session.execute(
        select(AccountDomain.domain, AccountDomain.account_id)
        .where(AccountDomain.domain.in_(domains))
    )
    return {domain: account_id for domain, account_id in rows}


def is_known(session: Session, external: Iterable[Participant], policy: LoggingPolicy) -> bool:
    """Does any address belong to a contact, or its domain to an account?"""
    emails = [p.email for p in external]
    if not emails:
        return False
    return bool(_known_contacts(session, emails)) or bool(
        _account_domains(session, emails, policy)
    )


def resolve_links(
    session: Session, external: Iterable[Participant], policy: LoggingPolicy
) -> Links:
    """The contacts and accounts of external participants, making contacts where allowed."""
    people = list(external)
    emails = [p.email for p in people]
    contacts = _known_contacts(session, emails) if emails else {}
    accounts = _account_domains(session, emails, policy) if emails else {}
    links = Links()
    for person in people:
        account_id = accounts.get(domain_of(person.email))
        contact_id: int | None = None
        if person.email in contacts:
            contact_id, contact_account = contacts[person.email]
            account_id = contact_account or account_id
        elif policy.auto_create_contacts:
            contact_id, created = _create_contact(session, person, account_id)
            if created:
                links.created.append(person.email)
        if contact_id is not None and contact_id not in links.contact_ids:
            links.contact_ids.append(contact_id)
        if account_id is not None and account_id not in links.account_ids:
            links.account_ids.append(account_id)
    return links


def _create_contact(
    session: Session, person: Participant, account_id: int | None
) -> tuple[int | None, bool]:
    """Make a contact; returns its id and whether it is new.

    Another worker making the same contact at once is fine: its row wins.
    """
    try:
        email = normalise_email(person.email)
    except Invalid:
        return None, False  # quoted or otherwise exotic local parts stay out of the CRM
    name = (person.name or "").replace("\x00", "").strip()[:200]
    try:
        with session.begin_nested():
            contact = Contact(name=name, account_id=account_id)
            session.add(contact)
            session.flush()
            session.add(ContactEmail(contact_id=contact.id, email=email))
            session.flush()
            return contact.id, True
    except IntegrityError:
        found = _known_contacts(session, [email]).get(email)
        return (found[0] if found else None), False
