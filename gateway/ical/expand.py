"""The instances of a stored calendar object inside a time window, for the occurrence index.

The index lets a time-range calendar-query run as SQL; Radicale's exact filter then runs
on the hits, so this must never miss an instance that filter would match. Overrides
(STATUS:CANCELLED ones included, which clients still show and RFC 4791 still matches)
replace the instance they name; EXDATEs remove theirs. Every expansion is bounded by a
work budget (:mod:`gateway.ical.budget`) and says how far its answer is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.ical.budget import Budget
from gateway.ical.recurrence import Series
from gateway.ical.structure import load_object
from gateway.ical.timing import utc_instant


@dataclass(frozen=True)
class Occurrences:
    """UTC (start, end) spans, sorted; ``complete_until`` as in :class:`Expansion`."""

    spans: list[tuple[datetime, datetime]]
    complete_until: datetime | None


def bounded_occurrences(
    text: str, window_start: datetime, window_end: datetime, limit: int | None = None
) -> Occurrences:
    """The instances overlapping [window_start, window_end), at most ``limit`` of the series'
    own (overrides come on top), within one work budget.

    Overlap follows RFC 4791 9.9: ``start < window_end and end > window_start``, and for a
    zero-length instance ``window_start <= start < window_end``. All-day and floating times
    count as UTC. A never-ending rule is expanded only up to ``window_end``. The window
    bounds must be aware datetimes; an invalid object raises InvalidCalendarObject.
    """
    low, high = utc_instant(window_start), utc_instant(window_end)
    if high <= low:
        return Occurrences([], None)
    expansion = Series(load_object(text)).expand(low, high, Budget(), limit)
    return Occurrences([(instance.start, instance.end) for instance in expansion.instances],
                       expansion.complete_until)


def occurrences(
    text: str, window_start: datetime, window_end: datetime
) -> list[tuple[datetime, datetime]]:
    """The spans of :func:`bounded_occurrences` without a limit (complete within budget)."""
    return bounded_occurrences(text, window_start, window_end).spans


def overlaps_window(text: str, window_start: datetime, window_end: datetime) -> bool | None:
    """Whether the object has an instance overlapping the window; None when the work budget
    ran out before the answer was known. Raises InvalidCalendarObject like the others."""
    found = bounded_occurrences(text, window_start, window_end, limit=1)
    if found.spans:
        return True
    if found.complete_until is not None and found.complete_until < utc_instant(window_end):
        return None
    return False
