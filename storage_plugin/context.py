"""What the HTTP host tells the plugins about the request being served, per thread.

Radicale runs each request synchronously in one worker thread, so a thread-local is the
request scope. Under stock Radicale nothing sets it and the plugins use their fallbacks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from gateway.calendars import CalendarView
from gateway.ical import EventData


@dataclass(frozen=True)
class Answer:
    """A response the storage decided on, which the host sends instead of Radicale's (Radicale
    turns every storage error into a 400 or 500)."""

    status: str  # "412 Precondition Failed"
    body: bytes
    content_type: str


@dataclass
class RequestContext:
    method: str = ""
    # The request body exactly as the client sent it (decoded), for PUT: the storage keeps
    # these bytes instead of Radicale's vobject re-serialisation.
    body: str | None = None
    # What the host already parsed out of ``body`` when it checked it (one parse per PUT).
    parsed: EventData | None = None
    # Calendars looked up during this request, by (user, slug); None for "no such calendar".
    # Radicale discovers a PUT's or DELETE's calendar twice (item, then parent); a write
    # forgets them (``forget_calendars``).
    calendars: dict[tuple[str, str], CalendarView | None] = field(default_factory=dict)
    # The client's preconditions: Radicale checks them against what it read before the
    # write; the storage checks them again inside the write's transaction.
    if_match: str | None = None
    if_none_match: str | None = None
    answer: Answer | None = None
    # The window of a REPORT for which Radicale expands series itself (C:expand,
    # free-busy-query): the storage hands it series it can expand cheaply over it.
    expansion: tuple[datetime, datetime] | None = None


_local = threading.local()


def current() -> RequestContext:
    context: RequestContext | None = getattr(_local, "context", None)
    return context if context is not None else RequestContext()


def begin(method: str, body: str | None, parsed: EventData | None = None, *,
          if_match: str | None = None, if_none_match: str | None = None,
          expansion: tuple[datetime, datetime] | None = None) -> None:
    _local.context = RequestContext(method, body, parsed, if_match=if_match,
                                    if_none_match=if_none_match, expansion=expansion)


def end() -> None:
    _local.context = None


def forget_calendars() -> None:
    """After a write: later lookups in this request read the calendars afresh."""
    current().calendars.clear()
