"""The people's pages in a real browser: invitation, sign-in, "My sync", and their security.

A headless Chromium (Selenium) talks to a running ``crm-gateway serve``; what the rep sets up
on the page is then used with real clients (the ``caldav`` library, requests, smtplib).
"""

from __future__ import annotations

import itertools
import os
import plistlib
import re
import smtplib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import caldav
import pytest
import requests
from caldav_peer import Gateway, event
from login_peers import run_cli
from peers import TEST_SECRET_KEY
from peers.bcc_listener import running_listener, write_config
from peers.dovecot import DovecotServer, dovecot_fixture
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import select
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

from gateway.diary_types import create_type
from gateway.entries import EntryDraft, create_entry
from gateway.mail_accounts import MailSettings, set_account
from gateway.models import DiaryEntry, InboundMessage
from gateway.profiles import ProfileChanges, effective_profile, update_profile
from gateway.secrets import SecretBox
from gateway.users import get_user

__all__ = ["browser", "dovecot", "site"]

_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}x{os.getpid()}"


def create_app_password(driver: Any, label: str) -> str:
    driver.find_element(By.ID, "label").send_keys(label)
    submit(driver, By.ID, "create-app-password")
    return str(driver.find_element(By.ID, "new-app-password").text)


def calendar_names(gateway: Gateway, username: str, password: str) -> list[str]:
    with caldav.DAVClient(url=gateway.url, username=username, password=password) as client:
        return sorted(str(c.get_display_name()) for c in client.principal().calendars())


def test_invitation_sign_in_app_password_and_calendar_client(
        browser: Any, site: Gateway, tmp_path: Path) -> None:
    username = unique("ines")
    sign_up(browser, site, username, "correct horse battery")
    screenshot(browser, tmp_path, "my-sync")
    assert "My sync" in browser.title
    assert browser.find_element(By.ID, "server-url").text == site.url
    assert browser.find_element(By.ID, "caldav-login").text == username
    shown = [li.text.split()[0] for li in browser.find_elements(By.CSS_SELECTOR, "#calendars li")]
    assert {"Call", "Meeting"} <= set(shown) and shown[-1] == "Invitations"
    assert "Internal" not in shown  # not syncable

    password = create_app_password(browser, "Ines's iPhone")
    screenshot(browser, tmp_path, "app-password")
    assert {"Call", "Invitations", "Meeting"} <= set(calendar_names(site, username, password))
    rows = browser.find_element(By.ID, "app-passwords").text
    assert "Ines's iPhone" in rows

    # Shown once: a reload no longer shows it.
    browser.get(site.url + "account/")
    assert not browser.find_elements(By.ID, "new-app-password")
    submit(browser, By.CSS_SELECTOR, "#app-passwords button.danger")
    assert requests.request("PROPFIND", f"{site.url}{username}/", auth=(username, password),
                            headers={"Depth": "0"}, timeout=10).status_code == 401


def test_invitation_works_once_and_web_password_is_not_a_calendar_login(
        browser: Any, site: Gateway) -> None:
    username = unique("jon")
    browser.delete_all_cookies()
    link = new_person(site, username)
    browser.get(link)
    assert "Set your password" in browser.title
    browser.find_element(By.ID, "password").send_keys("short")
    browser.find_element(By.ID, "again").send_keys("short")
    submit(browser, By.ID, "set-password")
    assert "at least 10 characters" in browser.find_element(By.ID, "password-error").text

    browser.find_element(By.ID, "password").send_keys("a long web password")
    browser.find_element(By.ID, "again").send_keys("a long web password")
    submit(browser, By.ID, "set-password")
    assert browser.find_element(By.ID, "whoami").text == username

    browser.delete_all_cookies()
    browser.get(link)
    assert "already used" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    assert requests.request("PROPFIND", f"{site.url}{username}/",
                            auth=(username, "a long web password"), headers={"Depth": "0"},
                            timeout=10).status_code == 401

    app_password = create_app_password_as(browser, site, username, "a long web password")
    sign_in(browser, site, username, app_password)
    assert "do not match" in browser.find_element(By.ID, "sign-in-error").text


def create_app_password_as(driver: Any, gateway: Gateway, login: str, password: str) -> str:
    sign_in(driver, gateway, login, password)
    return create_app_password(driver, "laptop")


