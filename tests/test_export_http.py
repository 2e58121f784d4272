"""Export over HTTP against a real ``serve``: the API's ``.ics`` download, the feed address
made and revoked by the API and the CLI, the feed read by ``vdirsyncer``'s ``http`` storage
and parsed by ``icalendar``, ``304`` for an unchanged feed, ``404`` once revoked."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path

import pytest
import requests
from api_peers import Api, problem
from caldav_peer import Gateway, Rep, new_rep, start_gateway, stop_gateway
from icalendar import Calendar

from gateway.clock import utcnow
from gateway.diary_types import create_type
from gateway.models import DiaryType

SOON = (utcnow() + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module", autouse=True)
def _types(api_gateway: Gateway) -> None:
    with api_gateway.store.transaction() as session:
        if session.query(DiaryType).filter_by(name="Internal").first() is None:
            create_type(session, "Internal", syncable=False)


@pytest.fixture
def rep(api_gateway: Gateway) -> Rep:
    return new_rep(api_gateway.store)


def new_entry(api: Api, rep: Rep, **extra: object) -> dict[str, object]:
    body = {"type": "Meeting", "title": "Call Globex", "organizer": rep.username,
            "start": SOON.isoformat(), "end": (SOON + timedelta(hours=1)).isoformat(),
            **extra}
    answer = api.post("/entries", body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def organizer_of(text: str) -> str | None:
    [event] = Calendar.from_ical(text).walk("VEVENT")
    return str(event["ORGANIZER"]).lower() if "ORGANIZER" in event else None


def test_the_api_downloads_an_entry_as_an_attachment(api: Api, rep: Rep) -> None:
    entry = new_entry(api, rep, attendees=["hank@globex.example", "HANK@globex.example"])
    answer = api.get(f"/entries/{entry['id']}/ics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="Call-Globex.ics"'
    calendar = Calendar.from_ical(answer.text)
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]) == entry["uid"] and str(event["SUMMARY"]) == "Call Globex"
    assert [str(a) for a in [event["ATTENDEE"]]] == ["mailto:hank@globex.example"]
    assert organizer_of(answer.text) == f"mailto:{rep.email}"
    # Downloaded for its creator: no organiser (Outlook refuses to import it otherwise).
    mine = api.get(f"/entries/{entry['id']}/ics", params={"user": rep.username})
    assert mine.status_code == 200 and organizer_of(mine.text) is None
    problem(api.get(f"/entries/{entry['id']}/ics", params={"user": "nobody-here"}), 404,
            "not-found")


def test_the_api_refuses_recurring_and_unsyncable_entries_with_409(api: Api, rep: Rep) -> None:
    weekly = new_entry(api, rep, rrule="FREQ=WEEKLY;COUNT=3")
    assert "recurring" in problem(api.get(f"/entries/{weekly['id']}/ics"), 409,
                                  "conflict")["detail"]
    internal = new_entry(api, rep, type="Internal")
    assert "not syncable" in problem(api.get(f"/entries/{internal['id']}/ics"), 409,
                                     "conflict")["detail"]
    by_automation = new_entry(api, rep, organizer=None, automation=True)
    assert organizer_of(api.get(f"/entries/{by_automation['id']}/ics").text) is None


def test_a_feed_is_read_without_login_answers_304_and_404_once_revoked(
        api: Api, rep: Rep) -> None:
    entry = new_entry(api, rep, title="In the feed")
    made = api.post(f"/users/{rep.username}/feed")
    assert made.status_code == 201, made.text
    url = made.json()["url"]
    assert url.startswith(api.base.removesuffix("api/v1") + "feeds/") and url.endswith(".ics")
    first = requests.get(url, timeout=10)
    assert first.status_code == 200, first.text
    assert first.headers["Content-Type"] == "text/calendar; charset=utf-8"
    events = {str(e["UID"]): str(e["SUMMARY"])
              for e in Calendar.from_ical(first.text).walk("VEVENT")}
    assert events == {entry["uid"]: "In the feed"}
    etag = first.headers["ETag"]
    again = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    # A change in the CRM shows on the next poll.
    changed = api.patch(f"/entries/{entry['id']}", {"title": "Renamed"},
                        headers={"If-Match": str(entry["etag"])})
    assert changed.status_code == 200, changed.text
    fresh = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    assert "SUMMARY:Renamed" in fresh.text
    assert requests.put(url, data=b"x", timeout=10).status_code == 405
    # Revoked: 404 on the next request, and a new address is another one.
    assert api.delete(f"/users/{rep.username}/feed").status_code == 204
    assert requests.get(url, timeout=10).status_code == 404
    problem(api.delete(f"/users/{rep.username}/feed"), 404, "not-found")
    assert requests.get(url.replace("/feeds/", "/feeds/x"), timeout=10).status_code == 404


VDIRSYNCER = """
[general]
status_path = "{root}/status/"

