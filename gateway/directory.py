"""Who the CRM knows among some addresses: its users, contacts and accounts' domains.

Loaded for a whole batch of messages in three set-based queries, so deciding about and
linking a hundred polled messages costs three look-ups instead of three per message.
Contacts made while the batch is logged are added as they are made, so a later message of
the batch finds them just as a query would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import AccountDomain, Contact, ContactEmail, User

_IN_CHUNK = 2000  # values per IN (...) list, well inside SQLite's parameter limit


def domain_of(email: str) -> str:
    return email.rpartition("@")[2]


@dataclass
class Directory:
    """What the CRM held, when loaded, about the lower-cased addresses it was loaded for."""

    user_emails: set[str] = field(default_factory=set)  # CRM users' addresses
    contacts: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # -> (id, account)
    account_domains: dict[str, int] = field(default_factory=dict)  # domain -> account id

    @classmethod
    def load(cls, session: Session, addresses: Iterable[str]) -> Directory:
        emails = sorted({address.lower() for address in addresses})
        domains = sorted({domain_of(email) for email in emails})
        directory = cls()
        for chunk in _chunks(emails):
            directory.user_emails.update(session.scalars(
                select(func.lower(User.email)).where(func.lower(User.email).in_(chunk))
            ))
            directory.contacts.update(known_contacts(session, chunk))
        for chunk in _chunks(domains):
            rows = session.execute(select(AccountDomain.domain, AccountDomain.account_id)
                                   .where(AccountDomain.domain.in_(chunk)))
            directory.account_domains.update({domain: account for domain, account in rows})
        return directory

    def account_for(self, email: str, free_mail_domains: frozenset[str]) -> int | None:
        """The account whose domain ``email`` is at; never one for a free-mail domain."""
        domain = domain_of(email)
        if domain in free_mail_domains:
            return None
        return self.account_domains.get(domain)

    def add_contact(self, email: str, contact_id: int, account_id: int | None) -> None:
        self.contacts[email] = (contact_id, account_id)


def known_contacts(session: Session, emails: list[str]) -> dict[str, tuple[int, int | None]]:
    """Contacts by address, with their account, for the (lower-cased) ``emails``."""
    rows = session.execute(
        select(ContactEmail.email, Contact.id, Contact.account_id)
        .join(Contact, Contact.id == ContactEmail.contact_id)
        .where(ContactEmail.email.in_(emails))
    )
    return {email: (contact_id, account_id) for email, contact_id, account_id in rows}


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start:start + _IN_CHUNK]
