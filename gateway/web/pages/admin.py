"""The admin console (``/admin/``, admin users only): diary types, users, mailboxes, the
inbound queue, and one user's sync (profile, reset, dedupe).

Every change is the core service the CLI calls (``gateway.diary_types``, ``gateway.users``,
``gateway.web_logins``, ``gateway.inbound_queue``), with its refusal shown next to the form.
"""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

from gateway import web_logins
from gateway.diary_types import create_type, list_types, update_type, usage_counts
from gateway.errors import DomainError
from gateway.inbound_queue import FAILED, list_messages, retry, status_counts
from gateway.mail_accounts import find_account, list_accounts
from gateway.models import DiaryType
from gateway.profiles import (
    DIRECTIONS,
    RECORDS,
    Profile,
    ProfileChanges,
    effective_profile,
    explained_profile,
    global_profile,
)
from gateway.publication import publish_type, publish_user
from gateway.sync_admin import change_profile, dedupe, reset_sync
from gateway.users import UserChanges, create_user, get_user, list_users, update_user
from gateway.web.pages.page import Page

CONSOLE = "/admin/"
SWITCHES = ("sync_invitees", "paused", "log_email")
PROFILE_CHOICES = {"records_choices": RECORDS, "direction_choices": DIRECTIONS,
                   "switches": SWITCHES}


def profile_changes(form: Any, current: Profile) -> ProfileChanges:
    """What the profile form changes: only the settings whose value differs from
    ``current``, so a user's setting left as it was stays inherited."""
    changed: dict[str, Any] = {}
    for name in ("records", "direction", "invitations"):
        value = form.get(name, "")
        if value and value != getattr(current, name):
            changed[name] = value
    for name in SWITCHES:
        value = form.get(name, "")
        if value in ("on", "off") and (value == "on") != getattr(current, name):
            changed[name] = value == "on"
    return ProfileChanges(**changed)


def admin_only(page: Page) -> int:
    if page.user_id is None:
        raise Forbidden("Sign in first.")
    with page.app.store.reading() as session:
        if not web_logins.get_person(session, page.user_id).is_admin:
            raise Forbidden("The admin console is for admins only.")
    return page.user_id


def console(page: Page, status: int = 200, **extra: Any) -> Response:
    user_id = admin_only(page)
    with page.app.store.reading() as session:
        values: dict[str, Any] = {
            "title": "Admin console", "user": web_logins.get_person(session, user_id),
            "types": list_types(session), "counts": usage_counts(session),
            "people": list_users(session), "failed": list_messages(session, FAILED),
            "errors": {}, "form": {}, "invitation": None,
            "mailboxes": list_accounts(session), "queue": status_counts(session),
            "global_profile": global_profile(session), **PROFILE_CHOICES,
        }
        values.update(extra)
        return page.render("admin.html", status, **values)


def add_type(page: Page) -> Response:
    admin_only(page)
    form = {name: page.request.form.get(name, "").strip() for name in ("name", "color")}
    try:
        with page.app.store.transaction() as session:
            create_type(session, form["name"], color=form["color"] or "#3A87AD",
                        syncable=page.request.form.get("syncable") == "on")
    except DomainError as exc:
        return console(page, 400, form=form, errors={"new-type": str(exc)})
    return page.redirect(CONSOLE + "#types")


def change_type(page: Page, type_id: int) -> Response:
    admin_only(page)
    form = page.request.form
    syncable = {"on": True, "off": False}.get(form.get("syncable", ""))
    try:
        with page.app.store.transaction() as session:
            diary_type = session.get(DiaryType, type_id)
            if diary_type is None:
                raise Forbidden("No such diary type.")
            if update_type(session, diary_type, rename=form.get("name") or None,
                           color=form.get("color") or None, syncable=syncable):
                publish_type(session, diary_type)
    except DomainError as exc:
        return console(page, 400, errors={f"type-{type_id}": str(exc)})
    return page.redirect(CONSOLE + "#types")


def add_person(page: Page) -> Response:
    admin_only(page)
    form = {name: page.request.form.get(name, "").strip() for name in ("username", "email", "name")}
    try:
        with page.app.store.transaction() as session:
            create_user(session, form["username"], form["email"], name=form["name"],
                        admin=page.request.form.get("admin") == "on")
    except DomainError as exc:
        return console(page, 400, form=form, errors={"new-user": str(exc)})
    return page.redirect(CONSOLE + "#users")


