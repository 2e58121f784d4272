"""Free/busy, availability and conflicts through a real ``serve`` process, on SQLite and
PostgreSQL: the CalDAV free-busy-query (raw REPORT and the ``caldav`` library), the
``/freebusy/`` URLs with and without a valid secret, the availability API, and warn / refuse /
force on API bookings; a client PUT over busy time is accepted and reported as a conflict."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import caldav
import icalendar
import pytest
import requests
from api_peers import Api, problem
from caldav_peer import Gateway, Rep, new_rep
from peers import TEST_SECRET_KEY
from sqlalchemy import select

from gateway import web_logins
from gateway.models import WebhookEvent
from gateway.secrets import SecretBox
from gateway.users import get_user
from gateway.webhooks import add_endpoint

_clients: list[caldav.DAVClient] = []
_sessions: list[requests.Session] = []
WEB_PASSWORD = "a long web password"
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'
CALDAV = "urn:ietf:params:xml:ns:caldav"
FREE_BUSY_QUERY = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    f'<C:free-busy-query xmlns:C="{CALDAV}">'
    '<C:time-range start="{start}" end="{end}"/></C:free-busy-query>')


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()
    while _sessions:
        _sessions.pop().close()


def calendar_of(gateway: Gateway, rep: Rep, slug: str) -> caldav.Calendar:
    client = caldav.DAVClient(url=gateway.url, username=rep.username, password=rep.password,
                              enable_rfc6764=False, require_tls=False)
    _clients.append(client)
    for found in client.principal().calendars():
        if str(found.url).rstrip("/").endswith(f"/{slug}"):
            return found
    raise AssertionError(f"no {slug} calendar")


def invitation(uid: str, organizer: Rep, attendee: Rep, partstat: str, start: str,
               end: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261201T090000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
        f"SUMMARY:{uid}\r\nORGANIZER:mailto:{organizer.email}\r\n"
        f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee.email}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n")


def busy_of(text: str) -> list[tuple[datetime, datetime]]:
    """The FREEBUSY;FBTYPE=BUSY periods of a VCALENDAR answer, parsed with icalendar."""
    [component] = icalendar.Calendar.from_ical(text).walk("VFREEBUSY")
    found = []
    values = component.get("FREEBUSY", [])
    for value in values if isinstance(values, list) else [values]:
        assert value.params.get("FBTYPE", "BUSY") == "BUSY"
        periods = value.dt if isinstance(value.dt, list) else [value.dt]
        found.extend((start.astimezone(UTC), end.astimezone(UTC)) for start, end in periods)
    return sorted(found)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def book(api: Api, rep: Rep, title: str, start: str, end: str, **extra: Any
         ) -> requests.Response:
    return api.post("/entries", {"type": "Meeting", "title": title, "organizer": rep.username,
                                 "start": start, "end": end, **extra})


@pytest.fixture
def rep(api_gateway: Gateway) -> Rep:
    return new_rep(api_gateway.store)


# --- CalDAV free-busy-query -----------------------------------------------------------------


def test_free_busy_query_is_busy_for_an_accepted_invitation_and_free_for_a_declined_one(
        api_gateway: Gateway, api: Api, rep: Rep) -> None:
    colleague = new_rep(api_gateway.store)
    organiser = calendar_of(api_gateway, colleague, "meeting")
    organiser.save_event(invitation(f"accepted-{rep.username}", colleague, rep, "ACCEPTED",
                                    "20261207T090000Z", "20261207T100000Z"))
    organiser.save_event(invitation(f"declined-{rep.username}", colleague, rep, "DECLINED",
                                    "20261207T110000Z", "20261207T120000Z"))
    # The rep's own entry, in another calendar than the one asked: the answer is the diary's.
    assert book(api, rep, "Own call", "2026-12-07T14:00:00Z",
                "2026-12-07T15:00:00Z").status_code == 201
    answer = requests.request(
        "REPORT", f"{api_gateway.url}{rep.username}/invitations/",
        data=FREE_BUSY_QUERY.format(start="20261207T000000Z", end="20261208T000000Z"),
        headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        auth=(rep.username, rep.password), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/calendar")
    assert busy_of(answer.text) == [(utc("2026-12-07T09:00"), utc("2026-12-07T10:00")),
                                    (utc("2026-12-07T14:00"), utc("2026-12-07T15:00"))]
    # The colleague's diary has both (they organise them), not the rep's own call.
    calendar = calendar_of(api_gateway, colleague, "meeting")
    found = calendar.freebusy_request(datetime(2026, 12, 7, tzinfo=UTC),
                                      datetime(2026, 12, 8, tzinfo=UTC))
    assert busy_of(found.data) == [(utc("2026-12-07T09:00"), utc("2026-12-07T10:00")),
                                   (utc("2026-12-07T11:00"), utc("2026-12-07T12:00"))]


def test_free_busy_query_of_someone_elses_calendar_is_refused(
        api_gateway: Gateway, rep: Rep) -> None:
    other = new_rep(api_gateway.store)
    answer = requests.request(
        "REPORT", f"{api_gateway.url}{other.username}/meeting/",
        data=FREE_BUSY_QUERY.format(start="20261207T000000Z", end="20261208T000000Z"),
        headers={"Depth": "1", "Content-Type": "application/xml"},
        auth=(rep.username, rep.password), timeout=30)
    assert answer.status_code in (403, 404) and "VFREEBUSY" not in answer.text


# --- /freebusy/ URLs ------------------------------------------------------------------------


def test_the_freebusy_url_needs_a_crm_login_or_a_valid_secret(
        api_gateway: Gateway, api: Api, rep: Rep) -> None:
    colleague = new_rep(api_gateway.store)
    assert book(api, rep, "Secret title", "2026-12-08T09:00:00Z",
                "2026-12-08T10:30:00Z").status_code == 201
    window = {"start": "2026-12-08T00:00:00Z", "end": "2026-12-09T00:00:00Z"}
    url = f"{api_gateway.url}freebusy/{rep.username}.ifb"
    signed = requests.get(url, params=window, auth=(colleague.username, colleague.password),
                          timeout=30)
    assert signed.status_code == 200, signed.text
    assert busy_of(signed.text) == [(utc("2026-12-08T09:00"), utc("2026-12-08T10:30"))]
    assert "Secret title" not in signed.text
    anonymous = requests.get(url, params=window, timeout=30)
    assert anonymous.status_code == 401 and "WWW-Authenticate" in anonymous.headers
    wrong = requests.get(url, params=window, auth=(colleague.username, "wrong-password"),
                         timeout=30)
    assert wrong.status_code == 401
    too_long = requests.get(url, params={"start": "2026-12-01T00:00:00Z",
                                         "end": "2027-06-01T00:00:00Z"},
                            auth=(colleague.username, colleague.password), timeout=30)
    assert too_long.status_code == 400 and "62 days" in too_long.text

    made = api.post(f"/users/{rep.username}/freebusy-url")
    assert made.status_code == 201, made.text
    secret_url = made.json()["url"]
    assert secret_url.startswith(f"{api_gateway.url}freebusy/t/")
    shared = requests.get(secret_url, params=window, timeout=30)
    assert shared.status_code == 200
    assert busy_of(shared.text) == [(utc("2026-12-08T09:00"), utc("2026-12-08T10:30"))]
    forged = requests.get(secret_url[:-8] + "AAAA.ifb", params=window, timeout=30)
    assert forged.status_code == 404 and "VFREEBUSY" not in forged.text
    assert api.delete(f"/users/{rep.username}/freebusy-url").status_code == 204
    assert requests.get(secret_url, params=window, timeout=30).status_code == 404


# --- availability ---------------------------------------------------------------------------


def test_availability_for_three_users_with_working_hours_in_two_time_zones(
        api_gateway: Gateway, api: Api) -> None:
    berlin1, berlin2, new_york = (new_rep(api_gateway.store) for _ in range(3))
    for person, hours in ((berlin1, "Mon-Fri 09:00-17:00 Europe/Berlin"),
                          (berlin2, "Mon-Fri 09:00-17:00 Europe/Berlin"),
                          (new_york, "Mon-Fri 09:00-17:00 America/New_York")):
        changed = api.patch(f"/users/{person.username}", {"working_hours": hours})
        assert changed.status_code == 200 and changed.json()["working_hours"] == hours
    book(api, berlin1, "Busy", "2026-12-07T14:00:00Z", "2026-12-07T14:30:00Z")
    book(api, berlin2, "Busy", "2026-12-07T15:15:00Z", "2026-12-07T15:30:00Z")
    users = ",".join(p.username for p in (berlin1, berlin2, new_york))
    found = api.get("/availability", params={
        "users": users, "start": "2026-12-07T00:00:00Z", "end": "2026-12-09T00:00:00Z",
        "duration": 30})
    assert found.status_code == 200, found.text
    # Berlin 09-17 is 08-16 UTC in December; New York 09-17 is 14-22 UTC.
    assert found.json()["slots"] == [
        {"start": "2026-12-07T14:30:00Z", "end": "2026-12-07T15:15:00Z"},
        {"start": "2026-12-07T15:30:00Z", "end": "2026-12-07T16:00:00Z"},
        {"start": "2026-12-08T14:00:00Z", "end": "2026-12-08T16:00:00Z"}]
    busy = api.get(f"/users/{berlin1.username}/freebusy",
                   params={"start": "2026-12-07T00:00:00Z", "end": "2026-12-08T00:00:00Z"})
    assert busy.json()["busy"] == [{"start": "2026-12-07T14:00:00Z",
                                    "end": "2026-12-07T14:30:00Z"}]
    problem(api.get("/availability", params={
        "users": users, "start": "2026-12-07T00:00:00Z", "end": "2027-03-01T00:00:00Z"}),
        422, "invalid")
    problem(api.get("/availability", params={
        "users": "nobody-here", "start": "2026-12-07T00:00:00Z",
        "end": "2026-12-08T00:00:00Z"}), 404, "not-found")
    problem(api.patch(f"/users/{berlin1.username}", {"working_hours": "always"}), 422,
            "invalid")


# --- conflicts ------------------------------------------------------------------------------


def test_warn_refuse_and_force_on_api_bookings(api_gateway: Gateway, api: Api,
                                               rep: Rep) -> None:
    assert api.get(f"/users/{rep.username}/sync-profile").json()["conflicts"] == "allow"
    assert api.patch(f"/users/{rep.username}/sync-profile",
                     {"conflicts": "warn"}).json()["conflicts"] == "warn"
    first = book(api, rep, "Globex call", "2026-12-09T09:00:00Z", "2026-12-09T10:00:00Z")
    assert first.status_code == 201 and first.json()["conflicts"] == []
    warned = book(api, rep, "Initech call", "2026-12-09T09:30:00Z", "2026-12-09T10:30:00Z")
    assert warned.status_code == 201
    [clash] = warned.json()["conflicts"]
    assert clash == {"user": rep.username, "entry_id": first.json()["id"],
                     "title": "Globex call", "calendar": "meeting", "owner": rep.username,
                     "start": "2026-12-09T09:00:00Z", "end": "2026-12-09T10:00:00Z"}

    assert api.patch(f"/users/{rep.username}/sync-profile",
                     {"conflicts": "refuse"}).json()["conflicts"] == "refuse"
    before = api.get(f"/entries?owner={rep.username}").json()["items"]
    refused = problem(book(api, rep, "Hooli call", "2026-12-09T09:45:00Z",
                           "2026-12-09T10:15:00Z"), 409, "conflict-refused")
    assert {(e["title"], e["start"], e["calendar"], e["owner"])
            for e in refused["errors"]} == {
        ("Globex call", "2026-12-09T09:00:00Z", "meeting", rep.username),
        ("Initech call", "2026-12-09T09:30:00Z", "meeting", rep.username)}
    assert api.get(f"/entries?owner={rep.username}").json()["items"] == before
    moved = problem(api.patch(f"/entries/{first.json()['id']}",
                              {"start": "2026-12-09T10:00:00Z", "end": "2026-12-09T11:00:00Z"}),
                    409, "conflict-refused")
    assert [e["title"] for e in moved["errors"]] == ["Initech call"]
    forced = book(api, rep, "Hooli call", "2026-12-09T09:45:00Z", "2026-12-09T10:15:00Z",
                  force=True)
    assert forced.status_code == 201
    assert len(forced.json()["conflicts"]) == 2
    listed = api.get("/conflicts", params={"user": rep.username}).json()["items"]
    assert [c["entry_id"] for c in listed][:2] == [forced.json()["id"]] * 2
    assert {c["source"] for c in listed} == {"crm"}


def test_a_client_put_over_busy_time_is_accepted_and_reported_as_a_conflict(
        api_gateway: Gateway, api: Api, rep: Rep) -> None:
    with api_gateway.store.transaction() as session:
        add_endpoint(session, "http://127.0.0.1:9/hooks", ["entry.conflict"],
                     box=SecretBox(TEST_SECRET_KEY))
    api.patch(f"/users/{rep.username}/sync-profile", {"conflicts": "refuse"})
    crm = book(api, rep, "CRM meeting", "2026-12-10T09:00:00Z", "2026-12-10T10:00:00Z")
    assert crm.status_code == 201
    calendar = calendar_of(api_gateway, rep, "meeting")
    uid = f"phone-{rep.username}@test"
    calendar.save_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Phone//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261201T090000Z\r\nDTSTART:20261210T093000Z\r\n"
        "DTEND:20261210T103000Z\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    [entry] = [e for e in api.get(f"/entries?owner={rep.username}").json()["items"]
               if e["uid"] == uid]
    shown = api.get(f"/entries/{entry['id']}").json()
    assert [(c["title"], c["entry_id"]) for c in shown["conflicts"]] == [
        ("CRM meeting", crm.json()["id"])]
    [listed] = api.get("/conflicts", params={"user": rep.username}).json()["items"]
    assert listed["source"] == "calendar" and listed["entry_id"] == entry["id"]
    with api_gateway.store.reading() as session:
        payloads = session.scalars(select(WebhookEvent.payload)
                                   .where(WebhookEvent.type == "entry.conflict")).all()
    [data] = [p["data"] for p in payloads if p["data"]["uid"] == uid]
    assert data["source"] == "calendar" and data["owner"] == rep.username
    assert [c["title"] for c in data["conflicts"]] == ["CRM meeting"]


# --- the entry page -------------------------------------------------------------------------


def test_the_entry_page_shows_its_overlaps_a_colleagues_only_as_busy(
        api_gateway: Gateway, api: Api) -> None:
    alice, bob = new_rep(api_gateway.store), new_rep(api_gateway.store)
    with api_gateway.store.transaction() as session:
        web_logins.set_password(session, get_user(session, alice.username), WEB_PASSWORD)
    api.patch(f"/users/{alice.username}/sync-profile", {"conflicts": "warn"})
    book(api, alice, f"Own {HOSTILE}", "2026-12-11T09:00:00Z", "2026-12-11T10:00:00Z")
    book(api, bob, "Bob's private call", "2026-12-11T09:30:00Z", "2026-12-11T10:30:00Z")
    made = book(api, alice, "Review", "2026-12-11T09:15:00Z", "2026-12-11T09:45:00Z",
                attendees=[bob.username])
    assert len(made.json()["conflicts"]) == 2
    client = requests.Session()
    _sessions.append(client)
    page = client.get(api_gateway.url + "account/", timeout=10).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    client.post(api_gateway.url + "account/sign-in", timeout=10, data={
        "login": alice.username, "password": WEB_PASSWORD, "csrf": csrf.group(1)})
    shown = client.get(f"{api_gateway.url}account/entries/{made.json()['id']}", timeout=10)
    assert shown.status_code == 200
    table = shown.text[shown.text.index('id="conflicts"'):]
    assert "Own &lt;img src=x" in table and HOSTILE not in shown.text
    assert f"<td>{bob.username}</td><td>busy</td>" in table
    assert "Bob&#39;s private call" not in shown.text and "private call" not in shown.text
