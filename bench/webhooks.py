"""Webhook outbox benchmark: what the outbox adds to a CRM-side entry create.

    .venv/bin/python -m bench.webhooks [--rounds 10] [--block 20]
    .venv/bin/python -m bench.webhooks --database postgresql+psycopg://postgres@127.0.0.1/test

The operation is ``entries.create_entry`` in its own transaction (what ``crm-gateway entries
add`` and the API run), on a scratch database, in alternating blocks: with no webhook
endpoint (the anchor), then with two endpoints listening to ``entry.*`` (each create then
writes one event and two deliveries in the same transaction), and so on for ``--rounds``
rounds, so both modes see the same table sizes and the same neighbours. Times are CPU
(``time.process_time``) of this process; on SQLite that is the whole write, on PostgreSQL
the server's share is not counted. Target: the outbox adds < 20 % to a create.
Progress goes to stderr, the Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project root importable instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, create_entry
from gateway.secrets import SecretBox
from gateway.users import UserChanges, create_user, update_user
from gateway.webhooks import add_endpoint, remove_endpoint

TARGET = 0.20
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BOX = SecretBox("the benchmark's key")


class Scratch:
    def __init__(self, database_url: str) -> None:
        self.store = Store(database_url)
        self.store.upgrade()
        self.user = f"bench{time.time_ns()}"
        self.count = 0
        with self.store.transaction() as session:
            user = create_user(session, self.user, f"{self.user}@crm.example", name="Bench")
            update_user(session, user, UserChanges(diary_sync=True))
            self.type_name = create_type(session, f"Bench {self.user}", syncable=True).name
        self.endpoints: list[int] = []

    def listen(self, on: bool) -> None:
        with self.store.transaction() as session:
            if on:
                self.endpoints = [
                    add_endpoint(session, f"http://127.0.0.1:9/{n}", ["entry.*"],
                                 box=BOX).endpoint.id for n in range(2)]
            else:
                for endpoint_id in self.endpoints:
                    remove_endpoint(session, endpoint_id)
                self.endpoints = []

    def create(self) -> float:
        """One create in its own transaction; its CPU milliseconds."""
        self.count += 1
        start = START + timedelta(minutes=30 * self.count)
        draft = EntryDraft(type_name=self.type_name, title=f"Bench {self.count}", start=start,
                           end=start + timedelta(minutes=30), organizer=self.user)
        started = time.process_time()
        with self.store.transaction() as session:
            create_entry(session, draft)
        return (time.process_time() - started) * 1000


def run(database_url: str, rounds: int, block: int) -> dict[str, list[float]]:
    scratch = Scratch(database_url)
    times: dict[str, list[float]] = {"no endpoint": [], "two endpoints": []}
    for _ in range(3):
        scratch.create()  # warm-up: caches, pool, statement compilation
    for number in range(rounds):
        for mode, on in (("no endpoint", False), ("two endpoints", True)):
            scratch.listen(on)
            times[mode] += [scratch.create() for _ in range(block)]
        print(f"[{time.strftime('%H:%M:%S')}] round {number + 1}/{rounds}", file=sys.stderr,
              flush=True)
    scratch.listen(False)
    scratch.store.dispose()
    return times


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A database of its own on the server of ``server_url`` (SQLite: a temporary file),
    dropped afterwards, so the benchmark leaves the server as it found it."""
    if not server_url:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        return
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"crmgw_bench_webhooks_{os.getpid()}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--database", default="",
                        help="a PostgreSQL server URL; the run uses a scratch database there "
                             "(default: SQLite)")
    args = parser.parse_args(argv)
    with scratch_database(args.database) as url:
        times = run(url, max(1, args.rounds), max(1, args.block))
    anchor = statistics.median(times["no endpoint"])
    print("| entry create (one transaction) | median CPU ms | p90 CPU ms | x no endpoint |")
    print("|---|---|---|---|")
    for mode, values in times.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        print(f"| {mode} | {statistics.median(values):.2f} | {p90:.2f} | "
              f"{statistics.median(values) / anchor:.2f} |")
    added = statistics.median(times["two endpoints"]) / anchor - 1
    met = added < TARGET
    print(f"\nthe outbox adds {added * 100:.0f} % to a create: target (< {TARGET * 100:.0f} %) "
          f"{'met' if met else 'missed'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
