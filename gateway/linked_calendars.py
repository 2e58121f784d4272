"""Linked calendars: a rep's own CalDAV accounts, their chosen calendars, and who syncs which.

A link holds the account's URL, login and password (encrypted with ``gateway.secrets``), the
principal and calendar home found by discovery, one ``target`` calendar the diary is pushed
to and any ``source`` calendars whose events are fetched. Several processes share the links
through the database: a link is leased to one owner until ``lease_until`` by a
compare-and-set UPDATE, and each write of a pass re-checks the lease in its own transaction,
so two processes never sync one link at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.db import Store
from gateway.errors import Conflict, Invalid, NotFound
from gateway.models import DiaryType, LinkedAccount, LinkedCalendar, LinkedObject, User
from gateway.profiles import effective_profile
from gateway.secrets import SecretBox

LEASE_SECONDS = 300
BACKOFF_BASE_SECONDS = 60
# Where each provider's CalDAV service starts, as its public documentation gives it.
PROVIDERS: dict[str, str | None] = {
    "icloud": "https://caldav.icloud.com/",
    "fastmail": "https://caldav.fastmail.com/dav/",
    "nextcloud": None,  # https://HOST/remote.php/dav: the host is the rep's own
    "yahoo": "https://caldav.calendar.yahoo.com/",
    "custom": None,
}


class LeaseLost(Exception):
    """The lease ran out (another process may sync the link now), or the link was removed."""


@dataclass(frozen=True)
class RemoteCalendar:
    """A calendar of the linked account as discovery lists it."""

    url: str
    name: str


@dataclass(frozen=True)
class LinkedCalendarState:
    id: int
    url: str
    name: str
    role: str
    sync_token: str | None
    ctag: str | None


@dataclass(frozen=True)
class LinkTarget:
    """What one pass over one link needs, read in one short transaction."""

    link_id: int
    user_id: int
    username: str
    url: str
    login: str
    password: str
    direction: str
    calendars: tuple[LinkedCalendarState, ...]

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return f"LinkTarget(link_id={self.link_id}, user={self.username!r})"

    @property
    def target(self) -> LinkedCalendarState | None:
        return next((c for c in self.calendars if c.role == "target"), None)


def resolve_url(provider: str | None, url: str | None) -> str:
    """The account's URL: the one given, else the provider's; http(s) only."""
    provider = provider or "custom"
    if provider not in PROVIDERS:
        raise Invalid(f"unknown provider {provider!r}: one of {', '.join(PROVIDERS)}")
    chosen = url or PROVIDERS[provider]
    if not chosen:
        raise Invalid(f"a URL is required for provider {provider} "
                      "(Nextcloud: https://HOST/remote.php/dav)")
    parts = urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{chosen!r} is not an http(s) URL")
    return chosen if chosen.endswith("/") else chosen + "/"


def calendar_key(url: str) -> str:
    """A calendar's last path segment, as a rep may name it."""
    return unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])


def choose_calendar(calendars: Sequence[RemoteCalendar], name: str) -> RemoteCalendar | None:
    """The calendar whose display name (case-insensitive) or last path segment is ``name``."""
    wanted = name.strip().casefold()
    for calendar in calendars:
        if calendar.name.casefold() == wanted:
            return calendar
    return next((c for c in calendars if calendar_key(c.url).casefold() == wanted), None)


def default_source_type(session: Session) -> DiaryType:
    """Fetched events become entries of the first syncable type (by name)."""
    found = session.scalar(select(DiaryType).where(DiaryType.syncable).order_by(DiaryType.name))
    if found is None:
        raise Invalid("no syncable diary type to fetch events into: make one first")
    return found


def create_link(
    session: Session, user: User, *, url: str, login: str, password: str, provider: str,
    box: SecretBox, principal_url: str | None, home_url: str | None,
    target: RemoteCalendar, sources: Sequence[RemoteCalendar], source_type: DiaryType,
) -> LinkedAccount:
    """Store a tested link; a second link of the same account is refused."""
    if not user.diary_sync:
        raise Invalid(f"{user.username} does not have diary sync on: enable it first")
    existing = session.scalar(select(LinkedAccount).where(
        LinkedAccount.user_id == user.id, LinkedAccount.url == url,
        LinkedAccount.login == login))
    if existing is not None:
        raise Conflict(f"{user.username} already links {login} at {url} as link "
                       f"{existing.id}; unlink it first")
    link = LinkedAccount(user_id=user.id, url=url, login=login, secret=box.encrypt(password),
                         provider=provider, principal_url=principal_url, home_url=home_url,
                         status="active", push_cursors={}, failures=0)
    session.add(link)
    session.flush()
    session.add(LinkedCalendar(account_id=link.id, url=target.url, name=target.name,
                               role="target", diary_type_id=None))
    for source in sources:
        if source.url == target.url:
            raise Invalid(f"{source.name or source.url} is the target: a calendar is either "
                          "pushed to or fetched from")
        session.add(LinkedCalendar(account_id=link.id, url=source.url, name=source.name,
                                   role="source", diary_type_id=source_type.id))
    session.flush()
    return link


