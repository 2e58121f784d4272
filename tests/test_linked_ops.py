"""Operating linked calendars: reset, dedupe, an account's server down, two sync processes."""

from __future__ import annotations

import re
import time
from pathlib import Path

from linked_world import World, event
from peers import TEST_SECRET_KEY
from peers.linked_servers import start_sync_process
from sqlalchemy import func, select

from gateway.models import LinkedObject

IDLE = dict(pushed=0, deleted=0, fetched=0, removed=0, busy=0)


def test_reset_reconciles_by_uid_without_duplicates(linked: World) -> None:
    assert linked.link()[0] == 0
    for n in range(3):
        linked.entry(f"Meeting {n}", hours=n)
    linked.put_remote("personal", "lunch.ics", event("lunch-1", "Lunch"))
    linked.sync()
    entries_before = sorted(linked.entries())
    code, out, _ = linked.run("calendars", "reset", linked.username)
    assert code == 0 and "4 objects forgotten" in out
    linked.sync()
    assert linked.remote_titles("crm") == ["Meeting 0", "Meeting 1", "Meeting 2"]
    assert linked.remote_titles("personal") == ["Lunch"]
    assert sorted(linked.entries()) == entries_before
    with linked.store.reading() as session:
        assert session.scalar(select(func.count()).select_from(LinkedObject)) == 4
    linked.sync()
    assert linked.counts() == IDLE


def test_dedupe_removes_account_side_twins_and_keeps_what_the_crm_knows(linked: World) -> None:
    assert linked.link()[0] == 0
    linked.entry("Kick-off")
    linked.sync()
    ours, (_, text) = next(iter(linked.remote("crm").items()))
    twin = re.sub(r"UID:[^\r\n]*", "UID:twin-of-kick-off", text, count=1)
    linked.put_remote("crm", "twin.ics", twin)
    linked.put_remote("personal", "a.ics", event("lunch-a", "Lunch"))
    linked.sync()  # the first copy is fetched and known
    linked.put_remote("personal", "b.ics", event("lunch-b", "Lunch"))
    code, out, _ = linked.run("calendars", "dedupe", linked.username, "--dry-run")
    assert code == 0 and "would remove 2 duplicates" in out
    assert "twin.ics" in out and "b.ics" in out
    assert len(linked.remote("crm")) == 2 and len(linked.remote("personal")) == 2
    code, out, _ = linked.run("calendars", "dedupe", linked.username)
    assert code == 0 and "removed 2 duplicates" in out
    assert list(linked.remote("crm")) == [ours]
    assert [h.rsplit("/", 1)[1] for h in linked.remote("personal")] == ["a.ics"]
    assert linked.counts() == IDLE
    assert sorted(linked.entries()) == ["Kick-off", "Lunch"]


def test_a_server_that_goes_down_and_comes_back(linked: World) -> None:
    assert linked.link()[0] == 0
    linked.server.stop()
    linked.entry("While it was down")
    code, out, _ = linked.run("calendars", "sync", linked.username, "--now")
    assert code == 1 and "failed" in out
    show = linked.run("calendars", "show", linked.username)[1]
    assert "last error" in show and "1 failures in a row" in show
    linked.server.start()
    assert linked.counts()["pushed"] == 1
    assert linked.remote_titles("crm") == ["While it was down"]
    show = linked.run("calendars", "show", linked.username)[1]
    assert "failures in a row" not in show and "last success never" not in show


def test_two_sync_processes_never_sync_one_link_at_once(
    linked: World, database_url: str, tmp_path: Path
) -> None:
    assert linked.link()[0] == 0
    for n in range(12):
        linked.entry(f"Call {n}", hours=n)
    linked.put_remote("personal", "lunch.ics", event("lunch-1", "Lunch"))
    first = start_sync_process(database_url, tmp_path / "a", TEST_SECRET_KEY)
    second = start_sync_process(database_url, tmp_path / "b", TEST_SECRET_KEY)
    try:
        deadline = time.monotonic() + 60
        while len(linked.remote("crm")) < 12 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(6)  # several more passes, each process leasing in turn
    finally:
        first.stop()
        second.stop()
    logs = first.log() + second.log()
    passes = re.findall(r"pushed (\d+), deleted \d+, fetched (\d+)", logs)
    assert len(passes) >= 3, logs
    # Each entry pushed once and the event fetched once over all passes of both processes:
    # a pass run twice at once would have pushed or fetched something twice.
    assert sum(int(p) for p, _ in passes) == 12, logs
    assert sum(int(f) for _, f in passes) == 1, logs
    assert set(re.findall(r"(\d+) conflicts", logs)) == {"0"}
    assert "Traceback" not in logs and "threads still running" not in logs
    assert len(linked.remote("crm")) == 12
    assert sorted(linked.entries()).count("Lunch") == 1