def test_sign_in_by_email_and_sign_out_ends_the_session(browser: Any, site: Gateway,
                                                        tmp_path: Path) -> None:
    username = unique("kim")
    sign_up(browser, site, username, "kims web password")
    sign_in(browser, site, f"{username.upper()}@crm.example", "kims web password")
    assert browser.find_element(By.ID, "whoami").text == username
    old = cookie_session(browser)
    submit(browser, By.CSS_SELECTOR, "header button.link")
    assert "Sign in" in browser.title
    screenshot(browser, tmp_path, "sign-in")
    # The cookie of before the sign-out no longer signs in.
    with old:
        page = old.get(site.url + "account/", timeout=10)
    assert "<title>Sign in" in page.text and 'id="whoami"' not in page.text


def test_mobileconfig_and_qr_code(browser: Any, site: Gateway) -> None:
    username = unique("lou")
    sign_up(browser, site, username, "lous web password")
    link = browser.find_element(By.ID, "mobileconfig").get_attribute("href")
    with cookie_session(browser) as session:
        reply = session.get(link, timeout=10)
        qr = session.get(site.url + "account/davx5.svg", timeout=10)
    assert reply.headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(reply.content)
    assert profile["PayloadType"] == "Configuration"
    (account,) = profile["PayloadContent"]
    host, port = site.url.split("//")[1].rstrip("/").split(":")
    assert account["PayloadType"] == "com.apple.caldav.account"
    assert (account["CalDAVHostName"], account["CalDAVPort"]) == (host, int(port))
    assert account["CalDAVUseSSL"] is False
    assert account["CalDAVUsername"] == username
    assert account["CalDAVPrincipalURL"] == f"{site.url}{username}/"
    assert "CalDAVPassword" not in account
    assert qr.headers["content-type"] == "image/svg+xml" and b"<svg" in qr.content
    assert browser.find_element(By.ID, "davx5-qr").size["width"] > 100


def test_pause_refuses_a_put_and_stop_removes_the_calendars(browser: Any, site: Gateway,
                                                           tmp_path: Path) -> None:
    username = unique("max")
    sign_up(browser, site, username, "max web password")
    password = create_app_password(browser, "phone")
    url = f"{site.url}{username}/meeting/paused-1.ics"
    submit(browser, By.ID, "calendar-pause")
    assert "Paused" in browser.find_element(By.ID, "calendar-status").text
    screenshot(browser, tmp_path, "paused")
    put = requests.put(url, data=event("paused-1"), auth=(username, password), timeout=10,
                       headers={"Content-Type": "text/calendar"})
    assert put.status_code == 403
    submit(browser, By.ID, "calendar-resume")
    put = requests.put(url, data=event("paused-1"), auth=(username, password), timeout=10,
                       headers={"Content-Type": "text/calendar"})
    assert put.status_code == 201

    submit(browser, By.ID, "calendar-stop")
    assert "stopped" in browser.find_element(By.ID, "calendar-status").text
    assert requests.request("PROPFIND", f"{site.url}{username}/", auth=(username, password),
                            headers={"Depth": "0"}, timeout=10).status_code == 401
    submit(browser, By.ID, "calendar-start")
    assert {"Call", "Invitations", "Meeting"} <= set(calendar_names(site, username, password))


def test_start_calendar_shows_the_eligibility_error(browser: Any, site: Gateway) -> None:
    taken, username = unique("nia"), unique("noa")
    new_person(site, taken)
    sign_up(browser, site, username, "noas web password", diary_sync=False)
    with site.store.transaction() as session:
        get_user(session, username).email = f"{taken}@crm.example"
    browser.get(site.url + "account/")
    submit(browser, By.ID, "calendar-start")
    error = browser.find_element(By.ID, "calendar-error").text
    assert "already the email of diary-sync user" in error
    assert "stopped" in browser.find_element(By.ID, "calendar-status").text


