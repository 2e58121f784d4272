"""The Radicale rights plugin: users see only their own principal and calendars.

Type calendars are writable unless the user's sync profile says otherwise; the invitations
calendar is read-only, so clients show it read-only before anyone tries to write (rights
``r``). MKCALENDAR/MKCOL are refused: the principal is ``R``, never ``W``.

Rights are read from the database once per request and remembered only for that request
(the calendars the storage looked up, ``context.RequestContext.calendars``): a pause or a
direction change bites on the next request, on every process.
"""

from __future__ import annotations

import functools
from typing import Any

from radicale import pathutils, rights

from gateway import calendars
from gateway.errors import DomainError
from gateway.users import get_user
from storage_plugin import context
from storage_plugin.registry import store_for


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
        """True/False for an existing calendar of ``user``, None when there is none.

        Called once per item in a Depth:1 PROPFIND: the request's memo answers after the
        first call (and shares the lookup with the storage plugin). Under stock Radicale
        there is no request scope and every call reads the database."""
        memo = context.current().calendars
        if (user, slug) not in memo:
            with self.store.reading() as session:
                try:
                    view = calendars.user_calendar(session, get_user(session, user), slug)
                except DomainError:  # an unknown user has no calendars
                    view = None
            memo[(user, slug)] = view
        view = memo[(user, slug)]
        return None if view is None else view.writable

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
