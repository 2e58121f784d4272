"""The work budget of one recurrence expansion: rules cost what they return.

An expansion (indexing a PUT, checking a query window, finding a series' span, or checking
that a rule's unbounded expansion ends) is charged in work units of about a microsecond of
CPU on the 2-core test machine: per month a rule's search enters (by frequency, measured
with bench/recurrence.py), ``INSTANCE_COST`` per instance expanded, ``SEARCH_COST`` per
match of a bare search. When the units run out the expansion stops where it is and reports
how far its answer is complete, so a hostile rule costs a bounded amount of CPU instead of
seconds.
"""

from __future__ import annotations

from datetime import datetime

# About 15 ms of CPU: a PUT runs at most three such expansions (the target: under 50 ms a PUT).
WORK_UNITS = 15_000
# What a REPORT may spend on one series that Radicale expands itself (C:expand, free-busy):
# about 2,400 instances in the window; the expansion costs several times our own.
REPORT_UNITS = 4 * WORK_UNITS
INSTANCE_COST = 25  # an instance with its zone conversion, overrides and EXDATEs
SEARCH_COST = 3  # a match of dateutil's bare search

class Budget:
    """Work units left, and where the expansion stopped when they ran out."""

    def __init__(self, units: int = WORK_UNITS) -> None:
        self.left = units
        self.stopped_at: datetime | None = None  # earliest point a rule stopped at

    @property
    def exhausted(self) -> bool:
        return self.left <= 0

    def charge(self, units: int) -> bool:
        """Spend ``units``; False once the budget is exhausted (the work is not done)."""
        self.left -= units
        return self.left > 0

    def stop(self, position: datetime) -> None:
        """Record that a rule stopped early; everything before ``position`` was produced."""
        if self.stopped_at is None or position < self.stopped_at:
            self.stopped_at = position