def send_bcc(port: int, username: str, bcc: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(f"{username}@crm.example", ["buyer@customer.example", bcc],
                        (f"From: {username}@crm.example\r\nTo: buyer@customer.example\r\n"
                         f"Subject: {subject}\r\nMessage-ID: <{subject}.{username}@crm.example>"
                         "\r\n\r\nHere is the quote.\r\n").encode())


def latest_decision(driver: Any, gateway: Gateway, count: int) -> str:
    """The newest line of the decisions list once it has ``count`` settled rows."""
    deadline = time.monotonic() + 30
    while True:
        driver.get(gateway.url + "account/")
        rows = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")]
        settled = [row for row in rows if "waiting" not in row]
        if len(settled) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(settled) >= count, rows
    return settled[0]


def test_bcc_address_decisions_and_calendar_only(browser: Any, site: Gateway,
                                                 tmp_path: Path) -> None:
    username = unique("ola")
    sign_up(browser, site, username, "olas web password")
    address = browser.find_element(By.ID, "bcc-address").text
    assert re.fullmatch(r"log\+[\w-]+@crm\.example", address)
    config = write_config(tmp_path / "smtp", str(site.store.url))
    with running_listener(config, site.store) as listener:
        send_bcc(listener.port, username, address, "Quote")
        assert "logged as activity" in latest_decision(browser, site, 1)
        screenshot(browser, tmp_path, "decisions")

        browser.find_element(By.ID, "what-calendar").click()
        submit(browser, By.ID, "what-save")
        assert browser.find_element(By.ID, "what-calendar").is_selected()
        assert "not logged" in browser.find_element(By.ID, "email-status").text
        send_bcc(listener.port, username, address, "Second")
        assert "not logged: " in latest_decision(browser, site, 2)
        assert "calendar only" in latest_decision(browser, site, 2)

    submit(browser, By.ID, "rotate-bcc")
    assert browser.find_element(By.ID, "bcc-address").text not in ("", address)


def test_a_contact_name_from_mail_is_rendered_escaped(browser: Any, site: Gateway,
                                                      tmp_path: Path) -> None:
    username = unique("xia")
    sign_up(browser, site, username, "xias web password")
    address = browser.find_element(By.ID, "bcc-address").text
    payload = "<img src=x onerror=alert(document.domain)>Wile"
    config = write_config(tmp_path / "smtp", str(site.store.url))
    with running_listener(config, site.store) as listener, \
            smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.sendmail(f"{username}@crm.example", [f"wile.{username}@coyote.example", address],
                        (f"From: {username}@crm.example\r\n"
                         f"To: \"{payload}\" <wile.{username}@coyote.example>\r\n"
                         f"Subject: Anvils\r\nMessage-ID: <anvils.{username}@crm.example>\r\n"
                         "\r\nTen anvils.\r\n").encode())
        line = latest_decision(browser, site, 1)
    # The rep sees whom the mail was logged with, the name as text, never as markup.
    assert "logged as activity" in line and payload in line
    assert f"wile.{username}@coyote.example" in line
    assert browser.find_elements(By.CSS_SELECTOR, "#decisions img") == []
    assert "&lt;img" in browser.page_source


def test_post_without_csrf_token_is_refused(browser: Any, site: Gateway) -> None:
    username = unique("pia")
    sign_up(browser, site, username, "pias web password")
    with cookie_session(browser) as session:
        reply = session.post(site.url + "account/app-passwords", data={"label": "forged"},
                             timeout=10)
        assert reply.status_code == 403
        reply = session.post(site.url + "account/app-passwords",
                             data={"label": "forged", "csrf": "not-the-token"}, timeout=10)
        assert reply.status_code == 403
    with site.store.reading() as db:
        assert get_user(db, username).app_passwords == []


def test_cookie_flags_and_security_headers(site: Gateway) -> None:
    reply = requests.get(site.url + "account/", timeout=10)
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP, and no https public_url
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["Referrer-Policy"] == "no-referrer"


def test_a_diary_type_name_is_rendered_escaped(browser: Any, site: Gateway) -> None:
    payload = '<img src=x onerror="document.title=\'pwned\'">Zz'
    with site.store.transaction() as session:
        create_type(session, f"{payload}{os.getpid()}", color="#123456", syncable=True)
    username = unique("quin")
    sign_up(browser, site, username, "quins web password")
    names = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#calendars li")]
    assert any(name.startswith(payload) for name in names)
    assert "pwned" not in browser.title
    assert not browser.find_elements(By.CSS_SELECTOR, "#calendars img")


def test_another_reps_app_password_cannot_be_revoked(browser: Any, site: Gateway) -> None:
    owner, other = unique("ray"), unique("rob")
    sign_up(browser, site, owner, "rays web password")
    password = create_app_password(browser, "rays phone")
    with site.store.reading() as db:
        (theirs,) = [p.id for p in get_user(db, owner).app_passwords]
    sign_up(browser, site, other, "robs web password")
    with cookie_session(browser) as session:
        page = session.get(site.url + "account/", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        reply = session.post(f"{site.url}account/app-passwords/{theirs}/revoke",
                             data={"csrf": csrf.group(1)}, timeout=10)
    assert reply.status_code == 403
    assert {"Call", "Invitations", "Meeting"} <= set(calendar_names(site, owner, password))
    assert owner not in page


def test_repeated_failed_sign_ins_are_throttled(browser: Any, site: Gateway) -> None:
    username = unique("sam")
    sign_up(browser, site, username, "sams web password")
    for _ in range(10):
        sign_in(browser, site, username, "a wrong guess")
    sign_in(browser, site, username, "sams web password")
    assert "Too many failed sign-ins" in browser.find_element(By.ID, "sign-in-error").text
    assert f"web sign-in of '{username}' from 127.0.0.1 failed" in site.log()
    # Another account from the same address is not locked out by it.
    other = unique("sue")
    sign_up(browser, site, other, "sues web password")
    sign_in(browser, site, other, "sues web password")
    assert browser.find_element(By.ID, "whoami").text == other


def test_the_cli_invitation_link_signs_a_user_up(
        browser: Any, site: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    username = unique("tom")
    monkeypatch.setenv("CRM_GATEWAY_HTTP_PUBLIC_URL", site.url)
    run_cli(str(site.store.url), tmp_path, monkeypatch, capsys, "users", "add", username,
            "--email", f"{username}@crm.example")
    first: Any = run_cli(str(site.store.url), tmp_path, monkeypatch, capsys, "users",
                         "invite", username)
    out: Any = run_cli(str(site.store.url), tmp_path, monkeypatch, capsys, "users", "invite",
                       username)
    assert out["link"].startswith(site.url + "account/invite/")
    browser.delete_all_cookies()
    browser.get(first["link"])  # a new invitation replaces the unused one
    assert "not known" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    browser.get(out["link"])
    browser.find_element(By.ID, "password").send_keys("toms web password")
    browser.find_element(By.ID, "again").send_keys("toms web password")
    submit(browser, By.ID, "set-password")
    assert browser.find_element(By.ID, "whoami").text == username

    run_cli(str(site.store.url), tmp_path, monkeypatch, capsys, "users", "reset-web-password",
            username)
    browser.get(site.url + "account/")
    assert "Sign in" in browser.title  # the reset ended the session
    sign_in(browser, site, username, "toms web password")
    assert "do not match" in browser.find_element(By.ID, "sign-in-error").text


MAIL_LOGIN, MAIL_PASSWORD = "mia", "mias mail password"
dovecot = dovecot_fixture(tls=False, scope="module", users={MAIL_LOGIN: MAIL_PASSWORD})


def connect_mailbox(driver: Any, server: DovecotServer, password: str) -> dict[str, str]:
    """Fill in the mailbox form for the Dovecot server; the test's steps by name."""
    Select(driver.find_element(By.ID, "provider")).select_by_value("custom")
    for field, value in (("host", "127.0.0.1"), ("port", str(server.port)),
                         ("mail-login", MAIL_LOGIN), ("mail-password", password)):
        driver.find_element(By.ID, field).clear()
        driver.find_element(By.ID, field).send_keys(value)
    Select(driver.find_element(By.ID, "tls")).select_by_value("none")
    submit(driver, By.ID, "mailbox-connect")
    return {item.get_attribute("data-step"): item.get_attribute("data-status")
            for item in driver.find_elements(By.CSS_SELECTOR, "#check-steps li")}


@pytest.mark.dovecot
def test_connect_a_mailbox_on_dovecot_step_by_step(
        browser: Any, site: Gateway, dovecot: DovecotServer, tmp_path: Path) -> None:
    username = unique("uma")
    sign_up(browser, site, username, "umas web password")
    steps = connect_mailbox(browser, dovecot, MAIL_PASSWORD)
    assert steps and set(steps.values()) <= {"ok", "skipped"}, steps
    assert steps["login"] == "ok"
    assert "Every step is ok" in browser.find_element(By.ID, "check-verdict").text
    assert MAIL_LOGIN in browser.find_element(By.ID, "mailbox-status").text
    screenshot(browser, tmp_path, "mailbox")
    submit(browser, By.ID, "mailbox-sync")
    assert "Synced" in browser.find_element(By.ID, "polled").text
    submit(browser, By.ID, "mailbox-pause")
    assert "paused from My sync" in browser.find_element(By.ID, "mailbox-status").text
    submit(browser, By.ID, "mailbox-resume")
    assert "Paused" not in browser.find_element(By.ID, "mailbox-status").text

    steps = connect_mailbox(browser, dovecot, "a wrong password")
    assert steps["login"] == "failed"
    failed = browser.find_element(By.CSS_SELECTOR, '#check-steps li[data-step="login"]').text
    assert "login: failed" in failed and len(failed) > len("login: failed — ")
    assert "failed at step login" in browser.find_element(By.ID, "check-verdict").text
    assert "login failed" in browser.find_element(By.ID, "mailbox-status").text  # paused


def test_pop3_is_refused_with_the_reason_and_the_form_kept(browser: Any, site: Gateway) -> None:
    username = unique("val")
    sign_up(browser, site, username, "vals web password")
    Select(browser.find_element(By.ID, "protocol")).select_by_value("pop3")
    browser.find_element(By.ID, "host").send_keys("pop.example.com")
    browser.find_element(By.ID, "mail-login").send_keys("val@example.com")
    submit(browser, By.ID, "mailbox-connect")
    assert "POP3 is not supported" in browser.find_element(By.ID, "protocol-error").text
    assert browser.find_element(By.ID, "host").get_attribute("value") == "pop.example.com"
    assert browser.find_element(By.ID, "mail-login").get_attribute("value") == "val@example.com"
    assert not browser.find_elements(By.ID, "mailbox-status")


def test_admin_makes_a_type_not_syncable_and_the_client_loses_it(
        browser: Any, site: Gateway, tmp_path: Path) -> None:
    kind = unique("Visit")
    with site.store.transaction() as session:
        create_type(session, kind, color="#FF9800", syncable=True)
    rep = unique("wes")
    sign_up(browser, site, rep, "wess web password")
    password = create_app_password(browser, "phone")
    assert kind in calendar_names(site, rep, password)
    browser.get(site.url + "admin/")
    assert "Refused" in browser.title or "Forbidden" in browser.title
    assert "for admins only" in browser.find_element(By.CSS_SELECTOR, "p.error").text

    admin = unique("ada")
    sign_up(browser, site, admin, "adas web password", admin=True)
    submit(browser, By.ID, "admin-link")
    assert "Admin console" in browser.title
    screenshot(browser, tmp_path, "admin")
    row = browser.find_element(By.CSS_SELECTOR, f'#type-table tr[data-type="{kind.lower()}"]')
    assert "syncable" in row.text
    submit(browser, By.ID, f"toggle-{kind.lower()}")
    row = browser.find_element(By.CSS_SELECTOR, f'#type-table tr[data-type="{kind.lower()}"]')
    assert "not syncable" in row.text
    assert kind not in calendar_names(site, rep, password)


def test_admin_adds_a_task_type_and_the_rep_gets_a_task_list(browser: Any, site: Gateway
                                                            ) -> None:
    admin = unique("tia")
    sign_up(browser, site, admin, "tias web password", admin=True)
    password = create_app_password(browser, "phone")
    browser.get(site.url + "admin/")
    name = unique("Chores")
    browser.find_element(By.ID, "new-type-name").send_keys(name)
    Select(browser.find_element(By.ID, "new-type-kind")).select_by_value("task")
    submit(browser, By.ID, "add-type")
    row = browser.find_element(By.CSS_SELECTOR, f'#type-table tr[data-type="{name.lower()}"]')
    assert "tasks" in row.text
    with caldav.DAVClient(url=site.url, username=admin, password=password) as client:
        lists = {c.get_display_name(): c.get_supported_components()
                 for c in client.principal().calendars()}
    assert lists[name] == ["VTODO"]


def test_admin_forms_show_errors_inline_and_invite(browser: Any, site: Gateway) -> None:
    admin = unique("bea")
    sign_up(browser, site, admin, "beas web password", admin=True)
    browser.get(site.url + "admin/")
    browser.find_element(By.ID, "new-username").send_keys("Not Valid")
    browser.find_element(By.ID, "new-email").send_keys("nv@crm.example")
    submit(browser, By.ID, "add-user")
    assert "not a valid username" in browser.find_element(By.ID, "new-user-error").text
    assert browser.find_element(By.ID, "new-username").get_attribute("value") == "Not Valid"

    newcomer = unique("cyd")
    browser.find_element(By.ID, "new-username").clear()
    browser.find_element(By.ID, "new-username").send_keys(newcomer)
    submit(browser, By.ID, "add-user")
    submit(browser, By.CSS_SELECTOR, f'tr[data-user="{newcomer}"] button[value="invite"]')
    link = browser.find_element(By.ID, "invitation-link").text
    sign_up_with(browser, link, "cyds web password")
    assert browser.find_element(By.ID, "whoami").text == newcomer


def sign_up_with(driver: Any, link: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(link)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "again").send_keys(password)
    submit(driver, By.ID, "set-password")


def test_admin_previews_a_dedupe_before_removing_and_shows_the_profile(
        browser: Any, site: Gateway) -> None:
    rep = unique("dan")
    new_person(site, rep)
    start = datetime(2026, 12, 9, 10, tzinfo=UTC)
    with site.store.transaction() as session:
        for _ in range(2):
            create_entry(session, EntryDraft(type_name="Meeting", title="Twice <b>", start=start,
                                             end=start + timedelta(hours=1), organizer=rep))
        update_profile(session, get_user(session, rep), ProfileChanges(paused=True))
    admin = unique("eve")
    sign_up(browser, site, admin, "eves web password", admin=True)
    browser.get(f"{site.url}admin/users/{rep}/sync")
    assert rep in browser.title
    paused = browser.find_element(By.CSS_SELECTOR, '#profile tr[data-setting="paused"]').text
    records = browser.find_element(By.CSS_SELECTOR, '#profile tr[data-setting="records"]').text
    assert "on" in paused and "this user" in paused
    assert "global default" in records
    assert "Twice <b>" in browser.find_element(By.ID, "duplicates").text
    with site.store.reading() as session:
        assert len(live_entries(session, rep)) == 2  # the preview removed nothing
    submit(browser, By.ID, "dedupe")
    assert "Removed 1 duplicate" in browser.find_element(By.ID, "done").text
    assert browser.find_element(By.ID, "duplicates").text == "No duplicates."
    with site.store.reading() as session:
        assert len(live_entries(session, rep)) == 1


def test_admin_edits_a_users_profile_and_the_global_default(browser: Any, site: Gateway
                                                             ) -> None:
    rep = unique("gus")
    new_person(site, rep)
    admin = unique("hal")
    sign_up(browser, site, admin, "hals web password", admin=True)
    browser.get(f"{site.url}admin/users/{rep}/sync")
    Select(browser.find_element(By.ID, "profile-direction")).select_by_value("crm_to_calendar")
    submit(browser, By.ID, "profile-save")
    assert browser.find_element(By.ID, "done").text == "Sync profile saved."
    direction = browser.find_element(By.CSS_SELECTOR, '#profile tr[data-setting="direction"]')
    assert "crm to calendar" in direction.text.replace("_", " ")
    assert "this user" in direction.text
    # What the admin left as it was stays inherited.
    records = browser.find_element(By.CSS_SELECTOR, '#profile tr[data-setting="records"]').text
    assert "global default" in records
    with site.store.reading() as session:
        assert effective_profile(session, get_user(session, rep).id).direction == "crm_to_calendar"

    # The global default: the user inherits it where they do not override.
    browser.get(f"{site.url}admin/")
    form = browser.find_element(By.ID, "global-profile")
    Select(form.find_element(By.ID, "profile-sync_invitees")).select_by_value("off")
    submit(browser, By.CSS_SELECTOR, "#global-profile button[type=submit]")
    try:
        browser.get(f"{site.url}admin/users/{rep}/sync")
        invitees = browser.find_element(By.CSS_SELECTOR,
                                        '#profile tr[data-setting="sync_invitees"]').text
        assert "off" in invitees and "global default" in invitees
    finally:
        with site.store.transaction() as session:
            update_profile(session, None, ProfileChanges(sync_invitees=True))


def live_entries(session: Any, username: str) -> list[DiaryEntry]:
    user = get_user(session, username)
    return list(session.scalars(select(DiaryEntry).where(
        DiaryEntry.owner_user_id == user.id, DiaryEntry.deleted_at.is_(None))))


def test_copy_buttons_work_under_the_content_security_policy(browser: Any, site: Gateway
                                                             ) -> None:
    username = unique("fay")
    sign_up(browser, site, username, "fays web password")
    button = browser.find_element(By.CSS_SELECTOR, 'button[data-copy="bcc-address"]')
    button.click()
    WebDriverWait(browser, 10).until(lambda driver: button.text == "Copied")
    # A script or style the policy blocked would be logged as an error.
    errors = [entry for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and entry["source"] != "network"]
    assert not errors, errors


def test_admin_sees_mailboxes_and_retries_failed_mail(browser: Any, site: Gateway) -> None:
    rep = unique("gus")
    new_person(site, rep)
    with site.store.transaction() as session:
        user = get_user(session, rep)
        settings = MailSettings("imap.example.com", 993, "ssl", f"{rep}@example.com", "secret")
        set_account(session, user, settings, SecretBox(TEST_SECRET_KEY))
        failed = InboundMessage(mail_from=f"{rep}@crm.example", rcpt_tos=[], user_id=user.id,
                                raw=b"x", size=1, status="failed",
                                last_error=f"<script>{rep}</script> broke")
        session.add(failed)
        session.flush()
        failed_id = failed.id
    admin = unique("hal")
    sign_up(browser, site, admin, "hals web password", admin=True)
    browser.get(site.url + "admin/")
    row = browser.find_element(By.CSS_SELECTOR, f'#mailbox-table tr[data-user="{rep}"]')
    assert f"{rep}@example.com at imap.example.com:993" in row.text
    assert "not polled yet" in row.text
    queue = browser.find_element(By.ID, "queue").text
    assert f"<script>{rep}</script> broke" in queue  # shown as text, escaped
    submit(browser, By.CSS_SELECTOR, f'form[action="/admin/inbound/{failed_id}/retry"] button')
    with site.store.reading() as session:
        assert session.get(InboundMessage, failed_id).status == "queued"
    assert f"<script>{rep}</script>" not in browser.find_element(By.ID, "queue").text


def test_a_rep_turns_the_added_to_the_crm_mail_off_and_on(browser: Any, site: Gateway) -> None:
    username = unique("ned")
    sign_up(browser, site, username, "neds web password")
    box = browser.find_element(By.ID, "notify-client-adds")
    assert box.is_selected()  # on by default
    box.click()
    submit(browser, By.ID, "notify-save")
    assert not browser.find_element(By.ID, "notify-client-adds").is_selected()
    with site.store.reading() as session:
        assert get_user(session, username).notify_client_adds is False
    browser.find_element(By.ID, "notify-client-adds").click()
    submit(browser, By.ID, "notify-save")
    with site.store.reading() as session:
        assert get_user(session, username).notify_client_adds is True


def test_admin_sets_a_users_invitations(browser: Any, site: Gateway) -> None:
    rep = unique("ivy")
    new_person(site, rep)
    admin = unique("ian")
    sign_up(browser, site, admin, "ians web password", admin=True)
    browser.get(f"{site.url}admin/users/{rep}/sync")
    Select(browser.find_element(By.ID, "profile-invitations")).select_by_value(
        "after_first_sync")
    submit(browser, By.ID, "profile-save")
    assert browser.find_element(By.ID, "done").text == "Sync profile saved."
    with site.store.reading() as session:
        profile = effective_profile(session, get_user(session, rep).id)
        assert profile.invitations == "after_first_sync"
        assert profile.records == "all"  # left as it was: still inherited