def get_link(session: Session, user: User, link_id: str | int) -> LinkedAccount:
    try:
        number = int(link_id)
    except ValueError:
        raise Invalid(f"{link_id!r} is not a link number (see 'calendars show')") from None
    link = session.get(LinkedAccount, number)
    if link is None or link.user_id != user.id:
        raise NotFound(f"{user.username} has no linked calendar account {number}")
    return link


def links_of(session: Session, user: User) -> list[LinkedAccount]:
    return list(session.scalars(
        select(LinkedAccount).where(LinkedAccount.user_id == user.id)
        .order_by(LinkedAccount.id)))


def calendars_of(session: Session, link_id: int) -> list[LinkedCalendar]:
    return list(session.scalars(
        select(LinkedCalendar).where(LinkedCalendar.account_id == link_id)
        .order_by(LinkedCalendar.role.desc(), LinkedCalendar.id)))


def describe(session: Session, link: LinkedAccount) -> dict[str, Any]:
    """The link, its calendars with counts, its state: for ``calendars show``."""
    calendars = []
    for calendar in calendars_of(session, link.id):
        rows = session.execute(
            select(LinkedObject.pushed, LinkedObject.entry_id.is_(None),
                   LinkedObject.conflict_at.is_not(None), func.count())
            .where(LinkedObject.calendar_id == calendar.id)
            .group_by(LinkedObject.pushed, LinkedObject.entry_id.is_(None),
                      LinkedObject.conflict_at.is_not(None))).all()
        counts = {"pushed": 0, "fetched": 0, "busy": 0, "conflicts": 0}
        for pushed, busy, conflict, count in rows:
            counts["pushed" if pushed else "busy" if busy else "fetched"] += count
            counts["conflicts"] += count if conflict else 0
        calendars.append({"url": calendar.url, "name": calendar.name, "role": calendar.role,
                          "sync": "sync-collection" if calendar.sync_token else
                          "ctag" if calendar.ctag else "not yet", **counts})
    return {
        "link": link.id, "url": link.url, "login": link.login, "provider": link.provider,
        "principal": link.principal_url, "home": link.home_url, "status": link.status,
        "direction": effective_profile(session, link.user_id).direction,
        "last_success_at": link.last_success_at, "last_error": link.last_error,
        "last_error_at": link.last_error_at, "failures": link.failures,
        "next_sync_at": link.next_sync_at, "lease_owner": link.lease_owner,
        "calendars": calendars,
    }


def conflicts_of(session: Session, link_id: int) -> list[LinkedObject]:
    return list(session.scalars(
        select(LinkedObject).join(LinkedCalendar, LinkedCalendar.id == LinkedObject.calendar_id)
        .where(LinkedCalendar.account_id == link_id, LinkedObject.conflict_at.is_not(None))
        .order_by(LinkedObject.conflict_at)))


def remove_link(session: Session, link: LinkedAccount) -> None:
    """Forget the link and its sync state; what was pushed stays on the account."""
    session.delete(link)
    session.flush()


def load_link(store: Store, link_id: int, box: SecretBox) -> LinkTarget:
    """The link's settings with its password decrypted (raises SecretError)."""
    with store.reading() as session:
        link = session.get(LinkedAccount, link_id)
        if link is None:
            raise LeaseLost(f"linked account {link_id} was removed")
        user = session.get(User, link.user_id)
        assert user is not None  # the foreign key guarantees it
        return LinkTarget(
            link_id=link.id, user_id=user.id, username=user.username, url=link.url,
            login=link.login, password=box.decrypt(link.secret),
            direction=effective_profile(session, user.id).direction,
            calendars=tuple(
                LinkedCalendarState(c.id, c.url, c.name, c.role, c.sync_token, c.ctag)
                for c in calendars_of(session, link.id)),
        )


