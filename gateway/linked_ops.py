"""Linking a rep's calendar account and acting on a link: one flow for the CLI, the API and
the pages.

The server-side work (the connectivity test, MKCALENDAR, a sync pass, removing what was
pushed, dedupe) speaks CalDAV, so it lives in the ``linked`` edge; neither the core nor the
HTTP edge may import it. The process host hands the core that edge's operations
(``provide``) when it starts the HTTP role, as it does the mailbox probe; the CLI provides
them itself. Each operation blocks and runs outside any transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.connectivity import StepResult
from gateway.db import Store
from gateway.diary_types import get_type
from gateway.errors import DomainError, Invalid, NotFound
from gateway.key_check import check_key
from gateway.linked_calendars import (
    LinkTarget,
    RemoteCalendar,
    choose_calendar,
    create_link,
    default_source_type,
    get_link,
    links_of,
    load_link,
    remove_link,
    resolve_url,
)
from gateway.models import DiaryType, LinkedAccount
from gateway.secrets import SecretBox
from gateway.users import get_user

DEFAULT_TARGET = "CRM"


@dataclass
class AccountCheck(StepResult):
    """The connectivity test of an account, with what discovery found."""

    principal_url: str | None = None
    home_url: str | None = None
    calendars: list[RemoteCalendar] = field(default_factory=list)


class PassLike(Protocol):
    """What one sync pass did (``linked.sync.PassReport``)."""

    link_id: int
    pushed: int
    deleted: int
    fetched: int
    removed: int
    busy: int
    conflicts: list[str]
    refused: list[str]
    requests: int
    error: str | None


@dataclass
class Removal:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # changed on the account since: left there


class Remote(Protocol):
    """The ``linked`` edge's operations, as the process provides them."""

    def check(self, url: str, login: str, password: str, timeout: int) -> AccountCheck: ...

    def make_calendar(self, url: str, login: str, password: str, timeout: int, home: str,
                      name: str) -> RemoteCalendar: ...

    def sync_now(self, config: Config, store: Store,
                 usernames: Sequence[str]) -> Sequence[PassLike]: ...

    def remove_pushed(self, store: Store, target: LinkTarget, timeout: int) -> Removal: ...

    def dedupe(self, store: Store, target: LinkTarget, dry_run: bool,
               timeout: int) -> list[str]: ...


class RemoteUnavailable(DomainError):
    """This process cannot reach calendar accounts (the ``linked`` edge was not provided)."""


class RemoteRefused(DomainError):
    """The account refused what was asked of it (e.g. MKCALENDAR); the message says what."""


class LinkRefused(DomainError):
    """The account failed its connectivity test: nothing was stored."""

    def __init__(self, check: AccountCheck) -> None:
        failed = check.failed
        assert failed is not None
        super().__init__(f"failed at step {failed.name}: {failed.detail}")
        self.check = check


_provided: list[Remote] = []


def provide(remote: Remote) -> None:
    """Install the process's ``linked`` operations (the host does; the CLI does)."""
    _provided[:] = [remote]


def _remote() -> Remote:
    if not _provided:
        raise RemoteUnavailable("this process cannot reach calendar accounts")
    return _provided[0]


def _box(config: Config, store: Store) -> SecretBox:
    key = config.get("security", "secret_key")
    check_key(store, key)  # a password stored under another key could not be read back
    return SecretBox(key)


def _timeout(config: Config) -> int:
    return int(config.get("linked", "timeout_seconds"))


@dataclass(frozen=True)
class LinkRequest:
    username: str
    login: str
    password: str
    provider: str = "custom"
    url: str | None = None  # default: the provider's
    target: str = DEFAULT_TARGET  # a calendar's display name or last path segment
    sources: tuple[str, ...] = ()
    diary_type: str | None = None  # fetched events' type (default: the first syncable)


@dataclass
class Linked:
    link_id: int
    url: str
    check: AccountCheck
    target: RemoteCalendar
    sources: list[RemoteCalendar]
    made_target: bool


