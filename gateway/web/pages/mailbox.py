"""Connecting a rep's mailbox from "My sync": presets, the step-by-step test, sync now.

The connectivity test and the one-off poll are the IMAP edge's, which the process provides
to the core (``gateway.mail_probe``), as for the API; this WSGI thread waits for them.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from gateway import mail_probe, web_logins
from gateway.errors import DomainError
from gateway.key_check import check_key
from gateway.mail_accounts import (
    POP3_REFUSED,
    PROVIDERS,
    pause_account,
    remove_account,
    resolve_settings,
    resume_account,
    set_account,
)
from gateway.secrets import SecretBox
from gateway.web.pages.account import HOME, my_sync, signed_in
from gateway.web.pages.page import Page

PAUSED_FROM_PAGE = "paused from My sync"
FIELDS = ("provider", "protocol", "host", "port", "tls", "login")


def run_test(page: Page, user_id: int) -> mail_probe.Outcome:
    """The connectivity test of the user's account; pauses it when the login was refused."""
    with page.app.store.reading() as session:
        username = web_logins.get_person(session, user_id).username
    return mail_probe.test_mailbox(page.app.store, username)


def connect(page: Page) -> Response:
    user_id = signed_in(page)
    form = {name: page.request.form.get(name, "").strip() for name in FIELDS}
    password = page.request.form.get("password", "")
    errors: dict[str, str] = {}
    if form["protocol"].lower() == "pop3":
        errors["protocol"] = POP3_REFUSED
    elif form["port"] and not form["port"].isdigit():
        errors["port"] = f"{form['port']!r} is not a port number"
    if errors:
        return my_sync(page, 400, mailbox_form=form, errors=errors)
    provider = form["provider"] if form["provider"] in PROVIDERS else None
    try:
        settings = resolve_settings(
            provider=provider, host=form["host"] or None,
            port=int(form["port"]) if form["port"] else None, tls=form["tls"] or None,
            login=form["login"], password=password, folders=None)
        key = page.app.config.get("security", "secret_key")
        check_key(page.app.store, key)
        with page.app.store.transaction() as session:
            user = web_logins.get_person(session, user_id)
            set_account(session, user, settings, SecretBox(key))
    except DomainError as exc:
        return my_sync(page, 400, mailbox_form=form, errors={"mailbox": str(exc)})
    return my_sync(page, check=run_test(page, user_id), mailbox_form=form)


def mailbox_action(page: Page) -> Response:
    user_id = signed_in(page)
    action = page.request.form.get("action", "")
    with page.app.store.reading() as session:
        username = web_logins.get_person(session, user_id).username
    try:
        if action == "test":
            return my_sync(page, check=run_test(page, user_id))
        if action == "sync":
            return my_sync(page, polled=mail_probe.poll_mailbox(username))
        with page.app.store.transaction() as session:
            user = web_logins.get_person(session, user_id)
            if action == "resume":
                resume_account(session, user)
            elif action == "pause":
                pause_account(session, user, PAUSED_FROM_PAGE)
            elif action == "disconnect":
                remove_account(session, user)
    except DomainError as exc:
        return my_sync(page, 400, errors={"mailbox": str(exc)})
    return page.redirect(HOME + "#mailbox")


ROUTES = (
    ("/account/mailbox", "mailbox_connect", ["POST"], connect),
    ("/account/mailbox/action", "mailbox_action", ["POST"], mailbox_action),
)
