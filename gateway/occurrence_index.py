"""What the occurrence index holds for one entry: its instances, up to a horizon.

Built on every write, so a time-range query is one indexed SQL scan whose hits are exact:
Radicale never re-parses or expands a series on the read path. The expansion stops at
``MAX_INSTANCES``, at ``HORIZON`` or when its work budget runs out, whichever comes first;
the horizon then says up to where the index is exact (queries past it check the item itself).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.clock import utcnow
from gateway.ical import InvalidCalendarObject, bounded_occurrences
from gateway.models import DiaryEntry

# Instances longer than this are flagged "long" and found by a separate, small scan; shorter
# ones by a range scan over start times no earlier than (window start - LONG).
LONG = timedelta(days=7)
# Never-ending series are indexed this far ahead; queries beyond fall back to Radicale.
HORIZON = timedelta(days=3 * 366)
MAX_INSTANCES = 2000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instances:
    spans: tuple[tuple[datetime, datetime], ...]
    horizon: datetime | None  # None: every instance is in ``spans``


def instances_of(entry: DiaryEntry) -> Instances:
    """The instances of ``entry`` to index (from its stored iCalendar when it recurs)."""
    if not entry.rrule and not entry.has_overrides:
        return Instances(((entry.start_utc, entry.end_utc),), None)
    limit = utcnow() + HORIZON
    end = entry.span_end_utc
    window_end = end + timedelta(seconds=1) if end is not None and end <= limit else limit
    try:
        found = bounded_occurrences(entry.ical, entry.span_start_utc, window_end, MAX_INSTANCES)
    except InvalidCalendarObject as error:
        # Stored before its kind was refused: indexed as its first instance, and inexact
        # after it, so queries check it themselves (and leave it out, logged).
        log.warning("entry %s: occurrences not indexed: %s", entry.id, error.reason)
        return Instances(((entry.start_utc, entry.end_utc),), entry.start_utc)
    horizon = None if end is not None and end <= limit else limit
    if found.complete_until is not None:
        horizon = found.complete_until if horizon is None else min(horizon, found.complete_until)
    return Instances(tuple(found.spans), horizon)
