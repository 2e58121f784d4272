"""Accounts (companies, with domains) and contacts (with emails)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.errors import Conflict, Invalid, NotFound
from gateway.keyset import Page, page
from gateway.models import Account, AccountDomain, Contact, ContactEmail
from gateway.users import normalise_email
from gateway.webhook_payloads import contact_made

DOMAIN_RE = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def normalise_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    if not DOMAIN_RE.fullmatch(domain):
        raise Invalid(f"{value!r} is not a valid domain name")
    return domain


def get_account(session: Session, name: str) -> Account:
    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise NotFound(f"no account named {name!r}")
    return account


def create_account(session: Session, name: str, domains: list[str]) -> Account:
    name = name.strip()
    if not name:
        raise Invalid("an account needs a name")
    if session.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise Conflict(f"an account named {name!r} already exists")
    clean = sorted({normalise_domain(domain) for domain in domains})
    for domain in clean:
        owner = session.scalar(
            select(Account.name).join(AccountDomain).where(AccountDomain.domain == domain)
        )
        if owner is not None:
            raise Conflict(f"domain {domain} already belongs to account {owner!r}")
    account = Account(name=name)
    session.add(account)
    session.flush()
    session.add_all(AccountDomain(account_id=account.id, domain=domain) for domain in clean)
    session.flush()
    return account


def account_for_domain(session: Session, domain: str) -> Account | None:
    return session.scalar(
        select(Account).join(AccountDomain).where(AccountDomain.domain == domain.lower())
    )


def find_contact(session: Session, email: str) -> Contact | None:
    return session.scalar(
        select(Contact).join(ContactEmail).where(ContactEmail.email == email.lower())
    )


def create_contact(
    session: Session, email: str, *, name: str = "", account: Account | None = None
) -> Contact:
    address = normalise_email(email)
    if find_contact(session, address) is not None:
        raise Conflict(f"a contact with email {address} already exists")
    if account is None:
        account = account_for_domain(session, address.rpartition("@")[2])
    contact = Contact(name=name.strip(), account_id=account.id if account else None)
    session.add(contact)
    session.flush()
    session.add(ContactEmail(contact_id=contact.id, email=address))
    session.flush()
    contact_made(session, contact, address, "crm")
    return contact


def get_account_by_id(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    return account


def get_contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    return contact


def page_accounts(session: Session, *, limit: int, after: int | None) -> Page[Account]:
    """Accounts by id with their domains, O(page)."""
    query = select(Account).options(selectinload(Account.domains))
    return page(session, query, Account.id, limit, after)


def page_contacts(session: Session, *, account_id: int | None, limit: int,
                  after: int | None) -> Page[Contact]:
    """Contacts by id, optionally of one account, with emails and account; O(page)."""
    query = select(Contact).options(selectinload(Contact.emails),
                                    selectinload(Contact.account))
    if account_id is not None:
        query = query.where(Contact.account_id == get_account_by_id(session, account_id).id)
    return page(session, query, Contact.id, limit, after)
