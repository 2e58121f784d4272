"""Diary entries over the API, and the same entries seen by a real CalDAV client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import caldav
import pytest
import requests
from api_peers import Api, problem
from caldav_peer import Gateway, Rep, event, new_rep

_clients: list[caldav.DAVClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def meeting_calendar(gateway: Gateway, rep: Rep) -> caldav.Calendar:
    client = caldav.DAVClient(url=gateway.url, username=rep.username, password=rep.password,
                              enable_rfc6764=False, require_tls=False)
    _clients.append(client)
    for found in client.principal().calendars():
        if str(found.url).rstrip("/").endswith("/meeting"):
            return found
    raise AssertionError("no meeting calendar")


def new_entry(api: Api, rep: Rep, **extra: Any) -> requests.Response:
    body = {"type": "Meeting", "title": "Call Globex", "organizer": rep.username,
            "start": "2026-12-07T09:00:00+01:00", "end": "2026-12-07T10:00:00+01:00", **extra}
    return api.post("/entries", body)


@pytest.fixture
def rep(api_gateway: Gateway) -> Rep:
    return new_rep(api_gateway.store)


def test_an_entry_made_in_the_api_is_in_the_reps_calendar(api_gateway: Gateway, api: Api,
                                                          rep: Rep) -> None:
    created = new_entry(api, rep, attendees=["hank@globex.example"], location="Room 1")
    assert created.status_code == 201, created.text
    entry = created.json()
    assert created.headers["ETag"] == entry["etag"] == f'"{entry["id"]}-1"'
    assert entry["start"] == "2026-12-07T08:00:00Z" and entry["read_only"] is None
    assert entry["participants"][0]["email"] == "hank@globex.example"
    [shown] = [e for e in meeting_calendar(api_gateway, rep).events()
               if e.icalendar_component["UID"] == entry["uid"]]
    assert str(shown.icalendar_component["SUMMARY"]) == "Call Globex"
    assert str(shown.icalendar_component["LOCATION"]) == "Room 1"


def test_a_patch_moves_the_place_and_replaces_the_attendees_in_the_reps_calendar(
        api_gateway: Gateway, api: Api, rep: Rep) -> None:
    entry = new_entry(api, rep, attendees=["hank@globex.example"], location="Room 1").json()
    changed = api.patch(f"/entries/{entry['id']}", {
        "location": "Room 4", "attendees": ["erin@initech.example", "frank@initech.example"]},
        headers={"If-Match": entry["etag"]})
    assert changed.status_code == 200, changed.text
    assert sorted(p["email"] for p in changed.json()["participants"]) == [
        "erin@initech.example", "frank@initech.example"]
    [shown] = [e for e in meeting_calendar(api_gateway, rep).events()
               if e.icalendar_component["UID"] == entry["uid"]]
    event = shown.icalendar_component
    assert str(event["LOCATION"]) == "Room 4"
    assert sorted(str(a).lower() for a in event.get("ATTENDEE")) == [
        "mailto:erin@initech.example", "mailto:frank@initech.example"]
    problem(api.patch(f"/entries/{entry['id']}", {"attendees": ["nobody-here"]}),
            404, "not-found")


def test_a_put_from_a_calendar_client_is_in_the_api(api_gateway: Gateway, api: Api,
                                                    rep: Rep) -> None:
    calendar = meeting_calendar(api_gateway, rep)
    calendar.save_event(event(f"phone-{rep.username}@test", summary="From the phone"))
    items = api.get(f"/entries?owner={rep.username}").json()["items"]
    [entry] = [e for e in items if e["uid"] == f"phone-{rep.username}@test"]
    assert entry["title"] == "From the phone" and entry["origin"] == "calendar"
    assert entry["organizer"] == rep.username


def test_if_match_guards_patch_and_delete_against_the_calendar_client(
        api_gateway: Gateway, api: Api, rep: Rep) -> None:
    entry = new_entry(api, rep).json()
    path, first = f"/entries/{entry['id']}", entry["etag"]
    renamed = api.patch(path, {"title": "Call Globex (moved)"}, headers={"If-Match": first})
    assert renamed.status_code == 200 and renamed.headers["ETag"] != first
    problem(api.patch(path, {"title": "Lost update"}, headers={"If-Match": first}), 412,
            "precondition-failed")
    # The phone changes it: what the API read is stale now.
    current = renamed.headers["ETag"]
    [shown] = [e for e in meeting_calendar(api_gateway, rep).events()
               if e.icalendar_component["UID"] == entry["uid"]]
    assert str(shown.icalendar_component["SUMMARY"]) == "Call Globex (moved)"
    shown.icalendar_component["SUMMARY"] = "Changed on the phone"
    shown.save()
    problem(api.delete(path, headers={"If-Match": current}), 412, "precondition-failed")
    now = api.get(path)
    assert now.json()["title"] == "Changed on the phone"
    assert api.delete(path, headers={"If-Match": now.headers["ETag"]}).status_code == 204
    problem(api.get(path), 404, "not-found")
    assert entry["uid"] not in [e.icalendar_component["UID"]
                                for e in meeting_calendar(api_gateway, rep).events()]


def test_a_recurring_entry_is_read_only_409_with_the_reason(api: Api, rep: Rep) -> None:
    entry = new_entry(api, rep, rrule="FREQ=WEEKLY;COUNT=4").json()
    assert "recurring" in entry["read_only"]
    path = f"/entries/{entry['id']}"
    refused = problem(api.patch(path, {"title": "x"}), 409, "read-only")
    assert "recurring entries are read-only on the CRM side" in refused["detail"]
    problem(api.delete(path), 409, "read-only")
    assert api.get(path).json()["title"] == "Call Globex"


def test_entry_mistakes_are_4xx_and_store_nothing(api: Api, rep: Rep) -> None:
    before = api.get(f"/entries?owner={rep.username}").json()["items"]
    problem(new_entry(api, rep, type="No such type"), 404, "not-found")
    problem(new_entry(api, rep, end="2026-12-07T07:00:00Z"), 422, "invalid")
    naive = problem(new_entry(api, rep, start="2026-12-07T09:00:00"), 422, "validation")
    assert naive["errors"][0]["loc"] == ["body", "start"]
    problem(new_entry(api, rep, organizer=None), 422, "invalid")
    assert api.get(f"/entries?owner={rep.username}").json()["items"] == before


def test_an_all_day_entry_takes_its_first_and_last_day(api: Api, rep: Rep) -> None:
    entry = new_entry(api, rep, all_day=True, start="2026-12-07T00:00:00Z",
                      end="2026-12-08T00:00:00Z").json()
    assert entry["all_day"] is True
    assert (entry["start"], entry["end"]) == ("2026-12-07T00:00:00Z", "2026-12-09T00:00:00Z")
