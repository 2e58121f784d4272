"""Recurrence cost benchmark: what one PUT of a recurring event costs the server, by rule.

    .venv/bin/python -m bench.recurrence [--repeat 5] [--rules weekly,hourly-minutes]
    .venv/bin/python -m bench.recurrence --database postgresql+psycopg://postgres@127.0.0.1/test

Each rule is PUT as a never-ending series through the service path a client PUT runs after
Radicale (``client_writes.put_event`` in one transaction: parsing, CRM fields, publication and
the occurrence index), on a scratch database; then a far-future week query runs through
``calendars.items_in_range``, the path a time-range REPORT takes. The anchor is a plain weekly
rule measured in the same run: the table gives each rule's median milliseconds and its ratio to
the anchor, so the numbers compare across machines. Times are CPU (``time.process_time``):
on a shared machine wall time mostly measures the neighbours. A rule the gateway refuses (400
with the reason) is timed the same way, refusal included. Target: no rule adds more
than 50 ms to a PUT over the anchor. Progress goes to stderr, the Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project root importable instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from gateway import app_passwords, calendars, client_writes
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.errors import Invalid
from gateway.users import UserChanges, create_user, get_user, update_user

ANCHOR = "weekly"
RULES: dict[str, str] = {
    ANCHOR: "FREQ=WEEKLY;BYDAY=MO",
    "daily": "FREQ=DAILY",
    "hourly": "FREQ=HOURLY",
    "hourly-minutes": "FREQ=HOURLY;BYMINUTE=" + ",".join(str(m) for m in range(60)),
    "hourly-minutes-setpos": (
        "FREQ=HOURLY;BYMINUTE=" + ",".join(str(m) for m in range(60)) + ";BYSETPOS=-1"),
    "sparse-weekno": "FREQ=DAILY;BYWEEKNO=53;BYMONTH=1;BYDAY=MO",
    "sparse-leap-monday": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
    "yearly-setpos": (
        "FREQ=YEARLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYSETPOS="
        + ",".join(str(p) for p in range(1, 367))),
    "hourly-sparse": "FREQ=HOURLY;BYWEEKNO=53;BYMONTH=1;BYDAY=MO;BYMINUTE="
                     + ",".join(str(m) for m in range(60)),
}
TARGET_MS = 50.0
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Bench//EN\r\nBEGIN:VEVENT\r\n"
    "UID:{uid}\r\nDTSTAMP:20261201T090000Z\r\nDTSTART;TZID=Europe/Berlin:20261207T090000\r\n"
    "DTEND;TZID=Europe/Berlin:20261207T093000\r\nRRULE:{rule}\r\nSUMMARY:Bench\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
FAR_WEEK = (datetime(2040, 3, 5, tzinfo=UTC), datetime(2040, 3, 12, tzinfo=UTC))

_uids = itertools.count(1)


def _timed(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return (time.process_time() - started) * 1000


class Scratch:
    """A migrated scratch database with one diary-sync user and a syncable type."""

    def __init__(self, database_url: str) -> None:
        self.store = Store(database_url)
        self.store.upgrade()
        self.user = f"bench{time.time_ns()}"
        with self.store.transaction() as session:
            user = create_user(session, self.user, f"{self.user}@crm.example", name="Bench")
            update_user(session, user, UserChanges(diary_sync=True))
            app_passwords.issue(session, user, "bench")
            self.slug = create_type(session, f"Bench {self.user}", syncable=True).slug

    def put(self, rule: str) -> None:
        uid = f"bench-{next(_uids)}"
        text = EVENT.format(uid=uid, rule=rule)
        try:
            with self.store.transaction() as session:
                user = get_user(session, self.user)
                view = calendars.user_calendar(session, user, self.slug)
                assert view is not None
                client_writes.put_event(session, user, view, f"{uid}.ics", text)
        except Invalid:
            pass  # refused with the reason (and rolled back), as a PUT would be

    def far_query(self) -> None:
        with self.store.reading() as session:
            user = get_user(session, self.user)
            view = calendars.user_calendar(session, user, self.slug)
            assert view is not None
            calendars.items_in_range(session, view, *FAR_WEEK)


def run(database_url: str, names: list[str], repeat: int) -> list[tuple[str, float, float]]:
    """(rule name, median PUT ms, median far-future week query ms) per rule."""
    results = []
    for name in names:
        scratch = Scratch(database_url)  # its own calendar: the query sees this rule only
        puts = []
        for run_number in range(repeat):
            puts.append(_timed(partial(scratch.put, RULES[name])))
            print(f"[{time.strftime('%H:%M:%S')}] {name}: PUT {run_number + 1}/{repeat} "
                  f"{puts[-1]:.1f} ms", file=sys.stderr, flush=True)
        queries = [_timed(scratch.far_query) for _ in range(repeat)]
        results.append((name, statistics.median(puts), statistics.median(queries)))
        scratch.store.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: SQLite)")
    args = parser.parse_args(argv)
    names = [name for name in args.rules.split(",") if name]
    unknown = [name for name in names if name not in RULES]
    if unknown:
        parser.error(f"unknown rules {unknown}; known: {', '.join(RULES)}")
    if ANCHOR not in names:
        names.insert(0, ANCHOR)
    with tempfile.TemporaryDirectory() as scratch_dir:
        url = args.database or f"sqlite:///{Path(scratch_dir) / 'bench.sqlite3'}"
        results = run(url, names, max(1, args.repeat))
    anchor_put, anchor_query = next((put, query) for name, put, query in results
                                    if name == ANCHOR)
    print("| rule | PUT CPU ms | x weekly | far-future week query CPU ms | x weekly |")
    print("|---|---|---|---|---|")
    for name, put, query in results:
        print(f"| {name} | {put:.1f} | {put / anchor_put:.1f} | {query:.1f} | "
              f"{query / anchor_query:.1f} |")
    worst = max(put for _, put, _ in results) - anchor_put
    met = worst < TARGET_MS
    print(f"\nworst rule adds {worst:.1f} ms to a PUT over the weekly anchor: "
          f"target (< {TARGET_MS:.0f} ms) {'met' if met else 'missed'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
