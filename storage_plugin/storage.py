"""The Radicale storage plugin: ``/<user>/`` principals and their CRM calendars.

Paths: ``""`` the root, ``<user>`` a principal, ``<user>/<slug>`` a calendar (a syncable
diary type's slug, or ``invitations``), ``<user>/<slug>/<href>`` an event.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

import radicale.item as radicale_item
from radicale import pathutils, storage, types

from gateway import calendars, client_writes, preconditions
from gateway.db import Store
from gateway.errors import DomainError
from gateway.models import User
from gateway.users import get_user
from storage_plugin import answers, context
from storage_plugin.collection import CalendarCollection, PlainCollection
from storage_plugin.registry import store_for

log = logging.getLogger(__name__)

_user_locks: dict[str, threading.RLock] = {}
_user_locks_guard = threading.Lock()


def _user_lock(user: str) -> threading.RLock:
    with _user_locks_guard:
        return _user_locks.setdefault(user, threading.RLock())


class Storage(storage.BaseStorage):
    # Everything lives in the database, so no filesystem naming limits apply.
    _supports_unicode = True
    _supports_trailing_whitespace = True
    _supports_problematic_chars = True

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.store: Store = store_for(configuration)

    def _user(self, username: str) -> User | None:
        with self.store.reading() as session:
            try:
                user = get_user(session, username)
            except DomainError:
                return None
            session.expunge(user)
            return user

    def _calendar(self, username: str, slug: str) -> CalendarCollection | None:
        memo = context.current().calendars
        if (username, slug) in memo:
            view = memo[(username, slug)]
        else:
            with self.store.reading() as session:
                try:
                    view = calendars.user_calendar(session, get_user(session, username), slug)
                except DomainError:
                    view = None
            memo[(username, slug)] = view
        return CalendarCollection(self.store, username, view) if view else None

    def discover(
        self,
        path: str,
        depth: str = "0",
        child_context_manager: Callable[[str, str | None], AbstractContextManager[None]]
        | None = None,
        user_groups: set[str] = set(),  # noqa: B006 (Radicale's own signature)
    ) -> Iterator[types.CollectionOrItem]:
        parts = [part for part in pathutils.strip_path(path).split("/") if part]
        if not parts:
            # The root exists; its children (other users) are never listed.
            yield PlainCollection("")
            return
        username = parts[0]
        if len(parts) == 1:
            user = self._user(username)
            if user is None or not user.diary_sync:
                return
            yield PlainCollection(username)
            if depth != "0":
                with self.store.reading() as session:
                    user = get_user(session, username)
                    views = calendars.user_calendars(session, user)
                for view in views:
                    yield CalendarCollection(self.store, username, view)
            return
        collection = self._calendar(username, parts[1])
        if collection is None:
            return
        if len(parts) == 2:
            yield collection
            if depth != "0":
                yield from collection.get_all()
            return
        if len(parts) == 3:
            for _, item in collection.get_multi([parts[2]]):
                if item is not None:
                    yield item

    def create_collection(
        self,
        href: str,
        items: Iterable[radicale_item.Item] | None = None,
        props: Mapping[str, str] | None = None,
    ) -> tuple[storage.BaseCollection, dict[str, radicale_item.Item], list[str]]:
        # Calendars are provisioned by the CRM (rights already refuse MKCALENDAR/MKCOL); an
        # existing principal is returned as it is.
        parts = [part for part in pathutils.strip_path(href).split("/") if part]
        if len(parts) == 1 and not items and not props:
            user = self._user(parts[0])
            if user is not None and user.diary_sync:
                return PlainCollection(parts[0]), {}, []
        raise ValueError("calendars are provisioned by the CRM")

    def move(self, item: radicale_item.Item, to_collection: storage.BaseCollection,
             to_href: str) -> None:
        source = item.collection
        if not isinstance(source, CalendarCollection) or not isinstance(
                to_collection, CalendarCollection):
            raise ValueError("only events move, between calendars")
        if source.username != to_collection.username:
            raise ValueError("events move only between a user's own calendars")
        href = item.href
        assert href is not None
        context.forget_calendars()

        def write() -> None:
            with self.store.transaction() as session:
                user = get_user(session, source.username)
                client_writes.move_event(session, user, source.view, href,
                                         to_collection.view, to_href)

        try:
            preconditions.retrying(write)
        except DomainError as exc:
            raise answers.refused(exc, source.username) from exc

    @types.contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args: Any,
                     **kwargs: Any) -> Iterator[None]:
        # Per user, for writers only: the database transaction is the real guard.
        lock = _user_lock(user) if mode == "w" and user else contextlib.nullcontext()
        with lock:
            yield

    def verify(self) -> bool:
        with self.store.reading() as session:
            session.get(User, 0)
        return True