def link_account(config: Config, store: Store, request: LinkRequest) -> Linked:
    """Test the account, pick (or make) the target and the sources, store the link.

    Raises ``LinkRefused`` (with every step) when the test fails and a ``DomainError`` when
    a rule refuses it; in both cases nothing is stored.
    """
    if not request.login.strip():
        raise Invalid("the account's login is required")
    url = resolve_url(request.provider, request.url)
    remote, box, timeout = _remote(), _box(config, store), _timeout(config)
    with store.reading() as session:
        user = get_user(session, request.username)
        if not user.diary_sync:
            raise Invalid(f"{request.username} does not have diary sync on: enable it first")
        type_id = (get_type(session, request.diary_type) if request.diary_type
                   else default_source_type(session)).id
    check = remote.check(url, request.login, request.password, timeout)
    if not check.ok:
        raise LinkRefused(check)
    sources = []
    for name in request.sources:
        found = choose_calendar(check.calendars, name)
        if found is None:
            raise Invalid(f"no calendar {name!r} on the account (it has: "
                          f"{', '.join(c.name or c.url for c in check.calendars) or 'none'})")
        sources.append(found)
    target = choose_calendar(check.calendars, request.target or DEFAULT_TARGET)
    made = target is None
    if target is None:
        target = remote.make_calendar(url, request.login, request.password, timeout,
                                      check.home_url or url, request.target or DEFAULT_TARGET)
    with store.transaction() as session:
        fetch_into = session.get(DiaryType, type_id)
        assert fetch_into is not None
        link = create_link(session, get_user(session, request.username), url=url,
                           login=request.login, password=request.password,
                           provider=request.provider, box=box,
                           principal_url=check.principal_url, home_url=check.home_url,
                           target=target, sources=sources, source_type=fetch_into)
        link_id = link.id
    return Linked(link_id, url, check, target, sources, made)


def probe_account(config: Config, *, provider: str, url: str | None, login: str,
                  password: str) -> tuple[str, AccountCheck]:
    """Test an account before linking it (nothing stored): its URL and what the test saw."""
    resolved = resolve_url(provider, url)
    return resolved, _remote().check(resolved, login, password, _timeout(config))


def chosen_link(session: Session, username: str, link: str | int | None) -> LinkedAccount:
    """The link named by number, or the user's only one."""
    user = get_user(session, username)
    if link is not None:
        return get_link(session, user, link)
    links = links_of(session, user)
    if not links:
        raise NotFound(f"{username} has no linked calendar account")
    if len(links) > 1:
        raise Invalid(f"{username} has {len(links)} linked accounts: name one "
                      "(see 'crm-gateway calendars show')")
    return links[0]


def _target(config: Config, store: Store, username: str, link: str | int | None) -> LinkTarget:
    with store.reading() as session:
        link_id = chosen_link(session, username, link).id
    return load_link(store, link_id, _box(config, store))


def test_link(config: Config, store: Store, username: str,
              link: str | int | None = None) -> tuple[int, AccountCheck]:
    """The connectivity test of a stored link (nothing is written to the account)."""
    target = _target(config, store, username, link)
    return target.link_id, _remote().check(target.url, target.login, target.password,
                                           _timeout(config))


def remote_calendars(config: Config, store: Store, username: str, link: str | int | None = None
                     ) -> tuple[AccountCheck, list[tuple[RemoteCalendar, str | None]]]:
    """The account's calendars now, each with its role in the link (target, source, none)."""
    target = _target(config, store, username, link)
    check = _remote().check(target.url, target.login, target.password, _timeout(config))
    roles = {c.url: c.role for c in target.calendars}
    return check, [(c, roles.get(c.url)) for c in check.calendars]


def unlink(config: Config, store: Store, username: str, link: str | int | None = None, *,
           remove_pushed: bool = False) -> tuple[int, Removal | None]:
    """Forget the link; first, if asked, delete from the account what the gateway put there
    (each with If-Match: what was changed on the account since stays)."""
    removal = None
    if remove_pushed:
        target = _target(config, store, username, link)
        removal = _remote().remove_pushed(store, target, _timeout(config))
    with store.transaction() as session:
        found = chosen_link(session, username, link)
        link_id = found.id
        remove_link(session, found)
    return link_id, removal


def sync_links(config: Config, store: Store, username: str) -> Sequence[PassLike]:
    """One pass over each of the user's links now; those another process holds are left
    to it (and not in the answer)."""
    with store.reading() as session:
        if not links_of(session, get_user(session, username)):
            raise NotFound(f"{username} has no linked calendar account")
    _box(config, store)
    return _remote().sync_now(config, store, [username])


def dedupe_link(config: Config, store: Store, username: str, link: str | int | None = None, *,
                dry_run: bool) -> tuple[int, list[str]]:
    """Duplicates on the account (same UID, or title, start and end), the CRM's kept."""
    target = _target(config, store, username, link)
    return target.link_id, _remote().dedupe(store, target, dry_run, _timeout(config))
