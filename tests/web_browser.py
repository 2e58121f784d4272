"""A real headless Chromium, driven by Selenium, and a gateway serving the people's pages.

Chromium and its driver come from Debian (``scripts/install-peers``). Without them the
browser tests are skipped, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from caldav_peer import Gateway, start_gateway, stop_gateway
from peers.bcc_listener import LOG
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from gateway import web_logins
from gateway.diary_types import create_type
from gateway.models import DiaryType
from gateway.users import UserChanges, create_user, get_user, update_user

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE, DESKTOP = 390, 1280


def _require_browser() -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    message = "chromium and chromium-driver are not installed (run scripts/install-peers)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={DESKTOP},900"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def site(module_database_url: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Gateway]:
    """A gateway serving CalDAV and the pages; its logging address is the BCC fixtures'."""
    running = start_gateway(module_database_url, tmp_path_factory.mktemp("web"),
                            ("CRM_GATEWAY_SMTP_LOGGING_ADDRESS", LOG),
                            ("CRM_GATEWAY_AUTH_THROTTLE_MAX_DELAY_MS", "100"))
    with running.store.transaction() as session:
        for name, syncable in (("Meeting", True), ("Call", True), ("Internal", False)):
            if session.query(DiaryType).filter_by(name=name).first() is None:
                create_type(session, name, color="#3A87AD", syncable=syncable)
    yield running
    stop_gateway(running)


def invitation_link(gateway: Gateway, username: str) -> str:
    with gateway.store.transaction() as session:
        token = web_logins.invite(session, get_user(session, username)).token
    return web_logins.invitation_link(gateway.url, token)


def new_person(gateway: Gateway, username: str, *, admin: bool = False,
               diary_sync: bool = True, name: str = "") -> str:
    """A user (email ``username@crm.example``) and an invitation link for them."""
    with gateway.store.transaction() as session:
        user = create_user(session, username, f"{username}@crm.example",
                           name=name or username.title(), admin=admin)
        if diary_sync:
            update_user(session, user, UserChanges(diary_sync=True))
    return invitation_link(gateway, username)


def screenshot(driver: object, folder: Path, name: str) -> None:
    """The current page at phone and desktop width, saved as PNGs in ``folder``."""
    for width in (PHONE, DESKTOP):
        driver.set_window_size(width, 900)  # type: ignore[attr-defined]
        height = driver.execute_script(  # type: ignore[attr-defined]
            "return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(int(height) + 100, 4000))  # type: ignore[attr-defined]
        driver.save_screenshot(str(folder / f"{name}-{width}.png"))  # type: ignore[attr-defined]
    driver.set_window_size(DESKTOP, 900)  # type: ignore[attr-defined]


def cookie_session(driver: object) -> requests.Session:
    """A requests session carrying the browser's cookies (to download files)."""
    session = requests.Session()
    for cookie in driver.get_cookies():  # type: ignore[attr-defined]
        session.cookies.set(cookie["name"], cookie["value"])
    return session


def _left_the_page(element: Any) -> bool:
    """Whether the page that held ``element`` is gone. Chromium answers a lookup of a node of
    a page being replaced either as stale or as "does not belong to the document"."""
    try:
        element.is_enabled()
    except (StaleElementReferenceException, WebDriverException):
        return True
    return False


def submit(driver: Any, by: str, value: str) -> None:
    """Click a form's button and wait for the page it leads to."""
    button = driver.find_element(by, value)
    button.click()
    wait = WebDriverWait(driver, 30)
    wait.until(lambda _: _left_the_page(button))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def sign_up(driver: Any, gateway: Gateway, username: str, password: str, **person: Any) -> None:
    """Open a fresh invitation link in the browser and set the web password."""
    driver.delete_all_cookies()
    driver.get(new_person(gateway, username, **person))
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "again").send_keys(password)
    submit(driver, By.ID, "set-password")
    assert driver.find_element(By.ID, "whoami").text == username


def sign_in(driver: Any, gateway: Gateway, login: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(gateway.url + "account/")
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(password)
    submit(driver, By.ID, "sign-in")
