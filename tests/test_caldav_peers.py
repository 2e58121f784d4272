"""The same database served by stock Radicale, and a full two-way sync with vdirsyncer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import caldav
import pytest
import requests
from caldav_peer import Gateway, Rep, event, free_port, new_rep
from sqlalchemy import select

from gateway.entries import EntryDraft, EntryEdit, create_entry, delete_entry, update_entry
from gateway.models import DiaryEntry

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stock_radicale(gateway: Gateway, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env["CRM_GATEWAY_DATABASE_URL"] = gateway.store.url
    env["CRM_GATEWAY_PATHS_DATA_DIR"] = str(tmp_path / "var")
    log = (tmp_path / "radicale.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(ROOT / "conf" / "radicale.ini"),
         "--server-hosts", f"127.0.0.1:{port}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.options(url, timeout=2)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "radicale.log").read_text()) from None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


def test_stock_radicale_serves_the_same_database(
    gateway: Gateway, rep: Rep, stock_radicale: str
) -> None:
    with gateway.store.transaction() as session:
        start = datetime(2026, 12, 9, 15, tzinfo=UTC)
        crm_uid = create_entry(session, EntryDraft(
            type_name="Meeting", title="Made in the CRM", start=start,
            end=start + timedelta(hours=1), organizer=rep.username)).uid
    with caldav.DAVClient(url=stock_radicale, username=rep.email, password=rep.password,
                          enable_rfc6764=False, require_tls=False) as client:
        calendars = {str(c.url).rstrip("/").rsplit("/", 1)[1]: c
                     for c in client.principal().calendars()}
        assert set(calendars) == {"meeting", "call", "invitations"}
        shown = calendars["meeting"].objects_by_sync_token(load_objects=True)
        assert [str(o.icalendar_component["uid"]) for o in shown] == [crm_uid]
        calendars["meeting"].save_event(event("via-stock@test", "Booked via stock Radicale"))
    # Written through stock Radicale, read back through the gateway.
    got = requests.get(f"{gateway.url}{rep.username}/meeting/", auth=rep.auth, timeout=10)
    assert "Booked via stock Radicale" in got.text


VDIRSYNCER_CONFIG = """
[general]
status_path = "{root}/status/"

[pair crm]
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
"""

SERIES_WITH_EXCEPTION = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VEVENT\r
UID:series@vdir\r
DTSTAMP:20261101T090000Z\r
DTSTART:20261103T140000Z\r
DTEND:20261103T150000Z\r
RRULE:FREQ=WEEKLY;COUNT=6\r
SUMMARY:Team sync\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:series@vdir\r
DTSTAMP:20261101T090000Z\r
RECURRENCE-ID:20261117T140000Z\r
DTSTART:20261118T140000Z\r
DTEND:20261118T150000Z\r
SUMMARY:Team sync (Wednesday)\r
END:VEVENT\r
END:VCALENDAR\r
"""


def vdirsyncer(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "vdirsyncer"
    done = subprocess.run([str(binary), "-c", str(root / "config"), *args], input="y\n" * 5,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def local_uids(root: Path) -> dict[str, str]:
    found = {}
    for path in (root / "local").glob("*.ics"):
        text = path.read_text()
        uid = next(line[4:] for line in text.splitlines() if line.startswith("UID:"))
        found[uid] = text
    return found


def crm_titles(gateway: Gateway, rep: Rep) -> dict[str, str]:
    with gateway.store.reading() as session:
        rows = session.execute(select(DiaryEntry.uid, DiaryEntry.title).join(
            DiaryEntry.owner).where(DiaryEntry.deleted_at.is_(None),
                                    DiaryEntry.owner.has(username=rep.username)))
        return {uid: title for uid, title in rows}


def test_vdirsyncer_two_way_sync_converges_in_one_sync(gateway: Gateway, tmp_path: Path) -> None:
    rep = new_rep(gateway.store)
    url = f"{gateway.url}{rep.username}/meeting/"
    (tmp_path / "local").mkdir()
    (tmp_path / "config").write_text(VDIRSYNCER_CONFIG.format(
        root=tmp_path, url=url, username=rep.username, password=rep.password))
    start = datetime(2026, 12, 10, 9, tzinfo=UTC)
    with gateway.store.transaction() as session:
        keep = create_entry(session, EntryDraft(type_name="Meeting", title="CRM keep",
                                                start=start, end=start + timedelta(hours=1),
                                                organizer=rep.username))
        doomed = create_entry(session, EntryDraft(type_name="Meeting", title="CRM doomed",
                                                  start=start, end=start + timedelta(hours=2),
                                                  organizer=rep.username))
        keep_id, doomed_id, keep_uid = keep.id, doomed.id, keep.uid
    requests.put(url + "series.ics", data=SERIES_WITH_EXCEPTION.encode(), auth=rep.auth,
                  timeout=10).raise_for_status()
    requests.put(url + "client.ics", data=event("client@vdir", "Client made").encode(),
                 auth=rep.auth, timeout=10).raise_for_status()
    vdirsyncer(tmp_path, "discover")
    vdirsyncer(tmp_path, "sync")
    local = local_uids(tmp_path)
    assert set(local) == {keep_uid, doomed.uid, "series@vdir", "client@vdir"}
    assert "RECURRENCE-ID:20261117T140000Z" in local["series@vdir"]

    # Changes on both sides, then one sync.
    with gateway.store.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, keep_id),
                     EntryEdit(title="CRM kept and renamed"))
        delete_entry(session, session.get_one(DiaryEntry, doomed_id))
    files = {uid: path for path in (tmp_path / "local").glob("*.ics")
             for uid in [next(line[4:] for line in path.read_text().splitlines()
                              if line.startswith("UID:"))]}
    files["client@vdir"].write_text(event("client@vdir", "Client edited locally"))
    files["series@vdir"].unlink()
    (tmp_path / "local" / "new-local.ics").write_text(event("local@vdir", "Made locally"))
    vdirsyncer(tmp_path, "sync")

    assert crm_titles(gateway, rep) == {
        keep_uid: "CRM kept and renamed", "client@vdir": "Client edited locally",
        "local@vdir": "Made locally"}
    local = local_uids(tmp_path)
    assert set(local) == {keep_uid, "client@vdir", "local@vdir"}
    assert "SUMMARY:CRM kept and renamed" in local[keep_uid]

    # Converged: another sync changes nothing on either side.
    before = (crm_titles(gateway, rep), local_uids(tmp_path))
    with gateway.store.reading() as session:
        revisions = sorted(session.scalars(select(DiaryEntry.revision).where(
            DiaryEntry.owner.has(username=rep.username))))
    vdirsyncer(tmp_path, "sync")
    assert (crm_titles(gateway, rep), local_uids(tmp_path)) == before
    with gateway.store.reading() as session:
        assert sorted(session.scalars(select(DiaryEntry.revision).where(
            DiaryEntry.owner.has(username=rep.username)))) == revisions