# --- leases ---------------------------------------------------------------------------------


def _leasable(now: datetime) -> list[ColumnElement[bool]]:
    return [LinkedAccount.status == "active",
            or_(LinkedAccount.lease_until.is_(None), LinkedAccount.lease_until < now)]


def lease_links(
    store: Store, owner: str, now: datetime, *, limit: int,
    usernames: Sequence[str] | None = None, due_only: bool = True,
) -> list[int]:
    """Lease up to ``limit`` links to ``owner`` (each by a compare-and-set UPDATE); their ids.

    ``due_only`` skips links whose ``next_sync_at`` lies ahead (interval, backoff); "sync
    now" ignores it."""
    if limit <= 0:
        return []
    query = (select(LinkedAccount.id).join(User, User.id == LinkedAccount.user_id)
             .where(*_leasable(now), User.diary_sync.is_(True)))
    if due_only:
        query = query.where(LinkedAccount.next_sync_at <= now)
    if usernames is not None:
        query = query.where(User.username.in_(list(usernames)))
    query = query.order_by(LinkedAccount.next_sync_at, LinkedAccount.id).limit(limit)
    until = now + timedelta(seconds=LEASE_SECONDS)
    leased = []
    with store.transaction() as session:
        for link_id in list(session.scalars(query)):
            result = session.execute(
                update(LinkedAccount).where(LinkedAccount.id == link_id, *_leasable(now))
                .values(lease_owner=owner, lease_until=until))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                leased.append(link_id)
    return leased


def hold(session: Session, link_id: int, owner: str, now: datetime) -> None:
    """Extend the lease inside the caller's transaction; LeaseLost if it is not ours."""
    result = session.execute(
        update(LinkedAccount)
        .where(LinkedAccount.id == link_id, LinkedAccount.lease_owner == owner)
        .values(lease_until=now + timedelta(seconds=LEASE_SECONDS)))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"linked account {link_id}: the lease of {owner} is gone")


def backoff_delay(failures: int, cap_seconds: int) -> timedelta:
    """60 s after the first failure, doubling each time, never more than ``cap_seconds``."""
    exponent = min(max(failures - 1, 0), 30)
    return timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2**exponent, cap_seconds))


def record_success(store: Store, link_id: int, owner: str, now: datetime, *,
                   next_sync_at: datetime) -> None:
    """A pass completed: clear the failures, schedule the next pass, give the lease back."""
    with store.transaction() as session:
        session.execute(
            update(LinkedAccount)
            .where(LinkedAccount.id == link_id, LinkedAccount.lease_owner == owner)
            .values(last_success_at=now, failures=0, next_sync_at=next_sync_at,
                    lease_owner=None, lease_until=None))


def record_failure(store: Store, link_id: int, owner: str, now: datetime, error: str, *,
                   cap_seconds: int) -> None:
    """A pass failed: count it, back off, record the error, give the lease back."""
    with store.transaction() as session:
        link = session.get(LinkedAccount, link_id)
        if link is None or link.lease_owner != owner:
            return  # removed, or no longer ours
        failures = link.failures + 1
        session.execute(
            update(LinkedAccount).where(LinkedAccount.id == link_id).values(
                last_error=error, last_error_at=now, failures=failures,
                next_sync_at=now + backoff_delay(failures, cap_seconds),
                lease_owner=None, lease_until=None))


def release(store: Store, link_id: int, owner: str) -> None:
    """Give the lease back without recording an outcome (the process is stopping)."""
    with store.transaction() as session:
        session.execute(
            update(LinkedAccount)
            .where(LinkedAccount.id == link_id, LinkedAccount.lease_owner == owner)
            .values(lease_owner=None, lease_until=None))


def reset_link(session: Session, link: LinkedAccount) -> int:
    """Forget the sync state (tokens, cursors, objects); the next pass reconciles by UID.

    Returns how many objects were forgotten."""
    calendars = [c.id for c in calendars_of(session, link.id)]
    forgotten = 0
    for calendar in session.scalars(select(LinkedCalendar).where(
            LinkedCalendar.id.in_(calendars))):
        calendar.sync_token = None
        calendar.ctag = None
        for obj in session.scalars(select(LinkedObject).where(
                LinkedObject.calendar_id == calendar.id)):
            session.delete(obj)
            forgotten += 1
    link.push_cursors = {}
    link.next_sync_at = utcnow()
    session.flush()
    return forgotten
