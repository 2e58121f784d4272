"""A rep, a CRM on the test database, and the rep's own calendar account on a real server.

``World`` drives the gateway through its CLI (``crm-gateway calendars ...``) in-process and
looks at the account through plain HTTP, as the rep's own calendar app would.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from peers import TEST_SECRET_KEY
from peers.linked_servers import CalServer, make_calendar, radicale_server, xandikos_server
from sqlalchemy import select

from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, EntryEdit, create_entry, delete_entry, update_entry
from gateway.models import DiaryEntry, DiaryType, LinkedObject
from gateway.profiles import ProfileChanges, update_profile
from gateway.publication import publish_user
from gateway.users import UserChanges, create_user, get_user, update_user

PASSWORD_ENV = "LINKED_TEST_PASSWORD"
_names = itertools.count()
PROPFIND_ETAGS = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
                  "</D:prop></D:propfind>")

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Rep's phone//EN\r\nBEGIN:VEVENT\r\n"
    "UID:{uid}\r\nDTSTAMP:{stamp}\r\nLAST-MODIFIED:{stamp}\r\nDTSTART:{start}\r\n"
    "DTEND:{end}\r\nSUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@pytest.fixture(params=["radicale", "xandikos"])
def cal_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CalServer]:
    make = radicale_server if request.param == "radicale" else xandikos_server
    running = make(tmp_path / request.param)
    running.start()
    if running.kind == "radicale":  # Radicale makes a principal's home on first login
        requests.request("PROPFIND", running.calendar_home, auth=running.auth(),
                         headers={"Depth": "0"}, timeout=10)
    make_calendar(running, "personal", "Personal")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def radicale_account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalServer]:
    """One stock Radicale for a module's tests, its home made and a "Personal" calendar in it
    (tests that need a server of their own use ``cal_server``)."""
    server = radicale_server(tmp_path_factory.mktemp("radicale"))
    server.start()
    requests.request("PROPFIND", server.calendar_home, auth=server.auth(),  # makes the home
                     headers={"Depth": "0"}, timeout=10)
    make_calendar(server, "personal", "Personal")
    yield server
    server.stop()


@dataclass
class World:
    store: Store
    server: CalServer
    cli: object
    username: str
    email: str

    def run(self, *argv: str) -> tuple[int, str, str]:
        return self.cli(*argv)  # type: ignore[operator, no-any-return]

    def link(self, *extra: str) -> tuple[int, str, str]:
        return self.run("calendars", "link", self.username, "--url", self.server.url,
                        "--login", self.server.login, "--password-env", PASSWORD_ENV,
                        "--source", "Personal", *extra)

    def sync(self) -> str:
        code, out, err = self.run("calendars", "sync", self.username, "--now")
        assert code == 0, (out, err)
        return out

    def counts(self) -> dict[str, int]:
        out = self.sync()
        found = re.search(r"pushed (\d+), deleted (\d+) on the account; fetched (\d+), "
                          r"removed (\d+), busy (\d+)", out)
        assert found, out
        keys = ("pushed", "deleted", "fetched", "removed", "busy")
        return dict(zip(keys, map(int, found.groups()), strict=True))

    # --- the CRM side ---

    def direction(self, direction: str) -> None:
        with self.store.transaction() as session:
            user = get_user(session, self.username)
            update_profile(session, user, ProfileChanges(direction=direction))
            publish_user(session, user)

    def entry(self, title: str, hours: int = 0) -> int:
        start = datetime(2026, 12, 14, 9, tzinfo=UTC) + timedelta(hours=hours)
        with self.store.transaction() as session:
            made = create_entry(session, EntryDraft(
                type_name="Meeting", title=title, start=start, end=start + timedelta(hours=1),
                organizer=self.username))
            return made.id

    def edit(self, entry_id: int, title: str) -> None:
        with self.store.transaction() as session:
            update_entry(session, session.get(DiaryEntry, entry_id), EntryEdit(title=title))

    def delete(self, entry_id: int) -> None:
        with self.store.transaction() as session:
            delete_entry(session, session.get(DiaryEntry, entry_id))

    def entries(self) -> dict[str, DiaryEntry]:
        """The rep's live entries by title."""
        with self.store.reading() as session:
            user = get_user(session, self.username)
            rows = session.scalars(select(DiaryEntry).where(
                DiaryEntry.owner_user_id == user.id, DiaryEntry.deleted_at.is_(None))).all()
            session.expunge_all()
        return {row.title: row for row in rows}

    def conflicts(self) -> list[LinkedObject]:
        with self.store.reading() as session:
            rows = session.scalars(select(LinkedObject).where(
                LinkedObject.conflict_at.is_not(None))).all()
            session.expunge_all()
        return list(rows)

    # --- the account side, as the rep's own app sees it ---

    def calendar_url(self, slug: str) -> str:
        return f"{self.server.calendar_home}{slug}/"

    def target_slug(self) -> str:
        return "crm"

    def remote(self, slug: str) -> dict[str, tuple[str, str]]:
        """href -> (ETag, text) of every object in one of the account's calendars."""
        url = self.calendar_url(slug)
        listing = requests.request("PROPFIND", url, data=PROPFIND_ETAGS,
                                   headers={"Depth": "1", "Content-Type": "application/xml"},
                                   auth=self.server.auth(), timeout=10)
        assert listing.status_code == 207, listing.text
        hrefs = [h for h in re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", listing.text)
                 if not h.endswith("/")]
        found = {}
        for href in hrefs:
            got = requests.get(self.server.url.rstrip("/") + href, auth=self.server.auth(),
                               timeout=10)
            found[href] = (got.headers.get("ETag", ""), got.text)
        return found

    def remote_titles(self, slug: str) -> list[str]:
        return sorted(re.search(r"SUMMARY:(.*?)\r?\n", text).group(1)  # type: ignore[union-attr]
                      for _, text in self.remote(slug).values())

    def put_remote(self, slug: str, name: str, text: str, etag: str | None = None) -> str:
        headers = {"Content-Type": "text/calendar"}
        if etag:
            headers["If-Match"] = etag
        answer = requests.put(f"{self.calendar_url(slug)}{name}", data=text.encode(),
                              headers=headers, auth=self.server.auth(), timeout=10)
        assert answer.status_code in (201, 204), (answer.status_code, answer.text)
        return answer.headers.get("ETag", "")

    def delete_remote(self, href: str) -> None:
        answer = requests.delete(self.server.url.rstrip("/") + href, auth=self.server.auth(),
                                 timeout=10)
        assert answer.status_code in (200, 204), answer.status_code


