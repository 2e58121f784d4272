"""Bad input, admin changes and sync profiles, seen by a CalDAV client.

These rules need no second process, so the gateway's CalDAV app runs in-process
(`wsgi_client`), as Radicale's own suite drives it; what the HTTP host itself does (body
caps, keep-alive) is tested against the running server in test_caldav_client.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from caldav_peer import Rep, event, new_rep
from sqlalchemy import select
from wsgi_client import Answer, InProcessGateway

from gateway.cli import main
from gateway.db import Store
from gateway.diary_types import create_type, get_type, update_type
from gateway.models import DiaryEntry, DiaryType
from gateway.publication import publish_type

FIXTURES = "tests/fixtures/ics"
Gateway = InProcessGateway


@pytest.fixture(scope="module")
def gateway(module_database_url: str) -> Iterator[InProcessGateway]:
    store = Store(module_database_url)
    with store.transaction() as session:
        for name, color, syncable in (("Meeting", "#3A87AD", True), ("Call", "#4CAF50", True),
                                      ("Internal", "#9E9E9E", False)):
            if session.query(DiaryType).filter_by(name=name).first() is None:
                create_type(session, name, color=color, syncable=syncable)
    yield InProcessGateway(store)
    store.dispose()


def put(gateway: Gateway, rep: Rep, name: str, body: bytes | str,
        slug: str = "meeting") -> Answer:
    data = body.encode() if isinstance(body, str) else body
    return gateway.put(f"{gateway.url}{rep.username}/{slug}/{name}", data=data,
                        auth=rep.auth, timeout=10,
                        headers={"Content-Type": "text/calendar; charset=utf-8"})


def stored(gateway: Gateway, uid: str) -> tuple[str, str] | None:
    with gateway.store.reading() as session:
        entry = session.scalar(select(DiaryEntry).where(DiaryEntry.uid == uid,
                                                        DiaryEntry.deleted_at.is_(None)))
        return None if entry is None else (entry.title, entry.ical)


TWO_UIDS = event("a@test").replace(
    "END:VCALENDAR", "BEGIN:VEVENT\r\nUID:b@test\r\nDTSTAMP:20261201T090000Z\r\n"
    "DTSTART:20261207T090000Z\r\nSUMMARY:Other\r\nEND:VEVENT\r\nEND:VCALENDAR")
NO_DTSTART = event("bad@test").replace("DTSTART:20261207T090000Z\r\n", "")
VTODO = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//T//EN\r\nBEGIN:VTODO\r\n"
         "UID:bad@test\r\nDTSTAMP:20261201T090000Z\r\nSUMMARY:Task\r\nEND:VTODO\r\n"
         "END:VCALENDAR\r\n")


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ("this is not a calendar", 400, "invalid calendar object"),
        (TWO_UIDS, 400, "UID"),
        (NO_DTSTART, 400, "DTSTART"),
        (VTODO, 403, "supported-calendar-component"),
        (b"BEGIN:VCALENDAR\r\n\xff\xfe\r\nEND:VCALENDAR\r\n", 400, "not UTF-8"),
    ],
)
def test_bad_calendar_objects_get_a_4xx_with_a_reason_and_change_nothing(
    gateway: Gateway, rep: Rep, body: str | bytes, status: int, reason: str
) -> None:
    assert put(gateway, rep, "bad.ics", event("bad@test", "Original")).status_code == 201
    answer = put(gateway, rep, "bad.ics", body)
    assert answer.status_code == status
    assert reason in answer.text
    assert stored(gateway, "bad@test") == ("Original", event("bad@test", "Original"))


def test_windows_tzid_is_accepted_and_mapped(gateway: Gateway, rep: Rep) -> None:
    text = event("win@test").replace(
        "DTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z",
        "DTSTART;TZID=W. Europe Standard Time:20261207T090000\r\n"
        "DTEND;TZID=W. Europe Standard Time:20261207T100000")
    assert put(gateway, rep, "win.ics", text).status_code == 201
    with gateway.store.reading() as session:
        entry = session.scalar(select(DiaryEntry).where(DiaryEntry.uid == "win@test"))
        assert entry is not None
        assert entry.tzid == "Europe/Berlin"
        assert entry.start_utc == datetime(2026, 12, 7, 8, tzinfo=UTC)
        assert entry.ical == text  # the client's bytes, untouched


def test_a_never_ending_rule_is_accepted_and_searchable(gateway: Gateway, rep: Rep) -> None:
    text = event("forever@test").replace("END:VEVENT", "RRULE:FREQ=WEEKLY\r\nEND:VEVENT")
    assert put(gateway, rep, "forever.ics", text).status_code == 201
    query = (b'<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
             b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>'
             b'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
             b'<C:time-range start="%s" end="%s"/></C:comp-filter></C:comp-filter></C:filter>'
             b"</C:calendar-query>")
    for start, end, found in [(b"20350305T000000Z", b"20350306T000000Z", True),
                              (b"20350306T000000Z", b"20350307T000000Z", False),
                              (b"20261214T000000Z", b"20261215T000000Z", True)]:
        answer = gateway.request("REPORT", f"{gateway.url}{rep.username}/meeting/",
                                  auth=rep.auth, headers={"Depth": "1"}, timeout=30,
                                  data=query % (start, end))
        assert answer.status_code == 207
        assert ("forever.ics" in answer.text) is found, (start, answer.text)


def test_a_non_syncable_type_disappears_from_clients(gateway: Gateway, rep: Rep) -> None:
    assert put(gateway, rep, "ns.ics", event("ns@test"), slug="call").status_code == 201

    def listed() -> str:
        return gateway.request("PROPFIND", f"{gateway.url}{rep.username}/", auth=rep.auth,
                                headers={"Depth": "1"}, timeout=10).text

    assert f"/{rep.username}/call/" in listed()
    with gateway.store.transaction() as session:
        call = get_type(session, "Call")
        update_type(session, call, syncable=False)
        publish_type(session, call)
    try:
        assert f"/{rep.username}/call/" not in listed()
        gone = gateway.get(f"{gateway.url}{rep.username}/call/ns.ics", auth=rep.auth,
                            timeout=10)
        assert gone.status_code == 404
    finally:
        with gateway.store.transaction() as session:
            call = get_type(session, "Call")
            update_type(session, call, syncable=True)
            publish_type(session, call)
    assert f"/{rep.username}/call/" in listed()


def run_cli(gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    monkeypatch.setenv("CRM_GATEWAY_DATABASE_URL", gateway.store.url)
    assert main(["--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_profile_crm_to_calendar_makes_calendars_read_only(
    gateway: Gateway, rep: Rep, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The calendar is writable, and the server has answered for it, before the change.
    assert put(gateway, rep, "rw.ics", event("rw@test")).status_code == 201
    profile = run_cli(gateway, monkeypatch, capsys, "sync", "profile", rep.username,
                      "--direction", "crm_to_calendar")
    assert isinstance(profile, dict) and profile["direction"] == "crm_to_calendar"
    # The very next request sees the change: rights are not cached across requests.
    refused = put(gateway, rep, "ro.ics", event("ro@test"))
    assert refused.status_code == 403 and "need-privileges" in refused.text
    assert stored(gateway, "ro@test") is None


def test_sync_reset_refuses_old_tokens(
    gateway: Gateway, rep: Rep, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    put(gateway, rep, "r.ics", event("reset@test"))
    body = (b'<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>%s</sync-token>'
            b"<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>")
    url = f"{gateway.url}{rep.username}/meeting/"
    first = gateway.request("REPORT", url, auth=rep.auth, data=body % b"", timeout=10)
    token = first.text.split("<sync-token>")[1].split("</sync-token>")[0].encode()
    again = gateway.request("REPORT", url, auth=rep.auth, data=body % token, timeout=10)
    assert again.status_code == 207
    result = run_cli(gateway, monkeypatch, capsys, "sync", "reset", rep.username)
    assert isinstance(result, dict) and result["calendars_reset"] >= 1
    refused = gateway.request("REPORT", url, auth=rep.auth, data=body % token, timeout=10)
    assert refused.status_code == 403 and "valid-sync-token" in refused.text


def test_sync_dedupe_keeps_the_oldest_copy(
    gateway: Gateway, rep: Rep, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for n in range(3):  # a client re-imported the same event under new UIDs
        assert put(gateway, rep, f"dup{n}.ics", event(f"dup{n}@test", "Quarterly")).ok
    put(gateway, rep, "other.ics", event("other@test", "Different"))
    dry = run_cli(gateway, monkeypatch, capsys, "sync", "dedupe", rep.username, "--dry-run")
    assert isinstance(dry, dict) and len(dry["removed"]) == 2
    assert stored(gateway, "dup1@test") is not None
    done = run_cli(gateway, monkeypatch, capsys, "sync", "dedupe", rep.username)
    assert isinstance(done, dict) and len(done["removed"]) == 2
    assert stored(gateway, "dup0@test") is not None
    assert stored(gateway, "dup1@test") is None and stored(gateway, "dup2@test") is None
    assert stored(gateway, "other@test") is not None
    gone = gateway.get(f"{gateway.url}{rep.username}/meeting/dup1.ics", auth=rep.auth,
                        timeout=10)
    assert gone.status_code == 404


def test_related_records_only_publishes_entries_with_invitees(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    rep = new_rep(gateway.store)
    put(gateway, rep, "alone.ics", event("alone@test"))
    put(gateway, rep, "with.ics", event("with@test").replace(
        "END:VEVENT", "ATTENDEE:mailto:guest@outside.example\r\nEND:VEVENT"))
    run_cli(gateway, monkeypatch, capsys, "sync", "profile", rep.username, "--records",
            "related")
    listing = gateway.request("PROPFIND", f"{gateway.url}{rep.username}/meeting/",
                               auth=rep.auth, headers={"Depth": "1"}, timeout=10).text
    assert "with.ics" in listing and "alone.ics" not in listing
