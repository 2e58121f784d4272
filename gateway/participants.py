"""Who a message involves, as the CRM sees them (docs/ARCHITECTURE.md, "Email logging").

Every address of a message is one of: a logging address (ignored), on ``never_log`` (the
message is not logged), internal (a CRM user's address or one of ``internal_domains``), or
external. External addresses are matched to contacts by address and to accounts by domain;
free-mail domains never match an account. Unknown external addresses become contacts when
the policy says so; internal ones never do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.directory import Directory, domain_of, known_contacts
from gateway.errors import Invalid
from gateway.logging_policy import LoggingPolicy
from gateway.mail.addresses import Address
from gateway.models import Contact, ContactEmail
from gateway.upsert import table_of
from gateway.users import normalise_email
from gateway.webhook_payloads import contact_created


@dataclass(frozen=True)
class Sorted:
    """The outcome of sorting a message's addresses."""

    external: tuple[Address, ...]
    blocked_by: str | None  # the never_log entry that names a participant


@dataclass
class Links:
    """What an activity links to besides its user."""

    contact_ids: list[int] = field(default_factory=list)
    account_ids: list[int] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # addresses that became contacts


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
    participants: Iterable[Address], policy: LoggingPolicy, directory: Directory
) -> Sorted:
    first: dict[str, Address] = {}
    for participant in participants:
        first.setdefault(participant.email.lower(), participant)
    external: list[Address] = []
    for email, participant in first.items():
        if is_logging_address(email, policy.logging_address):
            continue
        entry = named_by(policy.never_log, email)
        if entry is not None:
            return Sorted((), entry)
        if email in directory.user_emails or named_by(policy.internal_domains, email) is not None:
            continue
        external.append(Address(email, participant.name))
    return Sorted(tuple(external), None)


def is_known(external: Iterable[Address], policy: LoggingPolicy, directory: Directory) -> bool:
    """Does any address belong to a contact, or its domain to an account?"""
    return any(
        p.email in directory.contacts
        or directory.account_for(p.email, policy.free_mail_domains) is not None
        for p in external
    )


def make_contacts(
    session: Session, people: Iterable[Address], policy: LoggingPolicy, directory: Directory
) -> set[str]:
    """Make a contact of each unknown person, where the policy allows; returns their addresses.

    The first mention of an address gives the contact its name. The new contacts are added to
    ``directory``. Another worker making the same contact at once is fine: its row wins.
    """
    if not policy.auto_create_contacts:
        return set()
    wanted: dict[str, tuple[str, int | None]] = {}
    for person in people:
        email = _contact_address(person.email, directory)
        if email is None or email in directory.contacts or email in wanted:
            continue
        wanted[email] = (_name(person),
                        directory.account_for(person.email, policy.free_mail_domains))
    if not wanted:
        return set()
    try:
        with session.begin_nested():
            contacts = table_of(Contact)
            ids = session.scalars(
                contacts.insert().returning(contacts.c.id, sort_by_parameter_order=True),
                [{"name": name, "account_id": account, "created_at": utcnow()}
                 for name, account in wanted.values()],
            ).all()
            session.execute(table_of(ContactEmail).insert(), [
                {"contact_id": contact_id, "email": email}
                for contact_id, email in zip(ids, wanted, strict=True)
            ])
    except IntegrityError:  # one was made meanwhile: one at a time, so the rest still are
        return {email for email, (name, account) in wanted.items()
                if _create_contact(session, email, name, account, directory)}
    for contact_id, (email, (name, account)) in zip(ids, wanted.items(), strict=True):
        directory.add_contact(email, contact_id, account)
        contact_created(session, contact_id, name, email, account, "mail")
    return set(wanted)


def resolve_links(
    external: Iterable[Address], policy: LoggingPolicy, directory: Directory,
    fresh: set[str],
) -> Links:
    """The contacts and accounts of external participants, from ``directory``.

    ``fresh`` holds the addresses ``make_contacts`` just made; the first message that names
    one reports it as created and takes it out.
    """
    links = Links()
    for person in external:
        account_id = directory.account_for(person.email, policy.free_mail_domains)
        contact_id: int | None = None
        email = person.email if person.email in directory.contacts else (
            _contact_address(person.email, directory) if policy.auto_create_contacts else None)
        found = directory.contacts.get(email) if email is not None else None
        if found is not None:
            contact_id, contact_account = found
            account_id = contact_account or account_id
        if email in fresh:
            fresh.discard(email)
            links.created.append(person.email)
        if contact_id is not None and contact_id not in links.contact_ids:
            links.contact_ids.append(contact_id)
        if account_id is not None and account_id not in links.account_ids:
            links.account_ids.append(account_id)
    return links


def _contact_address(email: str, directory: Directory) -> str | None:
    if email in directory.contacts:
        return email
    try:
        return normalise_email(email)
    except Invalid:
        return None  # quoted or otherwise exotic local parts stay out of the CRM


def _name(person: Address) -> str:
    return (person.name or "").replace("\x00", "").strip()[:200]


def _create_contact(session: Session, email: str, name: str, account_id: int | None,
                    directory: Directory) -> bool:
    """Make one contact unless another worker made it first; True if this one made it."""
    try:
        with session.begin_nested():
            contact = Contact(name=name, account_id=account_id)
            session.add(contact)
            session.flush()
            session.add(ContactEmail(contact_id=contact.id, email=email))
            session.flush()
    except IntegrityError:
        found = known_contacts(session, [email]).get(email)
        if found is not None:
            directory.add_contact(email, *found)
        return False
    directory.add_contact(email, contact.id, account_id)
    contact_created(session, contact.id, name, email, account_id, "mail")
    return True
