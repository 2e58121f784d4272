"""Sign-in, invitations, sign-out, and the rep's "My sync" page."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

from gateway import app_passwords, web_logins
from gateway.activity_queries import contacts_by_activity
from gateway.bcc_addresses import bcc_address
from gateway.calendars import user_calendars
from gateway.errors import DomainError, NotFound
from gateway.feeds import user_feed
from gateway.inbound_queue import recent_decisions
from gateway.linked_calendars import PROVIDERS as CALDAV_PROVIDERS
from gateway.linked_calendars import describe, links_of
from gateway.mail_accounts import PROVIDERS, TLS_MODES, find_account
from gateway.models import AppPassword, User
from gateway.profiles import (
    ProfileChanges,
    check_rep_may_change,
    effective_profile,
    rep_choices,
    update_profile,
)
from gateway.publication import publish_user
from gateway.sync_admin import change_profile
from gateway.users import UserChanges, update_user
from gateway.web.pages.page import Page

log = logging.getLogger(__name__)

HOME = "/account/"
THROTTLED = "Too many failed sign-ins. Wait a minute, then try again."
DECISIONS_SHOWN = 50
WRONG = "That login and password do not match a web account."
LINK_NAMES = {"icloud": "iCloud", "fastmail": "Fastmail", "nextcloud": "Nextcloud",
              "yahoo": "Yahoo", "custom": "Other CalDAV server"}
LINK_PROVIDERS = [(name, LINK_NAMES.get(name, name) + (f" ({url})" if url else ""))
                  for name, url in CALDAV_PROVIDERS.items()]


def signed_in(page: Page) -> int:
    if page.user_id is None:
        raise Forbidden("Sign in first.")
    return page.user_id


def home(page: Page) -> Response:
    if page.user_id is None:
        return page.render("sign_in.html", title="Sign in", login="", error="")
    return my_sync(page)


def sign_in(page: Page) -> Response:
    form = page.request.form
    login, password = form.get("login", "").strip(), form.get("password", "")
    app = page.app
    account = f"web:{login.lower()}"
    score, _ = app.throttle.score(account, page.peer)
    if app.throttle.spacing(score, app.throttle.account_limit) >= app.throttle.max_delay:
        log.warning("web sign-in of %r from %s refused: throttled", login, page.peer)
        return page.render("sign_in.html", 429, title="Sign in", login=login, error=THROTTLED)
    with app.throttle.turn(account, page.peer) as admitted:
        if not admitted:
            log.warning("web sign-in of %r from %s refused: throttled", login, page.peer)
            return page.render("sign_in.html", 429, title="Sign in", login=login,
                               error=THROTTLED)
        with app.store.reading() as session:
            user, version = web_logins.verify(session, login, password)
            user_id = user.id if user is not None else None
    if user_id is None:
        app.throttle.failed(account, page.peer)
        log.warning("web sign-in of %r from %s failed", login, page.peer)
        return page.render("sign_in.html", 401, title="Sign in", login=login, error=WRONG)
    log.info("web sign-in of %r from %s", login, page.peer)
    page.session = page.session.signed_in_as(user_id, version)
    return page.redirect(HOME)


def sign_out(page: Page) -> Response:
    if page.user_id is not None:
        with page.app.store.transaction() as session:
            web_logins.end_sessions(session, page.user_id)
    page.session = page.session.signed_out()
    return page.redirect(HOME)


def invitation(page: Page, token: str) -> Response:
    app = page.app
    error = ""
    if page.request.method == "POST":
        password = page.request.form.get("password", "")
        again = page.request.form.get("again", "")
        try:
            if password != again:
                error = "The two passwords differ."
            else:
                with app.store.transaction() as session:
                    user = web_logins.redeem(session, token, password)
                    user_id = user.id
                    version = web_logins.session_version(session, user_id)
                page.session = page.session.signed_in_as(user_id, version)
                return page.redirect(HOME)
        except NotFound as exc:
            return page.render("error.html", 404, title="Invitation", message=str(exc))
        except DomainError as exc:
            error = str(exc)
    try:
        with app.store.reading() as session:
            user = web_logins.invitation_user(session, token)
            username = user.username
    except NotFound as exc:
        return page.render("error.html", 404, title="Invitation", message=str(exc))
    return page.render("invite.html", 400 if error else 200, title="Set your password",
                       username=username, error=error, minimum=web_logins.MIN_PASSWORD)


def sync_view(page: Page, session: Session, user: User, **extra: Any) -> dict[str, Any]:
    """What the "My sync" page shows for ``user``."""
    base = page.app.base_url
    profile = effective_profile(session, user.id)
    live = [p for p in user.app_passwords if p.revoked_at is None]
    logging_address = page.app.config.get("smtp", "logging_address")
    values: dict[str, Any] = {
        "title": "My sync", "user": user, "base_url": base,
        "principal_url": f"{base}{user.username}/",
        "passwords": sorted(live, key=lambda p: p.id), "calendars": user_calendars(session, user),
        "paused": profile.paused, "log_email": profile.log_email,
        "choice": choice_of(user.diary_sync, profile.log_email),
        "bcc": bcc_address(session, user, logging_address, rotate=False),
        "issued": None, "label": "", "errors": {},
        "mailbox": find_account(session, user), "mailbox_form": {}, "check": None,
        "polled": None, "providers": [(name, f"{name.title()} ({p.host})")
                                      for name, p in PROVIDERS.items()],
        "tls_modes": TLS_MODES,
        "links": [describe(session, link) for link in links_of(session, user)],
        "link_providers": LINK_PROVIDERS, "link_form": {}, "link_check": None,
        "link_done": None, "link_passes": None,
        "rep_choices": rep_choices(session), "profile": profile,
        "feed": user_feed(session, user.id), "feed_url": None,
    }
    decisions = recent_decisions(session, user.id, DECISIONS_SHOWN)
    values["decisions"] = decisions
    values["decision_contacts"] = contacts_by_activity(
        session, [d.activity_id for d in decisions if d.activity_id is not None])
    values.update(extra)
    return values


def my_sync(page: Page, status: int = 200, **extra: Any) -> Response:
    user_id = signed_in(page)
    with page.app.store.transaction() as session:
        user = web_logins.get_person(session, user_id)
        values = sync_view(page, session, user, **extra)
        return page.render("my_sync.html", status, **values)


def create_app_password(page: Page) -> Response:
    user_id = signed_in(page)
    label = page.request.form.get("label", "")
    try:
        with page.app.store.transaction() as session:
            user = web_logins.get_person(session, user_id)
            issued = app_passwords.issue(session, user, label)
    except DomainError as exc:
        return my_sync(page, 400, label=label, errors={"label": str(exc)})
    return my_sync(page, issued=issued)


def revoke_app_password(page: Page, password_id: int) -> Response:
    user_id = signed_in(page)
    with page.app.store.transaction() as session:
        user = web_logins.get_person(session, user_id)
        row = session.get(AppPassword, password_id)
        if row is None or row.user_id != user.id:
            raise Forbidden("That app password is not yours.")
        app_passwords.revoke(session, user, password_id)
    return page.redirect(HOME + "#calendar")


def calendar_state(page: Page) -> Response:
    """Pause or resume the rep's calendars (the sync profile), or stop or start diary sync
    (which keeps its eligibility rule)."""
    user_id = signed_in(page)
    action = page.request.form.get("action", "")
    try:
        with page.app.store.transaction() as session:
            user = web_logins.get_person(session, user_id)
            if action in ("pause", "resume"):
                update_profile(session, user, ProfileChanges(paused=action == "pause"))
            elif action in ("stop", "start"):
                if update_user(session, user, UserChanges(diary_sync=action == "start")):
                    publish_user(session, user)
            else:
                raise Forbidden("Unknown action.")
    except DomainError as exc:
        return my_sync(page, 400, errors={"calendar": str(exc)})
    return page.redirect(HOME + "#calendar")


CHOICES = {"both": (True, True), "calendar": (True, False), "email": (False, True)}


def choice_of(diary_sync: bool, log_email: bool) -> str:
    """Which of CHOICES (diary sync, mail logged) a user's settings are; "none" for neither."""
    for name, settings in CHOICES.items():
        if settings == (diary_sync, log_email):
            return name
    return "none"


