"""More of the pages in a real browser: linking the rep's own calendar account (stock
Radicale on loopback) from "My sync", the settings an admin lets reps change themselves, the
console's health panel, app passwords and the BCC address on a user's console page; and a
signed-in session revoked on one ``serve`` process ending on another one at its next
request."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import caldav
import pytest
import requests
from caldav.lib.error import AuthorizationError
from caldav_peer import Gateway, start_gateway, stop_gateway
from peers.bcc_listener import LOG
from peers.linked_servers import CalServer
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from web_browser import (
    browser,
    cookie_session,
    new_person,
    screenshot,
    sign_in,
    sign_up,
    site,
    submit,
)

from gateway.bcc_addresses import user_address
from gateway.entries import EntryDraft, create_entry
from gateway.linked_calendars import links_of
from gateway.models import InboundMessage
from gateway.profiles import effective_profile
from gateway.users import get_user

__all__ = ["browser", "site"]

_names = itertools.count(1)
PROPFIND = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
            "</D:prop></D:propfind>")


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}x{os.getpid()}"


def remote_objects(server: CalServer, slug: str) -> list[str]:
    listing = requests.request("PROPFIND", f"{server.calendar_home}{slug}/", data=PROPFIND,
                               headers={"Depth": "1"}, auth=server.auth(), timeout=10)
    if listing.status_code == 404:
        return []
    return re.findall(r"<(?:\w+:)?href>([^<]+\.ics)</(?:\w+:)?href>", listing.text)


def steps(driver: Any, prefix: str) -> dict[str, str]:
    return {item.get_attribute("data-step"): item.get_attribute("data-status")
            for item in driver.find_elements(By.CSS_SELECTOR, f"#{prefix}-steps li")}


def fill_link_form(driver: Any, server: CalServer, password: str, target: str) -> None:
    """The link form, for a target calendar of the test's own (the server is the module's)."""
    Select(driver.find_element(By.ID, "link-provider")).select_by_value("custom")
    for field, value in (("link-url", server.url), ("link-login", server.login),
                         ("link-password", password), ("link-target", target),
                         ("link-sources", "Personal")):
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    submit(driver, By.ID, "link-submit")


def test_a_rep_links_their_own_calendar_account_from_my_sync(
        browser: Any, site: Gateway, radicale_account: CalServer, tmp_path: Path) -> None:
    username = unique("lia")
    sign_up(browser, site, username, "lias web password")
    fill_link_form(browser, radicale_account, "not the password", username)
    assert steps(browser, "link-check")["auth"] == "failed"
    failed = browser.find_element(By.CSS_SELECTOR, '#link-check-steps li[data-step="auth"]')
    assert "refused the login" in failed.text
    assert "failed at step auth" in browser.find_element(By.ID, "linked-error").text
    kept = browser.find_element(By.ID, "link-login").get_attribute("value")
    assert kept == radicale_account.login
    assert browser.find_element(By.ID, "link-password").get_attribute("value") == ""
    assert browser.find_elements(By.CSS_SELECTOR, "#linked .link") == []

    fill_link_form(browser, radicale_account, radicale_account.password, username)
    assert set(steps(browser, "link-check").values()) <= {"ok", "skipped"}
    done = browser.find_element(By.ID, "linked-done").text
    assert f"your diary goes to {username} (made on the account just now)" in done
    assert "fetched from Personal" in done
    screenshot(browser, tmp_path, "my-sync-linked")

    start = datetime(2026, 12, 14, 9, tzinfo=UTC)
    with site.store.transaction() as session:
        create_entry(session, EntryDraft(type_name="Meeting", title="Kick-off", start=start,
                                         end=start + timedelta(hours=1), organizer=username))
    submit(browser, By.CSS_SELECTOR, '#linked .link button[value="sync"]')
    assert "1 put on the account" in browser.find_element(By.ID, "link-passes").text
    assert len(remote_objects(radicale_account, username)) == 1
    calendars = browser.find_element(By.CSS_SELECTOR, "#linked .link-calendars").text
    assert f"Your diary goes to {username}: 1 put there" in calendars

    submit(browser, By.CSS_SELECTOR, '#linked .link button[value="test"]')
    assert set(steps(browser, "link-check").values()) <= {"ok", "skipped"}

    browser.find_element(By.CSS_SELECTOR, '#linked .link input[name="remove_pushed"]').click()
    submit(browser, By.CSS_SELECTOR, '#linked .link button[value="unlink"]')
    assert "Removed 1 events" in browser.find_element(By.ID, "linked-done").text
    assert remote_objects(radicale_account, username) == []
    assert browser.find_elements(By.CSS_SELECTOR, "#linked .link") == []


def test_a_rep_cannot_act_on_another_reps_link(browser: Any, site: Gateway,
                                               radicale_account: CalServer) -> None:
    owner, other = unique("lou"), unique("lyn")
    sign_up(browser, site, owner, "lous web password")
    fill_link_form(browser, radicale_account, radicale_account.password, owner)
    link = browser.find_element(By.CSS_SELECTOR, "#linked .link").get_attribute("data-link")
    sign_up(browser, site, other, "lyns web password")
    with cookie_session(browser) as page:
        refused = page.post(f"{site.url}account/linked/{link}", timeout=30, data={
            "csrf": form_token(page, site.url + "account/"), "action": "unlink"})
    assert refused.status_code == 400 and f"has no linked calendar account {link}" in (
        refused.text)
    with site.store.reading() as session:
        assert [a.id for a in links_of(session, get_user(session, owner))] == [int(link)]


def test_health_panel_and_a_users_app_passwords_and_bcc_address_in_the_console(
        browser: Any, site: Gateway, tmp_path: Path) -> None:
    rep = unique("ned")
    new_person(site, rep)
    admin = unique("ola")
    sign_up(browser, site, admin, "olas web password", admin=True)
    browser.get(site.url + "admin/")
    health = browser.find_element(By.ID, "health").text
    assert "The database answers and nothing is failing." in health
    with site.store.transaction() as session:
        session.add(InboundMessage(mail_from=f"{rep}@crm.example", rcpt_tos=[], raw=b"x",
                                   size=1, status="failed", last_error="no such user",
                                   user_id=get_user(session, rep).id))
    browser.get(site.url + "admin/")
    assert "inbound mail: 1 failed" in browser.find_element(By.ID, "health-warnings").text
    row = browser.find_element(By.CSS_SELECTOR, '#health-table tr[data-health="inbound"]')
    assert "0 waiting, 1 failed" in row.text
    screenshot(browser, tmp_path, "admin-health")

    browser.get(f"{site.url}admin/users/{rep}/sync")
    bcc = browser.find_element(By.ID, "person-bcc").text
    with site.store.reading() as session:
        assert bcc == user_address(get_user(session, rep), LOG)  # the rep's, as My sync shows
    browser.find_element(By.ID, "person-label").send_keys("iPad")
    submit(browser, By.ID, "person-create-app-password")
    password = browser.find_element(By.ID, "new-app-password").text
    assert "iPad" in browser.find_element(By.ID, "person-app-passwords").text
    with caldav.DAVClient(url=site.url, username=rep, password=password) as client:
        assert "Meeting" in {str(c.get_display_name()) for c in client.principal().calendars()}
    screenshot(browser, tmp_path, "admin-user")
    too_long = "tablet " * 20
    browser.find_element(By.ID, "person-label").send_keys(too_long)
    submit(browser, By.ID, "person-create-app-password")
    assert "at most 100 characters" in browser.find_element(By.ID, "person-label-error").text
    assert browser.find_element(By.ID, "person-label").get_attribute("value") == too_long

    submit(browser, By.CSS_SELECTOR, '#person-app-passwords button[value="revoke"]')
    assert "revoked" in browser.find_element(By.ID, "done").text
    with caldav.DAVClient(url=site.url, username=rep, password=password) as client, \
            pytest.raises(AuthorizationError):
        client.principal()

    submit(browser, By.ID, "person-rotate-bcc")
    rotated = browser.find_element(By.ID, "person-bcc").text
    with site.store.reading() as session:
        assert rotated != bcc and rotated == user_address(get_user(session, rep), LOG)


@pytest.fixture(scope="module")
def second_site(site: Gateway, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Gateway]:
    """A second ``serve`` process on the same database (as behind a load balancer)."""
    running = start_gateway(str(site.store.url), tmp_path_factory.mktemp("web-second"))
    yield running
    stop_gateway(running)


def form_token(session: requests.Session, url: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', session.get(url, timeout=10).text)
    assert found is not None
    return found.group(1)


def signed_in_as(session: requests.Session, gateway: Gateway) -> str | None:
    page = session.get(gateway.url + "account/", timeout=10).text
    found = re.search(r'id="whoami">([^<]+)<', page)
    return found.group(1) if found else None


def test_a_session_ended_on_one_process_ends_on_the_other(
        browser: Any, site: Gateway, second_site: Gateway) -> None:
    username = unique("pat")
    sign_up(browser, site, username, "pats web password")
    sign_in(browser, site, username, "pats web password")
    with cookie_session(browser) as on_first, cookie_session(browser) as on_second:
        assert signed_in_as(on_first, site) == username
        assert signed_in_as(on_second, second_site) == username  # one key, one database
        # Signing out on the second process ends the session the first has a cookie of.
        on_second.post(second_site.url + "account/sign-out", timeout=10, data={
            "csrf": form_token(on_second, second_site.url + "account/")})
        assert signed_in_as(on_first, site) is None

    # An admin's password reset on the first process ends a session on the second.
    sign_in(browser, site, username, "pats web password")
    with cookie_session(browser) as kept:
        assert signed_in_as(kept, second_site) == username
        admin = unique("quy")
        sign_up(browser, site, admin, "quys web password", admin=True)
        browser.get(site.url + "admin/")
        submit(browser, By.CSS_SELECTOR, f'#users form[action="/admin/users/{username}"] '
                                         'button[value="reset"]')
        assert signed_in_as(kept, second_site) is None


def test_reps_change_only_the_settings_the_admin_lets_them(browser: Any, site: Gateway) -> None:
    admin, rep = unique("rae"), unique("sid")
    sign_up(browser, site, rep, "sids web password")
    assert browser.find_elements(By.ID, "settings") == []  # nothing is the rep's by default
    sign_up(browser, site, admin, "raes web password", admin=True)
    browser.get(site.url + "admin/")
    for name in ("records", "sync_invitees"):
        box = browser.find_element(By.ID, f"rep-choice-{name}")
        if not box.is_selected():
            box.click()
    direction = browser.find_element(By.ID, "rep-choice-direction")
    if direction.is_selected():
        direction.click()
    submit(browser, By.ID, "rep-choices-save")
    assert browser.find_element(By.ID, "rep-choice-records").is_selected()

    sign_in(browser, site, rep, "sids web password")
    assert browser.find_elements(By.ID, "settings-direction") == []
    Select(browser.find_element(By.ID, "settings-records")).select_by_value("related")
    submit(browser, By.ID, "settings-save")
    with site.store.reading() as session:
        mine = effective_profile(session, get_user(session, rep).id)
        theirs = effective_profile(session, get_user(session, admin).id)
    assert mine.records == "related" and theirs.records == "all"  # the rep's own override

    with cookie_session(browser) as page:  # a crafted form for a setting the admin keeps
        refused = page.post(site.url + "account/profile", timeout=10, data={
            "csrf": form_token(page, site.url + "account/"), "direction": "calendar_to_crm"})
    assert refused.status_code == 400 and "your admin sets direction for you" in refused.text
    with site.store.reading() as session:
        assert effective_profile(session, get_user(session, rep).id).direction == "two_way"
