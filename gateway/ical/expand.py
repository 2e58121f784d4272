"""The instances of a stored calendar object inside a time window, for the occurrence index.

The index lets a time-range calendar-query run as SQL; Radicale's exact filter then runs
on the hits, so this must never miss an instance that filter would match. Overrides
(STATUS:CANCELLED ones included, which clients still show and RFC 4791 still matches)
replace the instance they name; EXDATEs remove theirs.
"""

from __future__ import annotations

from datetime import datetime

from gateway.ical.recurrence import Series
from gateway.ical.structure import load_object
from gateway.ical.timing import utc_instant


def occurrences(
    text: str, window_start: datetime, window_end: datetime
) -> list[tuple[datetime, datetime]]:
    """UTC (start, end) of every instance overlapping [window_start, window_end), sorted.

    Overlap follows RFC 4791 9.9: ``start < window_end and end > window_start``, and for a
    zero-length instance ``window_start <= start < window_end``. All-day and floating times
    count as UTC. A never-ending rule is expanded only up to ``window_end``. The window
    bounds must be aware datetimes; an invalid object raises InvalidCalendarObject.
    """
    low, high = utc_instant(window_start), utc_instant(window_end)
    if high <= low:
        return []
    series = Series(load_object(text))
    return [(instance.start, instance.end) for instance in series.between(low, high)]
