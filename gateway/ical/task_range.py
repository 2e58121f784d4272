"""The time range a VTODO occupies, for time-range queries (RFC 4791 section 9.9).

RFC 4791 9.9 decides whether a VTODO overlaps a query window [start, end) by which of
DTSTART, DURATION, DUE, COMPLETED and CREATED it has, with inclusive and exclusive bounds
that differ from case to case. The occurrence index answers every query with one rule, the
VEVENT one (``item start < window end`` and ``item end > window start``, or a zero-length
item at or after the window start). :func:`index_range` turns each 9.9 case into the span
that rule matches exactly: iCalendar and CalDAV time ranges have whole seconds, so "up to and
including t" is "before t + 1 s". The property tests check it against the RFC's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SECOND = timedelta(seconds=1)
# A task with no time at all matches every window; the index needs a finite start.
BEGINNING = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TaskTimes:
    """The UTC instants of one VTODO that RFC 4791 9.9 looks at; ``None`` when absent.

    ``duration`` is set only with ``dtstart`` (RFC 5545 3.6.2: DURATION needs DTSTART), a
    VTODO has DUE or DURATION, not both, and DUE is not before DTSTART.
    """

    dtstart: datetime | None = None
    duration: timedelta | None = None
    due: datetime | None = None
    completed: datetime | None = None
    created: datetime | None = None


def index_range(times: TaskTimes) -> tuple[datetime, datetime | None]:
    """The (start, end) to index the VTODO under; ``end`` ``None`` means it never ends.

    Matched by the occurrence index's overlap rule, it selects exactly the windows RFC 4791
    9.9 says the VTODO overlaps (for whole-second instants).
    """
    start, due = times.dtstart, times.due
    if start is not None:
        if times.duration is not None:
            end = start + times.duration
            if end == start:  # start <= DTSTART and end >= DTSTART
                return start - SECOND, start + SECOND
            return start, end + SECOND  # start <= DTSTART+DURATION and end > DTSTART
        if due is not None and due > start:
            return start, due  # start < DUE and end > DTSTART
        if due is not None:  # DUE = DTSTART (parsing refuses a DUE before it)
            return start - SECOND, start + SECOND
        return start, start  # start <= DTSTART and end > DTSTART
    if due is not None:
        return due - SECOND, due - SECOND  # start < DUE and end >= DUE
    marks = [moment for moment in (times.completed, times.created) if moment is not None]
    if times.completed is not None:
        return min(marks) - SECOND, max(marks) + SECOND  # inclusive at both ends
    if times.created is not None:
        return times.created, None  # end > CREATED
    return BEGINNING, None
