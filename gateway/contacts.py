"""Accounts (companies, with domains) and contacts (with emails)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import Conflict, Invalid, NotFound
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
