"""Keyset pages: ``WHERE key > :after ORDER BY key LIMIT n + 1`` over an index.

A page costs O(its size) however deep it is, unlike OFFSET; the caller's cursor is the key of
the last row it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_after: int | None  # the key to continue after; None on the last page


def page(session: Session, query: Select[Any], key: Any, limit: int,
         after: int | None) -> Page[Any]:
    """The rows of ``query`` (which selects one entity) with ``key`` above ``after``;
    ``key`` is the row's ``id`` or a column equal to it (a link's foreign key)."""
    if after is not None:
        query = query.where(key > after)
    rows = list(session.scalars(query.order_by(key).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, int(rows[-1].id) if more else None)
