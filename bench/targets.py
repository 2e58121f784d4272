"""Servers under test: the ``Target`` interface and the registry the benchmark picks from.

A target serves ONE VEVENT calendar over HTTP that the benchmark may read and write with
``credentials``.  The benchmark drives it like this, once per data-set size:

    target = TARGETS[name](workdir)   # workdir: an empty scratch directory, deleted afterwards
    url = target.start(events)        # serving exactly `events`; returns the calendar URL
    ...                               # timed requests against `url`, with target.credentials
    target.stop()                     # always called, also after a failure

``load(events)`` replaces the calendar's content in bulk (without a PUT per event); ``start``
uses it for the initial content.  It exists separately so that a target whose content lives
elsewhere (the gateway's CRM database) can be refilled without a restart.

Every target gets the same events, and the benchmark compares the hrefs each returns: a target
must keep the benchmark's hrefs (``<uid>.ics``) as the names of its resources.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from bench.calgen import CalEvent
from bench.gateway_target import GatewayTarget
from bench.stock import StockRadicale


class Target(Protocol):
    """One server under test."""

    name: str  # short name used on the command line and as the column header
    credentials: tuple[str, str] | None  # HTTP Basic user and password, None for no auth

    def start(self, events: Sequence[CalEvent]) -> str:
        """Start the server with exactly ``events`` in the calendar and wait until it answers.

        Returns the calendar collection's absolute URL, ending in "/".
        """
        ...

    def load(self, events: Sequence[CalEvent]) -> None:
        """Replace the calendar's whole content with ``events``, bypassing CalDAV."""
        ...

    def stop(self) -> None:
        """Stop the server and release its resources; safe to call when not started."""
        ...


TargetFactory = Callable[[Path], Target]

# THE REGISTRATION POINT.  Name -> factory taking the scratch directory.  "gateway" is the
# Twisted host + our storage plugin over a scratch CRM database (SQLite; bench/caldav.py's
# --gateway-db replaces the factory with one bound to a PostgreSQL server).
# The column order of the report follows this dict; "stock" must stay first because ratios
# are reported as stock / <other target>.
TARGETS: dict[str, TargetFactory] = {
    "stock": StockRadicale,
    "gateway": GatewayTarget,
}
