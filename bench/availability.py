"""Free/busy and availability benchmark: the same window at two diary sizes per rep, to show
an answer costs O(busy instances in the window), not O(diary) (issue 13, item 4).

    .venv/bin/python -m bench.availability [--sizes 1000,100000] [--runs 20]
    .venv/bin/python -m bench.availability --db postgresql+psycopg://postgres@127.0.0.1:5432/test

Each size is a fresh scratch store (SQLite in a temporary folder, or the given PostgreSQL
database, emptied first) with five reps. Each rep's entries in the coming month (``--in-window``
of them, some inviting a colleague) are made by ``gateway.entries`` (the real publication path);
the rest of the ``size`` are bulk-inserted in the past as the same rows publication writes
(entry, published item, occurrence), since making 500k entries one by one would take hours.

Timed in-process, median of ``--runs``:
- free/busy of one rep over one month (the VFREEBUSY text the CalDAV REPORT and /freebusy/
  answer);
- a 5-user, 30-minute availability query over two weeks;
- a CRM-side create (organiser and one CRM attendee) in the coming week with
  ``conflicts = warn`` minus the same with ``allow``, taken in turns: what the conflict
  check adds (each create is committed).
Progress on stderr, a Markdown table on stdout.
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

from sqlalchemy import insert, select, text

from gateway.availability import find_availability
from gateway.clock import utcnow
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, create_entry
from gateway.freebusy import vfreebusy
from gateway.models import Calendar, DiaryEntry, Occurrence, PublishedItem
from gateway.profiles import ProfileChanges, update_profile
from gateway.users import UserChanges, create_user, get_user, update_user

REPS = tuple(f"rep{n}" for n in range(5))
ICAL = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\nUID:{uid}"
        "\r\nDTSTAMP:20200101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
        "DTEND:{end:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Old {n}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def seed(store: Store, size: int, in_window: int) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    with store.transaction() as session:
        meeting = create_type(session, "Meeting")
        type_id = meeting.id
        for name in REPS:
            rep = create_user(session, name, f"{name}@acme.example", name=name.title())
            update_user(session, rep, UserChanges(diary_sync=True))
    for index, name in enumerate(REPS):
        with store.transaction() as session:
            for n in range(in_window):
                start = now + timedelta(days=1 + n % 30, hours=(n * 3 + index) % 9)
                colleague = REPS[(index + 1) % len(REPS)]
                create_entry(session, EntryDraft(
                    type_name="Meeting", title=f"Call {n}", start=start,
                    end=start + timedelta(minutes=45), organizer=name,
                    attendees=(colleague,) if n % 4 == 0 else ()))
        with store.transaction() as session:
            user_id = get_user(session, name).id
            calendar_id = session.scalar(select(Calendar.id).where(
                Calendar.user_id == user_id, Calendar.slug == "meeting"))
        made = in_window
        while made < size:
            batch = min(5000, size - made)
            with store.transaction() as session:
                entries, rows_of = [], []
                for k in range(batch):
                    n = made + k
                    start = now - timedelta(days=60 + n % 3000, hours=n % 9)
                    end = start + timedelta(hours=1)
                    uid = f"old-{name}-{n}@bench"
                    ical = ICAL.format(uid=uid, start=start, end=end, n=n)
                    rows_of.append((n, uid, ical, start, end))
                    entries.append({
                        "uid": uid, "href": f"old-{n}.ics", "type_id": type_id,
                        "owner_user_id": user_id, "organizer_user_id": user_id,
                        "organizer_email": f"{name}@acme.example", "title": f"Old {n}",
                        "start_utc": start, "end_utc": end, "span_start_utc": start,
                        "span_end_utc": end, "all_day": False, "has_overrides": False,
                        "origin": "crm", "automation": False, "busy": True, "ical": ical,
                        "sequence": 0, "revision": 1, "created_at": now, "updated_at": now})
                entry_ids = session.scalars(
                    insert(DiaryEntry).returning(DiaryEntry.id, sort_by_parameter_order=True),
                    entries).all()
                items = [{"calendar_id": calendar_id, "entry_id": entry_id,
                          "href": f"old-{n}.ics", "uid": uid, "ical": ical, "etag": '"x"',
                          "start_utc": start, "end_utc": end, "revision": 1,
                          "deleted": False, "updated_at": now}
                         for entry_id, (n, uid, ical, start, end) in zip(entry_ids, rows_of,
                                                                         strict=True)]
                item_ids = session.scalars(
                    insert(PublishedItem).returning(PublishedItem.id,
                                                    sort_by_parameter_order=True),
                    items).all()
                session.execute(insert(Occurrence), [
                    {"item_id": item_id, "calendar_id": calendar_id, "start_utc": item["start_utc"],
                     "end_utc": item["end_utc"], "long": False}
                    for item_id, item in zip(item_ids, items, strict=True)])
            made += batch
        if store.engine.dialect.name == "postgresql":
            with store.engine.begin() as connection:
                connection.execute(text("ANALYZE"))
        print(f"  {name}: {size} entries", file=sys.stderr)


def median_ms(function: Callable[[], object], runs: int) -> float:
    function()  # warm: the first call pays for imports and caches
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def create_costs(store: Store, runs: int) -> tuple[float, float]:
    """Median ms of a CRM-side create with ``conflicts = allow`` and with ``warn``, taken in
    turns so a busy machine slows both alike."""
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    times: dict[str, list[float]] = {"allow": [], "warn": []}
    for n in range(runs):
        for setting in ("allow", "warn"):
            with store.transaction() as session:
                update_profile(session, get_user(session, "rep0"),
                               ProfileChanges(conflicts=setting))
            started = time.perf_counter()
            with store.transaction() as session:
                start = now + timedelta(days=2 + n % 7, hours=n % 9, minutes=7)
                create_entry(session, EntryDraft(
                    type_name="Meeting", title=f"Bench {setting} {n}", start=start,
                    end=start + timedelta(minutes=30), organizer="rep0",
                    attendees=("rep1",)))
            times[setting].append((time.perf_counter() - started) * 1000)
    return statistics.median(times["allow"]), statistics.median(times["warn"])


def measure(store: Store, runs: int) -> tuple[float, float, int, int, float, float]:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    with store.reading() as session:
        user = get_user(session, "rep0")
        month = (now, now + timedelta(days=31))
        fb = median_ms(lambda: vfreebusy(session, user, *month, 62), runs)
        periods = vfreebusy(session, user, *month, 62).count("FREEBUSY")
        fortnight = (now, now + timedelta(days=14))

        def query() -> list[object]:
            return list(find_availability(
                session, REPS, *fortnight, timedelta(minutes=30),
                default_hours="Mon-Fri 09:00-17:00 UTC", max_days=62))

        available = median_ms(query, runs)
        slots = len(query())
    allow, warn = create_costs(store, runs)
    return fb, available, periods, slots, allow, warn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--in-window", type=int, default=60)
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
            print(f"size {size} per rep:", file=sys.stderr)
            seed(store, size, args.in_window)
            rows.append((size, *measure(store, args.runs)))
            store.dispose()
    print("| entries per rep | free/busy, 1 rep, 1 month, ms | FREEBUSY lines | "
          "availability, 5 reps, 30 min, 2 weeks, ms | slots | create (allow), ms | "
          "create (warn), ms | conflict check adds, ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, fb, available, periods, slots, allow, warn in rows:
        print(f"| {size} | {fb:.2f} | {periods} | {available:.2f} | {slots} | {allow:.2f} | "
              f"{warn:.2f} | {warn - allow:.2f} |")
    first, last = rows[0], rows[-1]
    print(f"\nlargest/smallest: free/busy {last[1] / first[1]:.2f}x, "
          f"availability {last[2] / first[2]:.2f}x, conflict check "
          f"{(last[6] - last[5]) / max(first[6] - first[5], 0.01):.2f}x")


if __name__ == "__main__":
    main()
