"""Calendar feed benchmark: a rep's feed (and its ETag) at two diary sizes, the same number
of entries in the window, to show a feed costs O(entries in its window), not O(diary).

    .venv/bin/python -m bench.feeds [--sizes 1000,10000] [--in-window 40] [--runs 20]
    .venv/bin/python -m bench.feeds --db postgresql+psycopg://postgres@127.0.0.1:5432/test

Each size is a fresh scratch store (SQLite in a temporary folder, or the given PostgreSQL
database, emptied first) with one rep whose entries are made by ``gateway.entries`` (the real
publication path): ``--in-window`` of them in the next weeks, the rest years in the past.
Timed in-process, median of ``--runs``: ``feed_etag`` (what an unchanged poll costs before
its 304) and ``feed_body`` (the whole feed). Progress on stderr, a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project root importable instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from sqlalchemy import text

from gateway.clock import utcnow
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, create_entry
from gateway.export import feed_body, feed_etag, feed_window
from gateway.users import UserChanges, create_user, get_user, update_user


def seed(store: Store, size: int, in_window: int) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    with store.transaction() as session:
        create_type(session, "Meeting")
        rep = create_user(session, "bench", "bench@acme.example", name="Bench")
        update_user(session, rep, UserChanges(diary_sync=True))
    made = 0
    while made < size:
        with store.transaction() as session:
            for _ in range(min(500, size - made)):
                start = (now + timedelta(days=1 + made % 60, hours=made % 8)) \
                    if made < in_window else now - timedelta(days=400 + made % 8000)
                create_entry(session, EntryDraft(
                    type_name="Meeting", title=f"Entry {made}", start=start,
                    end=start + timedelta(hours=1), organizer="bench",
                    attendees=("hank@globex.example",)))
                made += 1
        print(f"  {made}/{size} entries", file=sys.stderr)


def median_ms(function: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(store: Store, runs: int) -> tuple[float, float, int]:
    window = feed_window(90, 365)
    with store.reading() as session:
        user = get_user(session, "bench")
        etag = median_ms(lambda: feed_etag(session, user, window), runs)
        body = median_ms(lambda: feed_body(session, user, window), runs)
        events = feed_body(session, user, window)[0].count("BEGIN:VEVENT")
    return etag, body, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--in-window", type=int, default=40)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--db", default="", help="a PostgreSQL URL (emptied!) instead of SQLite")
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            url = args.db or f"sqlite:///{folder}/bench.sqlite3"
            store = Store(url)
            if args.db:
                with store.engine.begin() as connection:
                    connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            store.upgrade()
            print(f"size {size}:", file=sys.stderr)
            seed(store, size, args.in_window)
            rows.append((size, *measure(store, args.runs)))
            store.dispose()
    print("| entries of the rep | in the window | ETag only (304), ms | whole feed, ms |")
    print("|---:|---:|---:|---:|")
    for size, etag, body, events in rows:
        print(f"| {size} | {events} | {etag:.2f} | {body:.1f} |")
    first, last = rows[0], rows[-1]
    print(f"\nlargest/smallest: ETag {last[1] / first[1]:.2f}x, feed {last[2] / first[2]:.2f}x")


if __name__ == "__main__":
    main()