def event(uid: str, title: str, *, hours: int = 0, modified: datetime | None = None) -> str:
    start = datetime(2026, 12, 15, 14, tzinfo=UTC) + timedelta(hours=hours)
    return EVENT.format(uid=uid, title=title, stamp=stamp(modified or datetime.now(UTC)),
                        start=stamp(start), end=stamp(start + timedelta(hours=1)))


def replace_title(text: str, title: str, modified: datetime | None = None) -> str:
    text = re.sub(r"SUMMARY:[^\r\n]*", f"SUMMARY:{title}", text, count=1)
    when = stamp(modified or datetime.now(UTC) + timedelta(minutes=5))
    if "LAST-MODIFIED:" in text:
        return re.sub(r"LAST-MODIFIED:[^\r\n]*", f"LAST-MODIFIED:{when}", text, count=1)
    return text.replace("END:VEVENT", f"LAST-MODIFIED:{when}\r\nEND:VEVENT", 1)


@pytest.fixture
def linked(store: Store, cal_server: CalServer, cli: object,
           monkeypatch: pytest.MonkeyPatch) -> World:
    """A rep with diary sync, and their own account on ``cal_server``."""
    server = cal_server
    monkeypatch.setenv(PASSWORD_ENV, server.password)
    # The key serve processes of the same test use too (the link's password is under it).
    monkeypatch.setenv("CRM_GATEWAY_SECURITY_SECRET_KEY", TEST_SECRET_KEY)
    username = f"linkrep{next(_names)}x{os.getpid()}"
    email = f"{username}@acme.example"
    with store.transaction() as session:
        if session.scalar(select(DiaryType).where(DiaryType.name == "Meeting")) is None:
            create_type(session, "Meeting", syncable=True)
        user = create_user(session, username, email, name="Linked Rep")
        update_user(session, user, UserChanges(diary_sync=True))
    return World(store, server, cli, username, email)
