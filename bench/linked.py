"""Linked calendars benchmark: the initial push of a diary and a no-change pass, per server.

    .venv/bin/python -m bench.linked [--entries 1000] [--repeat 5]

For each stock CalDAV server the test suite uses (Radicale, Xandikos; tests/peers/
linked_servers.py), on loopback, into a fresh SQLite store of ``--entries`` CRM entries:

- **PUT script**, the anchor for the push: a ``requests`` session PUTting the same objects
  (the gateway's own rendering of each entry) with ``If-None-Match: *`` into another calendar;
- **initial push**: one sync pass of the link (``run_pass``): every entry to the target;
- **no-change pass**: the median of ``--repeat`` passes with nothing changed on either side,
  with the number of requests each made (one sync-collection REPORT per linked calendar);
- **REPORT script**, its anchor: one plain sync-collection REPORT per calendar with a
  current token. What the server takes to answer it is the server's; the pass's own share
  (the difference) must stay under 100 ms.

Progress goes to stderr, the Markdown table to stdout. The run fails (exit 1) if the push
did not put every entry on the server, a no-change pass changed anything, made more than
one request per calendar, or took over 100 ms beyond the REPORT script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project root importable instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import requests
from peers.linked_servers import (
    CalServer,
    make_calendar,
    radicale_server,
    running,
    xandikos_server,
)
from sqlalchemy import select

from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, create_entry
from gateway.linked_calendars import (
    RemoteCalendar,
    create_link,
    lease_links,
    load_link,
    record_success,
)
from gateway.models import DiaryType, PublishedItem, User
from gateway.secrets import SecretBox
from gateway.users import UserChanges, create_user, update_user
from linked.sync import PassReport, run_pass

KEY = "bench key"
SYNC = ('<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{}'
        "</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
        "</D:sync-collection>")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_store(folder: Path, entries: int) -> Store:
    store = Store(f"sqlite:///{folder / 'crm.sqlite3'}")
    store.upgrade()
    start = datetime(2026, 1, 5, 8, tzinfo=UTC)
    with store.transaction() as session:
        meeting = create_type(session, "Meeting", syncable=True)
        user = create_user(session, "bench", "bench@acme.example", name="Bench Rep")
        update_user(session, user, UserChanges(diary_sync=True))
        for n in range(entries):
            when = start + timedelta(hours=n % 9, days=n // 9)
            create_entry(session, EntryDraft(type_name=meeting.name, title=f"Meeting {n}",
                                             start=when, end=when + timedelta(minutes=45),
                                             organizer="bench"))
    return store


def link(store: Store, server: CalServer) -> int:
    target = make_calendar(server, "crm", "CRM")
    personal = make_calendar(server, "personal", "Personal")
    with store.transaction() as session:
        user = session.scalar(select(User).where(User.username == "bench"))
        meeting = session.scalar(select(DiaryType))
        assert user is not None and meeting is not None
        made = create_link(session, user, url=server.url, login=server.login,
                           password=server.password, provider="custom", box=SecretBox(KEY),
                           principal_url=None, home_url=server.calendar_home,
                           target=RemoteCalendar(target, "CRM"),
                           sources=[RemoteCalendar(personal, "Personal")], source_type=meeting)
        return made.id


def one_pass(store: Store, link_id: int) -> tuple[float, PassReport]:
    owner = "bench"
    now = datetime.now(UTC)
    assert lease_links(store, owner, now, limit=1, due_only=False) == [link_id]
    target = load_link(store, link_id, SecretBox(KEY))
    started = time.perf_counter()
    report = run_pass(store, target, owner, timeout=60)
    elapsed = time.perf_counter() - started
    record_success(store, link_id, owner, now, next_sync_at=now)
    return elapsed, report


def put_script(server: CalServer, store: Store) -> float:
    anchor = make_calendar(server, "anchor", "Anchor")
    with store.reading() as session:
        texts = list(session.scalars(select(PublishedItem.ical).order_by(PublishedItem.id)))
    http = requests.Session()
    http.auth = server.auth()
    started = time.perf_counter()
    for n, text in enumerate(texts):
        answer = http.put(f"{anchor}{n}.ics", data=text.encode(), timeout=60,
                          headers={"If-None-Match": "*", "Content-Type": "text/calendar"})
        assert answer.status_code == 201, answer.status_code
    return time.perf_counter() - started


def report_script(server: CalServer, repeat: int) -> float:
    http = requests.Session()
    http.auth = server.auth()
    headers = {"Content-Type": "application/xml"}
    tokens = {}
    for slug in ("crm", "personal"):
        first = http.request("REPORT", f"{server.calendar_home}{slug}/", data=SYNC.format(""),
                             headers=headers, timeout=60)
        tokens[slug] = first.text.split("sync-token>")[1].split("<")[0]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for slug, token in tokens.items():
            http.request("REPORT", f"{server.calendar_home}{slug}/", data=SYNC.format(token),
                         headers=headers, timeout=60)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench(kind: str, entries: int, repeat: int, folder: Path) -> dict[str, float]:
    make = radicale_server if kind == "radicale" else xandikos_server
    server = make(folder / kind)
    with running(server):
        if kind == "radicale":
            requests.request("PROPFIND", server.calendar_home, auth=server.auth(),
                             headers={"Depth": "0"}, timeout=10)
        store = make_store(folder / kind, entries)
        link_id = link(store, server)
        say(f"{kind}: PUT script, {entries} objects")
        script = put_script(server, store)
        say(f"{kind}: initial push")
        push, report = one_pass(store, link_id)
        if report.pushed != entries:
            raise SystemExit(f"{kind}: pushed {report.pushed} of {entries}")
        one_pass(store, link_id)  # sees its own writes listed once, takes none
        idle = []
        for _ in range(repeat):
            elapsed, report = one_pass(store, link_id)
            if report.pushed or report.fetched or report.deleted or report.removed:
                raise SystemExit(f"{kind}: a no-change pass changed something: {report}")
            idle.append(elapsed)
        anchor = report_script(server, repeat)
        store.dispose()
    return {"script": script, "push": push, "idle": statistics.median(idle),
            "requests": report.requests, "report": anchor}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("radicale", "xandikos"):
            rows.append((kind, bench(kind, args.entries, args.repeat, Path(tmp))))
    print(f"| server | PUT script, {args.entries} | initial push | ratio | no-change pass | "
          "requests | REPORT script | ratio | the gateway's own share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, r in rows:
        own = r["idle"] - r["report"]
        print(f"| {kind} | {r['script']:.2f} s | {r['push']:.2f} s | "
              f"{r['push'] / r['script']:.2f}x | {r['idle'] * 1000:.1f} ms | "
              f"{r['requests']:.0f} | {r['report'] * 1000:.1f} ms | "
              f"{r['idle'] / r['report']:.2f}x | {own * 1000:.1f} ms |")
    # The server's own answer to a sync-collection REPORT may cost O(calendar) (Radicale
    # hashes every item): what must stay small is the pass beyond that anchor.
    slow = [kind for kind, r in rows if r["idle"] - r["report"] > 0.1 or r["requests"] > 2]
    if slow:
        print(f"no-change pass over 100 ms beyond the server's REPORT, or more than one "
              f"request per calendar, on: {', '.join(slow)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
