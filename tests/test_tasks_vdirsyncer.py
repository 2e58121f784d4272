"""A task list synced two-way with vdirsyncer, configured as task apps' users configure it.

vdirsyncer's ``caldav`` storage with ``item_types = ["VTODO"]`` lists the collection with a
VTODO calendar-query (the path DAVx5's tasks.org/jtx sync takes too); one sync must carry
changes from both sides, and a second one must change nothing on either side.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from caldav_peer import Gateway, Rep, event, new_rep, start_gateway, stop_gateway
from sqlalchemy import select
from vdirsyncer.exceptions import NotFoundError, PreconditionFailed
from vdirsyncer.storage.dav import CalDAVStorage
from vdirsyncer.vobject import Item

from gateway.diary_types import create_type
from gateway.entries import (
    EntryDraft,
    EntryEdit,
    TaskDraft,
    create_entry,
    delete_entry,
    update_entry,
)
from gateway.models import DiaryEntry, DiaryType

CONFIG = """
[general]
status_path = "{root}/status/"

[pair tasks]
a = "local"
b = "remote"
collections = null
conflict_resolution = "b wins"

[storage local]
type = "filesystem"
path = "{root}/local/"
fileext = ".ics"

[storage remote]
type = "caldav"
url = "{url}"
username = "{username}"
password = "{password}"
item_types = ["VTODO"]
"""

TODO = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VTODO\r
UID:{uid}\r
DTSTAMP:20261201T090000Z\r
DUE:20261215T170000Z\r
SUMMARY:{summary}\r
STATUS:{status}\r
END:VTODO\r
END:VCALENDAR\r
"""


def todo(uid: str, summary: str, status: str = "NEEDS-ACTION") -> str:
    return TODO.format(uid=uid, summary=summary, status=status)


@pytest.fixture(scope="module")
def gateway(module_database_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Gateway]:
    running = start_gateway(module_database_url, tmp_path_factory.mktemp("gateway"))
    with running.store.transaction() as session:
        if session.query(DiaryType).filter_by(name="Follow-ups").first() is None:
            create_type(session, "Follow-ups", kind="task")
    yield running
    stop_gateway(running)


def vdirsyncer(root: Path, *args: str) -> None:
    binary = Path(sys.executable).parent / "vdirsyncer"
    done = subprocess.run([str(binary), "-c", str(root / "config"), *args], input="y\n" * 5,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def local(root: Path) -> dict[str, tuple[Path, str]]:
    found = {}
    for path in (root / "local").glob("*.ics"):
        text = path.read_text()
        uid = next(line[4:] for line in text.splitlines() if line.startswith("UID:"))
        found[uid] = (path, text)
    return found


def crm(gateway: Gateway, rep: Rep) -> dict[str, tuple[str, str | None, int]]:
    with gateway.store.reading() as session:
        rows = session.execute(
            select(DiaryEntry.uid, DiaryEntry.title, DiaryEntry.status, DiaryEntry.revision)
            .where(DiaryEntry.deleted_at.is_(None),
                   DiaryEntry.owner.has(username=rep.username)))
        return {uid: (title, status, revision) for uid, title, status, revision in rows}


def test_vdirsyncer_syncs_a_task_list_both_ways_and_converges(
        gateway: Gateway, tmp_path: Path) -> None:
    rep = new_rep(gateway.store)
    url = f"{gateway.url}{rep.username}/follow-ups/"
    (tmp_path / "local").mkdir()
    (tmp_path / "config").write_text(CONFIG.format(root=tmp_path, url=url,
                                                   username=rep.username,
                                                   password=rep.password))
    due = datetime(2026, 12, 12, 12, tzinfo=UTC)
    with gateway.store.transaction() as session:
        keep = create_entry(session, EntryDraft(
            type_name="Follow-ups", title="Chase the invoice", start=None, end=None,
            organizer=rep.username, task=TaskDraft(due=due, priority=1)))
        doomed = create_entry(session, EntryDraft(
            type_name="Follow-ups", title="Old follow-up", start=None, end=None,
            organizer=rep.username))
        keep_id, keep_uid, doomed_id, doomed_uid = keep.id, keep.uid, doomed.id, doomed.uid
    requests.put(url + "client.ics", data=todo("client@vdir", "Made in the phone").encode(),
                 auth=rep.auth, timeout=10).raise_for_status()
    vdirsyncer(tmp_path, "discover")
    vdirsyncer(tmp_path, "sync")
    assert set(local(tmp_path)) == {keep_uid, doomed_uid, "client@vdir"}
    assert "PRIORITY:1" in local(tmp_path)[keep_uid][1]

    # Both sides change, then one sync: the CRM completes one and deletes one; locally one
    # is completed, one made, and the CRM's deleted one is gone.
    with gateway.store.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, keep_id),
                     EntryEdit(status="COMPLETED"))
        delete_entry(session, session.get_one(DiaryEntry, doomed_id))
    files = local(tmp_path)
    files["client@vdir"][0].write_text(todo("client@vdir", "Made in the phone", "COMPLETED")
                                       .replace("STATUS:COMPLETED\r\n", "STATUS:COMPLETED\r\n"
                                                "COMPLETED:20261211T080000Z\r\n"))
    (tmp_path / "local" / "made-locally.ics").write_text(todo("local@vdir", "Made locally"))
    vdirsyncer(tmp_path, "sync")

    rows = crm(gateway, rep)
    assert {uid: row[:2] for uid, row in rows.items()} == {
        keep_uid: ("Chase the invoice", "COMPLETED"),
        "client@vdir": ("Made in the phone", "COMPLETED"),
        "local@vdir": ("Made locally", "NEEDS-ACTION"),
    }
    with gateway.store.reading() as session:
        client_row = session.scalar(select(DiaryEntry).where(DiaryEntry.uid == "client@vdir"))
        assert client_row is not None
        assert client_row.completed_utc == datetime(2026, 12, 11, 8, tzinfo=UTC)
    files = local(tmp_path)
    assert set(files) == set(rows)
    assert "STATUS:COMPLETED" in files[keep_uid][1]

    # Converged: a further sync changes nothing on either side.
    before = {uid: text for uid, (_, text) in files.items()}
    vdirsyncer(tmp_path, "sync")
    assert crm(gateway, rep) == rows
    assert {uid: text for uid, (_, text) in local(tmp_path).items()} == before


