"""Reading logged email activities: lists, one activity with its links, attachment bytes.

Read-only by design: activities are immutable, so there is nothing here to change one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from gateway.blobs import get_blob
from gateway.contacts import find_contact
from gateway.errors import Invalid, NotFound
from gateway.keyset import Page, page
from gateway.models import (
    Account,
    Activity,
    ActivityLink,
    Attachment,
    Contact,
    ContactEmail,
    User,
)
from gateway.users import get_user


@dataclass(frozen=True)
class ActivityLinks:
    usernames: list[str]
    contacts: list[str]  # each contact's first email
    accounts: list[str]  # account names


def list_activities(
    session: Session, *, username: str | None = None, contact_email: str | None = None
) -> list[Activity]:
    """Activities, oldest first, optionally those linked to a user and/or a contact."""
    query = select(Activity).options(selectinload(Activity.attachments)).order_by(Activity.id)
    if username is not None:
        user = get_user(session, username)
        query = query.where(Activity.id.in_(
            select(ActivityLink.activity_id).where(ActivityLink.user_id == user.id)
        ))
    if contact_email is not None:
        contact = find_contact(session, contact_email.strip())
        if contact is None:
            raise NotFound(f"no contact with email {contact_email.strip().lower()}")
        query = query.where(Activity.id.in_(
            select(ActivityLink.activity_id).where(ActivityLink.contact_id == contact.id)
        ))
    return list(session.scalars(query))


@dataclass(frozen=True)
class ActivityFilter:
    """At most one link target, and a window on the message's date (``sent_at``)."""

    username: str | None = None
    contact_id: int | None = None
    account_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def page_activities(session: Session, wanted: ActivityFilter, *, limit: int,
                    after: int | None) -> Page[Activity]:
    """Activities by id, linked to the one user, contact or account asked for; O(page):
    the link index ``(target, activity_id)`` is scanned from the cursor on."""
    targets = [t for t in (wanted.username, wanted.contact_id, wanted.account_id)
               if t is not None]
    if len(targets) > 1:
        raise Invalid("filter by one of user, contact or account, not several")
    query = select(Activity).options(selectinload(Activity.attachments))
    key = Activity.id
    if targets:
        if wanted.username is not None:
            column, target = ActivityLink.user_id, get_user(session, wanted.username).id
        elif wanted.contact_id is not None:
            column, target = ActivityLink.contact_id, _contact_id(session, wanted.contact_id)
        else:
            column, target = ActivityLink.account_id, _account_id(session, wanted.account_id)
        query = query.join(ActivityLink, ActivityLink.activity_id == Activity.id).where(
            column == target)
        key = ActivityLink.activity_id
    if wanted.since is not None:
        query = query.where(Activity.sent_at >= wanted.since)
    if wanted.until is not None:
        query = query.where(Activity.sent_at < wanted.until)
    return page(session, query, key, limit, after)


def _contact_id(session: Session, contact_id: int) -> int:
    if session.get(Contact, contact_id) is None:
        raise NotFound(f"no contact {contact_id}")
    return contact_id


def _account_id(session: Session, account_id: int | None) -> int:
    if account_id is None or session.get(Account, account_id) is None:
        raise NotFound(f"no account {account_id}")
    return account_id


def get_activity(session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise NotFound(f"no activity {activity_id}")
    return activity


def links_of(session: Session, activity_id: int) -> ActivityLinks:
    def names(query: Select[Any]) -> list[str]:
        return list(dict.fromkeys(session.scalars(query)))

    linked = select(ActivityLink).where(ActivityLink.activity_id == activity_id).subquery()
    usernames = names(
        select(User.username).join(linked, linked.c.user_id == User.id).order_by(linked.c.id)
    )
    first_email = (
        select(ContactEmail.email).where(ContactEmail.contact_id == Contact.id)
        .order_by(ContactEmail.id).limit(1).scalar_subquery()
    )
    contacts = names(
        select(first_email).select_from(Contact)
        .join(linked, linked.c.contact_id == Contact.id).order_by(linked.c.id)
    )
    accounts = names(
        select(Account.name).join(linked, linked.c.account_id == Account.id)
        .order_by(linked.c.id)
    )
    return ActivityLinks(usernames, contacts, accounts)


def find_attachment(activity: Activity, name: str) -> Attachment:
    """The attachment named ``name`` (its filename, or failing that its id)."""
    for attachment in activity.attachments:
        if attachment.filename == name:
            return attachment
    for attachment in activity.attachments:
        if name.isdigit() and attachment.id == int(name):
            return attachment
    known = ", ".join(repr(a.filename) for a in activity.attachments) or "none"
    raise NotFound(f"activity {activity.id} has no attachment {name!r} (it has: {known})")


def attachment_data(session: Session, attachment: Attachment) -> bytes:
    return get_blob(session, attachment.blob_sha256)


def contacts_by_activity(session: Session, activity_ids: list[int]) -> dict[int, list[str]]:
    """The contacts each activity is linked to, as "Name <email>" (or the email), in link
    order; one query for the whole list."""
    if not activity_ids:
        return {}
    first_email = (
        select(ContactEmail.email).where(ContactEmail.contact_id == Contact.id)
        .order_by(ContactEmail.id).limit(1).scalar_subquery()
    )
    rows = session.execute(
        select(ActivityLink.activity_id, Contact.name, first_email)
        .join(Contact, Contact.id == ActivityLink.contact_id)
        .where(ActivityLink.activity_id.in_(activity_ids))
        .order_by(ActivityLink.activity_id, ActivityLink.id))
    found: dict[int, list[str]] = {}
    for activity_id, name, email in rows:
        shown = f"{name} <{email}>" if name and email else (name or email or "")
        if shown not in found.setdefault(activity_id, []):
            found[activity_id].append(shown)
    return found
