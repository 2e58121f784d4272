"""The entry page and its Download .ics button, and the Calendar feed block of My sync, on a
real ``serve``: most over HTTP with a signed-in ``requests`` session, one in Chromium."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from caldav_peer import Gateway
from icalendar import Calendar
from selenium.webdriver.common.by import By
from web_browser import browser, screenshot, site

from gateway import web_logins
from gateway.clock import utcnow
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, TaskDraft, create_entry
from gateway.models import DiaryType, EntryParticipant
from gateway.users import UserChanges, create_user, get_user, update_user

__all__ = ["browser", "site"]

_names = itertools.count(1)
SOON = (utcnow() + timedelta(days=2)).replace(hour=14, minute=0, second=0, microsecond=0)
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'


def person(gateway: Gateway, prefix: str) -> tuple[str, str]:
    """A diary-sync user with a web password: (username, password)."""
    username, password = f"{prefix}{next(_names)}x{os.getpid()}", "a long web password"
    with gateway.store.transaction() as session:
        user = create_user(session, username, f"{username}@crm.example", name=username.title())
        update_user(session, user, UserChanges(diary_sync=True))
        web_logins.set_password(session, user, password)
    return username, password


_clients: list[requests.Session] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def signed_in(gateway: Gateway, username: str, password: str) -> requests.Session:
    client = requests.Session()
    _clients.append(client)
    page = client.get(gateway.url + "account/", timeout=10).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    answer = client.post(gateway.url + "account/sign-in", timeout=10, data={
        "login": username, "password": password, "csrf": csrf.group(1)})
    assert answer.status_code == 200 and username in answer.text, answer.text
    return client


def csrf_of(client: requests.Session, gateway: Gateway) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"',
                      client.get(gateway.url + "account/", timeout=10).text)
    assert found is not None
    return found.group(1)


def entry(gateway: Gateway, organizer: str, *attendees: str, **extra: Any) -> int:
    with gateway.store.transaction() as session:
        made = create_entry(session, EntryDraft(
            type_name="Meeting", title=extra.pop("title", "Pricing"), start=SOON,
            end=SOON + timedelta(hours=1), organizer=organizer, attendees=attendees, **extra))
        return made.id


def organizer_of(text: str) -> str | None:
    [event] = Calendar.from_ical(text).walk("VEVENT")
    return str(event["ORGANIZER"]).lower() if "ORGANIZER" in event else None


def test_the_entry_page_shows_the_entry_escaped_to_its_people_only(site: Gateway) -> None:
    alice, alice_pw = person(site, "alice")
    bob, bob_pw = person(site, "bob")
    eve, eve_pw = person(site, "eve")
    entry_id = entry(site, alice, bob, "hank@globex.example", title=f"Pricing {HOSTILE}")
    with site.store.transaction() as session:
        row = session.query(EntryParticipant).filter_by(entry_id=entry_id,
                                                        email=f"{bob}@crm.example").one()
        row.partstat = "ACCEPTED"
    path = f"{site.url}account/entries/{entry_id}"
    page = signed_in(site, bob, bob_pw).get(path, timeout=10)
    assert page.status_code == 200
    assert "Pricing &lt;img src=x" in page.text and HOSTILE not in page.text
    assert f'<td>{bob}@crm.example</td><td data-partstat="ACCEPTED">accepted</td>' in page.text
    assert 'data-partstat="NEEDS-ACTION">needs action' in page.text
    assert 'id="download-ics"' in page.text
    stranger = signed_in(site, eve, eve_pw)
    assert stranger.get(path, timeout=10).status_code == 404
    assert stranger.get(path + ".ics", timeout=10).status_code == 404
    assert requests.get(path + ".ics", timeout=10).status_code == 403  # not signed in
    # The creator downloads: no organiser; the participant downloads: the creator organises.
    mine = signed_in(site, alice, alice_pw).get(path + ".ics", timeout=10)
    assert mine.status_code == 200 and organizer_of(mine.text) is None
    assert mine.headers["Content-Disposition"].startswith("attachment; filename=")
    theirs = signed_in(site, bob, bob_pw).get(path + ".ics", timeout=10)
    assert organizer_of(theirs.text) == f"mailto:{alice}@crm.example"


def test_a_recurring_entry_has_no_download_and_the_ics_is_409(site: Gateway) -> None:
    alice, alice_pw = person(site, "alice")
    entry_id = entry(site, alice, rrule="FREQ=DAILY;COUNT=3")
    client = signed_in(site, alice, alice_pw)
    page = client.get(f"{site.url}account/entries/{entry_id}", timeout=10).text
    assert 'id="download-refused"' in page and "recurring" in page
    assert 'id="download-ics"' not in page
    refused = client.get(f"{site.url}account/entries/{entry_id}.ics", timeout=10)
    assert refused.status_code == 409 and "recurring" in refused.text


def test_a_task_shows_its_due_date_and_status_and_downloads_as_a_vtodo(site: Gateway) -> None:
    alice, alice_pw = person(site, "alice")
    with site.store.transaction() as session:
        if session.query(DiaryType).filter_by(name="Follow-up").first() is None:
            create_type(session, "Follow-up", kind="task")
        made = create_entry(session, EntryDraft(
            type_name="Follow-up", title="Chase <ACME>", start=None, end=None,
            organizer=alice, task=TaskDraft(due=SOON, priority=2, status="IN-PROCESS",
                                            percent_complete=30)))
        entry_id = made.id
    client = signed_in(site, alice, alice_pw)
    page = client.get(f"{site.url}account/entries/{entry_id}", timeout=10).text
    assert f'id="entry-due">{SOON:%Y-%m-%d %H:%M} UTC<' in page
    assert 'id="entry-status">IN-PROCESS, 30 %<' in page
    assert "Chase &lt;ACME&gt;" in page and 'id="entry-when"' not in page
    download = client.get(f"{site.url}account/entries/{entry_id}.ics", timeout=10)
    assert download.status_code == 200
    (todo,) = Calendar.from_ical(download.text).walk("VTODO")
    assert (str(todo["STATUS"]), int(todo["PRIORITY"])) == ("IN-PROCESS", 2)


def test_the_feed_block_makes_replaces_and_revokes_the_address(site: Gateway) -> None:
    alice, alice_pw = person(site, "alice")
    entry(site, alice, title="Feed me")
    client = signed_in(site, alice, alice_pw)
    assert 'id="feed-status" class="status off"' in client.get(site.url + "account/",
                                                                timeout=10).text
    refused = client.post(site.url + "account/feed", data={"action": "create"}, timeout=10)
    assert refused.status_code == 403  # no CSRF token
    made = client.post(site.url + "account/feed", timeout=10,
                       data={"action": "create", "csrf": csrf_of(client, site)})
    found = re.search(r'<code id="feed-url">([^<]+)</code>', made.text)
    assert made.status_code == 200 and found is not None
    first = found.group(1)
    assert "SUMMARY:Feed me" in requests.get(first, timeout=10).text
    again = client.post(site.url + "account/feed", timeout=10,
                        data={"action": "create", "csrf": csrf_of(client, site)})
    second = re.search(r'<code id="feed-url">([^<]+)</code>', again.text)
    assert second is not None and second.group(1) != first
    assert requests.get(first, timeout=10).status_code == 404
    assert requests.get(second.group(1), timeout=10).status_code == 200
    gone = client.post(site.url + "account/feed", timeout=10,
                       data={"action": "revoke", "csrf": csrf_of(client, site)})
    assert gone.status_code == 200 and 'class="status off"' in gone.text
    assert requests.get(second.group(1), timeout=10).status_code == 404


def wait_for_file(folder: Path, pattern: str) -> Path:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"nothing like {pattern} was downloaded into {folder}")


def test_in_the_browser_download_the_entry_and_make_a_feed(
        browser: Any, site: Gateway, tmp_path: Path) -> None:
    alice, alice_pw = person(site, "alice")
    bob, _ = person(site, "bob")
    entry_id = entry(site, alice, bob, title="Quarterly review")
    browser.delete_all_cookies()
    browser.get(site.url + "account/")
    browser.find_element(By.ID, "login").send_keys(alice)
    browser.find_element(By.ID, "password").send_keys(alice_pw)
    old = browser.find_element(By.ID, "sign-in")
    old.click()
    wait_until(lambda: browser.find_elements(By.ID, "whoami"))

    browser.execute_cdp_cmd("Page.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.get(f"{site.url}account/entries/{entry_id}")
    assert browser.find_element(By.ID, "entry-type").text == "Meeting"
    screenshot(browser, tmp_path, "entry")
    browser.find_element(By.ID, "download-ics").click()
    downloaded = wait_for_file(tmp_path, "*.ics")
    assert downloaded.name == "Quarterly-review.ics"
    calendar = Calendar.from_ical(downloaded.read_text())
    [event] = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]) == "Quarterly review" and "ORGANIZER" not in event
    assert str(event["ATTENDEE"]).lower() == f"mailto:{bob}@crm.example"

    browser.get(site.url + "account/#feed")
    button = browser.find_element(By.ID, "feed-create")
    button.click()
    wait_until(lambda: browser.find_elements(By.ID, "feed-url"))
    url = browser.find_element(By.ID, "feed-url").text
    copy = browser.find_element(By.CSS_SELECTOR, 'button.copy[data-copy="feed-url"]')
    copy.click()
    wait_until(lambda: copy.text == "Copied")
    screenshot(browser, tmp_path, "feed")
    assert "SUMMARY:Quarterly review" in requests.get(url, timeout=10).text
    revoke = browser.find_element(By.ID, "feed-revoke")
    revoke.click()
    wait_until(lambda: not browser.find_elements(By.ID, "feed-revoke"))
    assert requests.get(url, timeout=10).status_code == 404
    with site.store.reading() as session:
        assert get_user(session, alice).username == alice


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + 30
    while not _true(condition):
        if time.monotonic() > deadline:
            raise AssertionError("the page did not get there in time")
        time.sleep(0.1)


def _true(condition: Any) -> bool:
    try:
        return bool(condition())
    except Exception:  # a page being replaced answers a lookup with an error
        return False


