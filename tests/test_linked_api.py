"""Linked calendars through the API, against stock Radicale and Xandikos on loopback: the
test before linking, the link itself (422 naming the failing step, nothing stored), sync
now, test, dedupe, reset, unlink with what was pushed removed, an account that is down,
and RFC 6764 discovery through ``/.well-known/caldav``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from api_peers import Api, api, api_gateway, problem
from caldav_peer import Gateway, new_rep
from peers.linked_servers import CalServer, xandikos_server

__all__ = ["api", "api_gateway"]

PROPFIND = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
            "</D:prop></D:propfind>")


@pytest.fixture(scope="module")
def behind_a_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalServer]:
    """Xandikos whose tree starts at /dav/: a URL elsewhere on the host finds it only
    through /.well-known/caldav."""
    server = xandikos_server(tmp_path_factory.mktemp("xandikos"), prefix="/dav/")
    server.start()
    yield server
    server.stop()


def titles(server: CalServer, slug: str) -> list[str]:
    listing = requests.request("PROPFIND", f"{server.calendar_home}{slug}/", data=PROPFIND,
                               headers={"Depth": "1"}, auth=server.auth(), timeout=10)
    assert listing.status_code == 207, listing.text
    found = []
    for href in re.findall(r"<(?:\w+:)?href>([^<]+\.ics)</(?:\w+:)?href>", listing.text):
        text = requests.get(server.url.rstrip("/") + href, auth=server.auth(), timeout=10).text
        found.append(re.search(r"SUMMARY:(.*?)\r?\n", text).group(1))  # type: ignore[union-attr]
    return sorted(found)


def account(server: CalServer, **extra: object) -> dict[str, object]:
    return {"url": server.url, "login": server.login, "password": server.password, **extra}


def test_link_sync_test_dedupe_reset_and_unlink_through_the_api(
        api_gateway: Gateway, api: Api, radicale_account: CalServer) -> None:
    rep = new_rep(api_gateway.store)
    links = f"/users/{rep.username}/linked-calendars"
    wrong = api.post(f"{links}/test", account(radicale_account, password="wrong"))
    assert wrong.status_code == 200
    assert not wrong.json()["ok"]
    failed = [s for s in wrong.json()["steps"] if s["status"] == "failed"]
    assert [s["name"] for s in failed] == ["auth"] and "refused the login" in failed[0]["detail"]

    refused = api.post(links, account(radicale_account, password="wrong", sources=["Personal"]))
    body = problem(refused, 422, "account-test-failed")
    assert "failed at step auth" in body["detail"]
    assert ["step", "auth"] in [e["loc"] for e in body["errors"]]
    assert api.get(links).json() == {"items": []}  # nothing stored

    made = api.post("/entries", {"type": "Meeting", "title": "Kick-off", "organizer":
                                 rep.username, "start": "2026-12-14T09:00:00Z",
                                 "end": "2026-12-14T10:00:00Z"})
    assert made.status_code == 201, made.text
    linked = api.post(links, account(radicale_account, target=rep.username, sources=["Personal"]))
    assert linked.status_code == 201, linked.text
    link = linked.json()
    assert linked.headers["Location"].endswith(f"{links}/{link['id']}")
    assert {(c["role"], c["name"]) for c in link["calendars"]} == {
        ("target", rep.username), ("source", "Personal")}
    assert "password" not in linked.text and radicale_account.password not in linked.text

    passes = api.post(f"{links}/sync")
    assert passes.status_code == 200, passes.text
    [one] = passes.json()["items"]
    assert one["error"] is None and one["pushed"] == 1
    assert titles(radicale_account, rep.username) == ["Kick-off"]
    shown = api.get(f"{links}/{link['id']}").json()
    assert shown["last_success_at"] is not None
    assert {c["role"]: c["pushed"] for c in shown["calendars"]} == {"target": 1, "source": 0}

    tested = api.post(f"{links}/{link['id']}/test").json()
    assert tested["ok"]
    roles = {c["name"]: c["role"] for c in tested["calendars"]}
    assert (roles[rep.username], roles["Personal"]) == ("target", "source")
    assert api.post(f"{links}/{link['id']}/dedupe", {"dry_run": True}).json()[
        "duplicates"] == []

    other = new_rep(api_gateway.store)
    problem(api.get(f"/users/{other.username}/linked-calendars/{link['id']}"), 404, "not-found")
    problem(api.delete(f"/users/{other.username}/linked-calendars/{link['id']}"), 404,
            "not-found")

    reset = api.post(f"{links}/{link['id']}/reset")
    assert reset.json() == {"link": link["id"], "forgotten": 1}
    api.post(f"{links}/sync")
    assert titles(radicale_account, rep.username) == ["Kick-off"]  # reconciled by UID, not doubled

    gone = api.delete(f"{links}/{link['id']}", params={"remove_pushed": "true"})
    assert gone.status_code == 200, gone.text
    assert len(gone.json()["removed"]) == 1 and gone.json()["kept"] == []
    assert titles(radicale_account, rep.username) == []
    assert api.get(links).json() == {"items": []}


def test_link_refusals_say_why_and_store_nothing(api_gateway: Gateway, api: Api,
                                                 radicale_account: CalServer) -> None:
    rep = new_rep(api_gateway.store)
    links = f"/users/{rep.username}/linked-calendars"
    detail = problem(api.post(links, {"provider": "nextcloud", "login": "a", "password": "b"}),
                     422, "invalid")["detail"]
    assert "a URL is required for provider nextcloud" in detail
    problem(api.post(links, {"provider": "gmail", "login": "a", "password": "b"}), 422,
            "validation")
    assert "no calendar 'Nope'" in problem(
        api.post(links, account(radicale_account, sources=["Nope"])), 422, "invalid")["detail"]
    assert "is the target" in problem(
        api.post(links, account(radicale_account, target="Personal", sources=["Personal"])), 422,
        "invalid")["detail"]
    closed = api.post(links, {"url": "http://127.0.0.1:9/", "login": "a", "password": "b"})
    assert "failed at step connect" in problem(closed, 422, "account-test-failed")["detail"]
    stopped = new_rep(api_gateway.store, diary_sync=False)
    assert "diary sync" in problem(
        api.post(f"/users/{stopped.username}/linked-calendars", account(radicale_account)), 422,
        "invalid")["detail"]
    problem(api.post("/users/nobody-here/linked-calendars", account(radicale_account)), 404,
            "not-found")
    assert api.get(links).json() == {"items": []}


def test_discovery_follows_the_hosts_well_known_address(
        api_gateway: Gateway, api: Api, behind_a_path: CalServer, tmp_path: Path) -> None:
    """The rep gives the host's web address; RFC 6764 leads from there to the DAV tree."""
    rep = new_rep(api_gateway.store)
    links = f"/users/{rep.username}/linked-calendars"
    web_page = f"{behind_a_path.url}apps/calendar/"
    assert requests.request("PROPFIND", web_page, headers={"Depth": "0"},
                            timeout=10).status_code == 404  # nothing CalDAV there itself
    probe = api.post(f"{links}/test", account(behind_a_path, url=web_page)).json()
    assert probe["ok"], probe
    discovery = next(s for s in probe["steps"] if s["name"] == "discovery")
    assert f"calendar home {behind_a_path.calendar_home}" in discovery["detail"]

    linked = api.post(links, account(behind_a_path, url=web_page))
    assert linked.status_code == 201, linked.text
    link = linked.json()
    assert link["home"] == behind_a_path.calendar_home
    assert link["calendars"][0]["url"].startswith(behind_a_path.calendar_home)


def test_an_account_that_is_down_answers_502_and_the_link_stays(
        api_gateway: Gateway, api: Api, tmp_path: Path) -> None:
    server = xandikos_server(tmp_path / "down")
    server.start()
    rep = new_rep(api_gateway.store)
    links = f"/users/{rep.username}/linked-calendars"
    try:
        link = api.post(links, account(server)).json()
        api.post("/entries", {"type": "Meeting", "title": "Review", "organizer": rep.username,
                              "start": "2026-12-15T09:00:00Z", "end": "2026-12-15T10:00:00Z"})
        assert api.post(f"{links}/sync").json()["items"][0]["pushed"] == 1
        server.stop()
        problem(api.delete(f"{links}/{link['id']}", params={"remove_pushed": "true"}), 502,
                "account-unreachable")
        [failed] = api.post(f"{links}/sync").json()["items"]
        assert failed["error"]
        shown = api.get(f"{links}/{link['id']}").json()
        assert shown["failures"] == 1 and shown["last_error"]
        server.start()
        [passed] = api.post(f"{links}/sync").json()["items"]
        assert passed["error"] is None
        assert api.get(f"{links}/{link['id']}").json()["failures"] == 0
    finally:
        server.stop()
