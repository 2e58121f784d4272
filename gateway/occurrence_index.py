"""What the occurrence index holds for one entry: its instances, up to a horizon.

Built on every write, so a time-range query is one indexed SQL scan whose hits are exact:
Radicale never re-parses or expands a series on the read path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.clock import utcnow
from gateway.ical import occurrences
from gateway.models import DiaryEntry

# Instances longer than this are flagged "long" and found by a separate, small scan; shorter
# ones by a range scan over start times no earlier than (window start - LONG).
LONG = timedelta(days=7)
# Never-ending series are indexed this far ahead; queries beyond fall back to Radicale.
HORIZON = timedelta(days=3 * 366)
MAX_INSTANCES = 2000


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
    spans = occurrences(entry.ical, entry.span_start_utc, window_end)
    horizon = None if end is not None and end <= limit else limit
    if len(spans) > MAX_INSTANCES:
        spans = spans[:MAX_INSTANCES]
        horizon = spans[-1][0]
    return Instances(tuple(spans), horizon)