[pair feed]
a = "local"
b = "remote"
collections = null

[storage local]
type = "filesystem"
path = "{root}/local/"
fileext = ".ics"

[storage remote]
type = "http"
url = "{url}"
"""


def test_vdirsyncer_reads_the_feed_with_its_http_storage(api_gateway: Gateway, api: Api,
                                                         rep: Rep, tmp_path: Path) -> None:
    guest = new_rep(api_gateway.store)
    made = new_entry(api, rep, title="Pricing", attendees=[guest.username],
                     tzid="Europe/Berlin")
    later = new_entry(api, rep, title="Review")
    url = api.post(f"/users/{guest.username}/feed").json()["url"]
    (tmp_path / "local").mkdir()
    (tmp_path / "config").write_text(VDIRSYNCER.format(root=tmp_path, url=url))
    binary = Path(sys.executable).parent / "vdirsyncer"
    for command in ("discover", "sync"):
        done = subprocess.run([str(binary), "-c", str(tmp_path / "config"), command],
                              input="y\n" * 3, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    files = [Calendar.from_ical(p.read_text()) for p in (tmp_path / "local").glob("*.ics")]
    # The guest's feed holds what their invitations calendar shows, not the rep's own.
    # (vdirsyncer's http storage replaces each UID by the item's hash, by design.)
    [event] = [e for f in files for e in f.walk("VEVENT")]
    assert str(event["SUMMARY"]) == made["title"] and later["title"] == "Review"
    assert event.decoded("DTSTART").astimezone(UTC) == SOON
    assert [str(z["TZID"]) for z in files[0].walk("VTIMEZONE")] == ["Europe/Berlin"]


def test_the_cli_makes_and_revokes_a_feed(api_gateway: Gateway, rep: Rep, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    monkeypatch.setenv("CRM_GATEWAY_DATABASE_URL", api_gateway.store.url)
    monkeypatch.setenv("CRM_GATEWAY_PATHS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CRM_GATEWAY_HTTP_PUBLIC_URL", api_gateway.url)
    monkeypatch.delenv("CRM_GATEWAY_CONFIG", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("feeds", "create", rep.username)
    assert code == 0
    url = out.split(": ", 1)[1].splitlines()[0]
    assert url.startswith(f"{api_gateway.url}feeds/")
    assert requests.get(url, timeout=10).status_code == 200
    assert run("--json", "feeds", "revoke", rep.username)[:2] == (
        0, f'{{\n  "revoked": true,\n  "username": "{rep.username}"\n}}\n')
    assert requests.get(url, timeout=10).status_code == 404
    code, _, err = run("feeds", "revoke", rep.username)
    assert code == 2 and err == f"crm-gateway: user {rep.username} has no calendar feed\n"
    code, _, err = run("feeds", "create", "nobody-here")
    assert code == 2 and "nobody-here" in err and err.count("\n") == 1


def test_two_gateways_on_one_database_agree_on_a_feed_and_its_revocation(
        api_gateway: Gateway, api: Api, rep: Rep, tmp_path: Path) -> None:
    new_entry(api, rep, title="Seen from both")
    url = api.post(f"/users/{rep.username}/feed").json()["url"]
    other = start_gateway(api_gateway.store.url, tmp_path)
    try:
        there = url.replace(api_gateway.url, other.url)
        here_answer, there_answer = requests.get(url, timeout=10), requests.get(there, timeout=10)
        assert here_answer.status_code == there_answer.status_code == 200
        assert here_answer.headers["ETag"] == there_answer.headers["ETag"]
        assert requests.get(there, headers={"If-None-Match": here_answer.headers["ETag"]},
                            timeout=10).status_code == 304
        assert api.delete(f"/users/{rep.username}/feed").status_code == 204
        assert requests.get(there, timeout=10).status_code == 404
    finally:
        stop_gateway(other)