def what_to_sync(page: Page) -> Response:
    """Email, calendar or both: diary sync (with its eligibility rule) and whether mail is
    logged (the sync profile), set together in one transaction."""
    user_id = signed_in(page)
    choice = page.request.form.get("what", "")
    if choice not in CHOICES:
        return my_sync(page, 400, errors={"what": "Choose email, calendar or both."})
    diary_sync, log_email = CHOICES[choice]
    try:
        with page.app.store.transaction() as session:
            user = web_logins.get_person(session, user_id)
            update_profile(session, user, ProfileChanges(log_email=log_email))
            if update_user(session, user, UserChanges(diary_sync=diary_sync)):
                publish_user(session, user)
    except DomainError as exc:
        return my_sync(page, 400, errors={"what": str(exc)})
    return page.redirect(HOME)


def notifications(page: Page) -> Response:
    """The rep's "added to the CRM" mail: on (the box ticked) or off."""
    user_id = signed_in(page)
    wanted = page.request.form.get("notify", "") == "on"
    with page.app.store.transaction() as session:
        update_user(session, web_logins.get_person(session, user_id),
                    UserChanges(notify_client_adds=wanted))
    return page.redirect(HOME)


def own_profile(page: Page) -> Response:
    """The settings of the sync profile the admin lets reps change for themselves."""
    user_id = signed_in(page)
    form = page.request.form
    switch = {"on": True, "off": False}.get(form.get("sync_invitees", ""))
    changes = ProfileChanges(records=form.get("records") or None,
                             direction=form.get("direction") or None, sync_invitees=switch)
    try:
        with page.app.store.transaction() as session:
            user = web_logins.get_person(session, user_id)
            current = effective_profile(session, user.id)
            changed = ProfileChanges(**{
                name: value for name, value in vars(changes).items()
                if value is not None and value != getattr(current, name)})
            check_rep_may_change(session, changed)
            change_profile(session, user, changed)
    except DomainError as exc:
        return my_sync(page, 400, errors={"profile": str(exc)})
    return page.redirect(HOME + "#settings")


ROUTES = (
    ("/account/what", "what_to_sync", ["POST"], what_to_sync),
    ("/account/notifications", "notifications", ["POST"], notifications),
    ("/account/profile", "own_profile", ["POST"], own_profile),
    ("/account/", "home", ["GET"], home),
    ("/account/sign-in", "sign_in", ["POST"], sign_in),
    ("/account/sign-out", "sign_out", ["POST"], sign_out),
    ("/account/invite/<token>", "invitation", ["GET", "POST"], invitation),
    ("/account/app-passwords", "create_app_password", ["POST"], create_app_password),
    ("/account/app-passwords/<int:password_id>/revoke", "revoke_app_password", ["POST"],
     revoke_app_password),
    ("/account/calendar", "calendar_state", ["POST"], calendar_state),
)
