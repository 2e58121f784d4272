"""JSON API benchmark: a page of one user's entries and an entry created, at two sizes, with
the same operations through CalDAV in the same run.

    .venv/bin/python -m bench.api [--sizes 10000,100000] [--runs 30]
    .venv/bin/python -m bench.api --gateway-db postgresql+psycopg://postgres@127.0.0.1:5432/test

The smallest size's calendar (bench/calgen.py) is loaded into a scratch gateway
(bench/gateway_target.py: the real service path of a client PUT), ``serve --only http`` runs
it, and an admin API token is issued in its database; for each larger size the entries are
copied in SQL (bench/api_clone.py) while the same server runs. Timed over real HTTP with a
keep-alive ``requests.Session``, median of ``--runs``:

- ``GET /api/v1/entries?owner=bench&limit=50`` from a cursor in the middle of the table (a
  deep page: what OFFSET would make O(table));
- ``POST /api/v1/entries`` (an entry published to the user's calendar);
- CalDAV, the same user's calendar: ``calendar-multiget`` of 50 hrefs, and a PUT creating an
  event.

The report gives each median per size, the ratio largest/smallest size (the targets: a page
under 10 ms, 100k within 1.5x of 10k), and whether the targets were met. Progress goes to
stderr, the Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project root importable instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import requests
from sqlalchemy import func, select

from bench import calgen
from bench.api_clone import grow
from bench.gateway_target import USER, GatewayTarget
from bench.requests_caldav import CalDAVClient
from gateway import api_tokens
from gateway.db import Store
from gateway.models import DiaryEntry

PAGE = 50
MAX_PAGE_MS = 10.0
MAX_SCALING = 1.5
ROWS = (("page", f"API: GET /entries, {PAGE} per page, deep cursor"),
        ("create", "API: POST /entries"),
        ("multiget", f"CalDAV: calendar-multiget, {PAGE} hrefs"),
        ("put", "CalDAV: PUT creating an event"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_cpu_ms(pid: int) -> float:
    """CPU time (user + system) the server process has used so far, in ms (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def timed(call: Callable[[], requests.Response | None], runs: int,
          pid: int) -> tuple[float, float]:
    """The median wall milliseconds of ``call`` over ``runs`` (after one untimed run), and
    the server's mean CPU milliseconds per call: on a shared machine the second is the
    steadier measure of what a request costs."""
    call()
    samples = []
    cpu_before = server_cpu_ms(pid)
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(samples), (server_cpu_ms(pid) - cpu_before) / runs


def cursor_after(entry_id: int) -> str:
    # The API's cursors are opaque to clients; the bench knows their shape to jump mid-table.
    return base64.urlsafe_b64encode(f"k{entry_id}".encode()).decode()


def measure_all(sizes: list[int], runs: int,
                database: str | None) -> dict[int, dict[str, float]]:
    """Load the smallest size for real, measure, grow the calendar in SQL to each larger
    size (a multiple of the smallest) and measure again, on the same running server."""
    base = sizes[0]
    events = calgen.generate(base)
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        target = GatewayTarget(Path(scratch), database)
        try:
            log(f"{base} events: loading through the PUT path")
            calendar_url = target.start(events)
            store = Store(target.database_url)
            with store.transaction() as session:
                token = api_tokens.create_token(session, "bench").token
            have = base
            for size in sizes:
                if size != have:
                    log(f"growing to {size} entries (copies in SQL)")
                    with store.reading() as session:
                        have = int(session.scalar(select(func.count()).select_from(DiaryEntry))
                                   or 0)
                    grow(store, max(1, round(size / have)))
                    have = size
                results[size] = measure(store, calendar_url, token, target, events, runs, size)
            store.dispose()
            return results
        finally:
            target.stop()


def measure(store: Store, calendar_url: str, token: str, target: GatewayTarget,
            events: list[calgen.CalEvent], runs: int, size: int) -> dict[str, float]:
    with store.reading() as session:
        ids = select(DiaryEntry.id).where(DiaryEntry.deleted_at.is_(None)).order_by(
            DiaryEntry.id)
        total = int(session.scalar(select(func.count()).select_from(ids.subquery())) or 0)
        middle = int(session.scalar(ids.offset(total // 2).limit(1)) or 0)
    log(f"{size}: {total} live entries; the timed page starts after entry {middle}")
    base = calendar_url.split(f"/{USER}/")[0] + "/api/v1"
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    page_url = f"{base}/entries?owner={USER}&limit={PAGE}&cursor={cursor_after(middle)}"

    def page() -> requests.Response:
        answer = api.get(page_url, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["items"]) == PAGE, \
            answer.text[:300]
        return answer

    starts = iter(range(size * 10, size * 10 + 10**6))

    def create() -> requests.Response:
        start = datetime(2030, 1, 1, 9, tzinfo=UTC) + timedelta(hours=next(starts))
        answer = api.post(f"{base}/entries", timeout=30, json={
            "type": "Bench", "title": "Bench call", "organizer": USER,
            "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
        assert answer.status_code == 201, answer.text[:300]
        return answer

    dav = CalDAVClient(calendar_url, target.credentials)
    names = sorted(e.href for e in random.Random(size).sample(events, PAGE))
    fresh = calgen.new_events(size, runs + 1)

    def put() -> None:
        event = next(fresh)
        dav.put(event.href, event.text)

    assert target.process is not None
    pid = target.process.pid
    timings = {
        "page": timed(page, runs, pid),
        "create": timed(create, runs, pid),
        "multiget": timed(lambda: (dav.multiget(names), None)[1], runs, pid),
        "put": timed(put, runs, pid),
    }
    results = {key: wall for key, (wall, _cpu) in timings.items()}
    results.update({f"{key}_cpu": cpu for key, (_wall, cpu) in timings.items()})
    dav.close()
    api.close()
    for key, label in ROWS:
        log(f"  {size}: {label}: median {results[key]:.1f} ms, server CPU "
            f"{results[key + '_cpu']:.1f} ms")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--gateway-db", default=None,
                        help="a PostgreSQL server URL (default: SQLite in a scratch folder)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results = measure_all(sizes, args.runs, args.gateway_db)
    small, large = sizes[0], sizes[-1]
    print(f"| operation | {' | '.join(f'{s}: p50 ms (server CPU ms)' for s in sizes)} "
          f"| ratio {large}/{small} p50 (CPU) |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for key, label in ROWS:
        ratio = results[large][key] / results[small][key]
        cpu_ratio = results[large][key + "_cpu"] / max(results[small][key + "_cpu"], 0.01)
        cells = " | ".join(f"{results[s][key]:.1f} ({results[s][key + '_cpu']:.1f})"
                           for s in sizes)
        print(f"| {label} | {cells} | {ratio:.2f} ({cpu_ratio:.2f}) |")
    met = True
    for key in ("page", "create"):
        ratio = results[large][key] / results[small][key]
        ok = ratio <= MAX_SCALING
        met &= ok
        print(f"- {key}: {large}/{small} = {ratio:.2f} (target <= {MAX_SCALING}): "
              f"{'met' if ok else 'MISSED'}")
    fast = results[large]["page"] <= MAX_PAGE_MS
    met &= fast
    print(f"- page p50 at {large}: {results[large]['page']:.1f} ms (target < {MAX_PAGE_MS} "
          f"ms): {'met' if fast else 'MISSED'}; server CPU per page "
          f"{results[large]['page_cpu']:.1f} ms; load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