def person_action(page: Page, username: str) -> Response:
    admin_only(page)
    action = page.request.form.get("action", "")
    try:
        with page.app.store.transaction() as session:
            person = get_user(session, username)
            if action == "invite":
                token = web_logins.invite(session, person).token
                link = web_logins.invitation_link(page.app.base_url, token)
                invitation = (username, link)
            elif action == "reset":
                web_logins.reset(session, person)
                invitation = None
            elif action in ("diary-on", "diary-off", "email-on", "email-off"):
                field, value = action.split("-")
                changes = (UserChanges(diary_sync=value == "on") if field == "diary"
                           else UserChanges(email_sync=value == "on"))
                if update_user(session, person, changes):
                    publish_user(session, person)
                invitation = None
            else:
                raise Forbidden("Unknown action.")
    except DomainError as exc:
        return console(page, 400, errors={f"user-{username}": str(exc)})
    if invitation is not None:
        return console(page, invitation=invitation)
    return page.redirect(CONSOLE + "#users")


def retry_message(page: Page, message_id: int) -> Response:
    admin_only(page)
    try:
        with page.app.store.transaction() as session:
            retry(session, message_id)
    except DomainError as exc:
        return console(page, 400, errors={"queue": str(exc)})
    return page.redirect(CONSOLE + "#queue")


def person_sync(page: Page, username: str) -> Response:
    """One user's sync: the profile with what it inherits, the mailbox, and reset / dedupe
    (the dedupe is previewed: nothing is removed until it is confirmed)."""
    user_id = admin_only(page)
    done = ""
    if page.request.method == "POST":
        action = page.request.form.get("action", "")
        with page.app.store.transaction() as session:
            person = get_user(session, username)
            if action == "reset":
                count = reset_sync(session, person)
                done = f"Sync reset: {count} calendar(s); clients resync fully."
            elif action == "dedupe":
                removed = dedupe(session, person, dry_run=False)
                done = f"Removed {len(removed)} duplicate entries."
            elif action == "profile":
                try:
                    changes = profile_changes(page.request.form,
                                              effective_profile(session, person.id))
                    changed = change_profile(session, person, changes)
                except DomainError as exc:
                    return _person_page(page, user_id, username, error=str(exc), status=400)
                done = "Sync profile saved." if changed else "Nothing changed."
            else:
                raise Forbidden("Unknown action.")
    return _person_page(page, user_id, username, done=done)


def _person_page(page: Page, user_id: int, username: str, *, done: str = "",
                 error: str = "", status: int = 200) -> Response:
    with page.app.store.reading() as session:
        person = get_user(session, username)
        preview = dedupe(session, person, dry_run=True)
        return page.render(
            "admin_user.html", status, title=f"Sync of {username} · Admin console",
            user=web_logins.get_person(session, user_id), person=person,
            profile=explained_profile(session, person.id),
            current=effective_profile(session, person.id), mailbox=find_account(session, person),
            duplicates=preview, done=done, error=error, **PROFILE_CHOICES)


def change_global_profile(page: Page) -> Response:
    """The global default every user inherits what they do not override."""
    admin_only(page)
    try:
        with page.app.store.transaction() as session:
            change_profile(session, None, profile_changes(page.request.form,
                                                          global_profile(session)))
    except DomainError as exc:
        return console(page, 400, errors={"profile": str(exc)})
    return page.redirect(CONSOLE + "#profile")


ROUTES = (
    ("/admin/users/<username>/sync", "person_sync", ["GET", "POST"], person_sync),
    ("/admin/", "console", ["GET"], console),
    ("/admin/profile", "change_global_profile", ["POST"], change_global_profile),
    ("/admin/types", "add_type", ["POST"], add_type),
    ("/admin/types/<int:type_id>", "change_type", ["POST"], change_type),
    ("/admin/users", "add_person", ["POST"], add_person),
    ("/admin/users/<username>", "person_action", ["POST"], person_action),
    ("/admin/inbound/<int:message_id>/retry", "retry_message", ["POST"], retry_message),
)
