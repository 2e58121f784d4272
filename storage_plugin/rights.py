"""The Radicale rights plugin: users see only their own principal and calendars.

Type calendars are writable unless the user's sync profile says otherwise; the invitations
calendar is read-only, so clients show it read-only before anyone tries to write (rights
``r``). MKCALENDAR/MKCOL are refused: the principal is ``R``, never ``W``.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from radicale import pathutils, rights

from gateway import calendars
from gateway.errors import DomainError
from gateway.users import get_user
from storage_plugin import context
from storage_plugin.registry import store_for

# Called once per item in a Depth:1 PROPFIND: remember answers for a moment.
CACHE_SECONDS = 2.0

_cache: dict[tuple[str, str], tuple[bool | None, float]] = {}
_cache_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _parts(path: str) -> tuple[str, ...]:
    """The path's segments; memoised, as a Depth:1 PROPFIND asks once per item for the same
    collection path and Radicale's path sanitising costs more than the rest of the check."""
    return tuple(part for part in pathutils.strip_path(path).split("/") if part)


class Rights(rights.BaseRights):
    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.store = store_for(configuration)

    def _writable(self, user: str, slug: str) -> bool | None:
        """True/False for an existing calendar of ``user``, None when there is none."""
        now = time.monotonic()
        with _cache_lock:
            cached = _cache.get((user, slug))
            if cached is not None and cached[1] > now:
                return cached[0]
        with self.store.reading() as session:
            try:
                view = calendars.user_calendar(session, get_user(session, user), slug)
            except DomainError:  # an unknown user has no calendars
                view = None
            writable = None if view is None else view.writable
        with _cache_lock:
            _cache[(user, slug)] = (writable, now + CACHE_SECONDS)
        return writable

    def authorization(self, user: str, user_groups: set[str], path: str) -> str:
        if not user:
            return ""
        parts = _parts(path)
        if not parts:
            return "R"
        if parts[0] != user:
            return ""
        if len(parts) == 1:
            return "R"
        if len(parts) > 2:
            return ""
        writable = self._writable(user, parts[1])
        if writable is None:
            return "r"
        if writable:
            return "rw"
        # Cosmetic PROPPATCH (colour, order) is accepted on read-only calendars too: a 403
        # there has made macOS stop syncing the calendar (docs/CALDAV_CLIENTS.md).
        return "rw" if context.current().method == "PROPPATCH" else "r"