# --- vdirsyncer's storage operations on a task list, as its own storage tests run them -------


def storage_run(gateway: Gateway, rep: Rep, operations: Callable[[CalDAVStorage], Any],
                **options: Any) -> Any:
    """Run ``operations`` (a coroutine function) on vdirsyncer's CalDAV storage of the rep's
    task list, with its own aiohttp session."""

    async def run() -> Any:
        async with aiohttp.TCPConnector(limit=4) as connector:
            storage = CalDAVStorage(url=f"{gateway.url}{rep.username}/follow-ups/",
                                    username=rep.username, password=rep.password,
                                    connector=connector, **options)
            return await operations(storage)

    return asyncio.run(run())


def test_vdirsyncer_storage_uploads_updates_and_deletes_tasks(gateway: Gateway) -> None:
    rep = new_rep(gateway.store)

    async def operations(storage: CalDAVStorage) -> None:
        href, etag = await storage.upload(Item(todo("op@vdir", "First")))
        item, got_etag = await storage.get(href)
        assert got_etag == etag and item.uid == "op@vdir"
        assert "SUMMARY:First" in item.raw
        assert [(h, e) async for h, e in storage.list()] == [(href, etag)]
        with pytest.raises(aiohttp.ClientResponseError, match="409"):  # no-uid-conflict
            await storage.upload(Item(todo("op@vdir", "Again")))
        new_etag = await storage.update(href, Item(todo("op@vdir", "Second")), etag)
        assert new_etag != etag
        with pytest.raises(PreconditionFailed):
            await storage.update(href, Item(todo("op@vdir", "Stale")), etag)
        fetched = [(h, i.uid) async for h, i, _e in storage.get_multi([href])]
        assert fetched == [(href, "op@vdir")]
        with pytest.raises(PreconditionFailed):
            await storage.delete(href, etag)
        await storage.delete(href, new_etag)
        with pytest.raises(NotFoundError):
            await storage.get(href)
        assert [h async for h, _e in storage.list()] == []

    storage_run(gateway, rep, operations, item_types=("VTODO",))
    assert crm(gateway, rep) == {}


def test_vdirsyncer_item_types_and_date_range_on_a_task_list(gateway: Gateway) -> None:
    rep = new_rep(gateway.store)
    uploaded: dict[str, str] = {}

    async def upload(storage: CalDAVStorage) -> None:
        for uid, summary in (("soon@vdir", "Due soon"), ("undated@vdir", "Someday")):
            body = todo(uid, summary)
            if uid == "undated@vdir":
                body = body.replace("DUE:20261215T170000Z\r\n", "")
            href, _etag = await storage.upload(Item(body))
            uploaded[uid] = href
        with pytest.raises(aiohttp.ClientResponseError, match="403"):
            await storage.upload(Item(event("event@vdir", "Not a task")))

    storage_run(gateway, rep, upload)

    async def listing(storage: CalDAVStorage) -> set[str]:
        return {href async for href, _etag in storage.list()}

    assert storage_run(gateway, rep, listing, item_types=("VTODO",)) == set(uploaded.values())
    assert storage_run(gateway, rep, listing, item_types=("VEVENT",)) == set()
    # vdirsyncer's start_date/end_date: a VTODO time range (RFC 4791 9.9).
    ranged = {"start_date": datetime(2026, 12, 14, tzinfo=UTC),
              "end_date": datetime(2026, 12, 16, tzinfo=UTC)}
    assert storage_run(gateway, rep, listing, item_types=("VTODO",), **ranged) == set(
        uploaded.values())
    later = {"start_date": datetime(2027, 1, 1, tzinfo=UTC),
             "end_date": datetime(2027, 1, 2, tzinfo=UTC)}
    assert storage_run(gateway, rep, listing, item_types=("VTODO",), **later) == {
        uploaded["undated@vdir"]}
    assert {uid for uid in crm(gateway, rep)} == {"soon@vdir", "undated@vdir"}
