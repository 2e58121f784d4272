"""The admin console (``/admin/``, admin users only): diary types, users, mailboxes, the
inbound queue, and one user's sync (profile, reset, dedupe).

Every change is the core service the CLI calls (``gateway.diary_types``, ``gateway.users``,
``gateway.web_logins``, ``gateway.inbound_queue``), with its refusal shown next to the form.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import object_session
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

from gateway import app_passwords, web_logins
from gateway.bcc_addresses import bcc_address
from gateway.clock import utcnow
from gateway.diary_types import create_type, list_types, update_type, usage_counts
from gateway.errors import DomainError
from gateway.health import health
from gateway.inbound_queue import FAILED, list_messages, retry, status_counts
from gateway.linked_calendars import describe, links_of
from gateway.mail_accounts import find_account, list_accounts
from gateway.models import AppPassword, DiaryType
from gateway.profiles import (
    DIRECTIONS,
    RECORDS,
    REP_CHOOSABLE,
    Profile,
    ProfileChanges,
    effective_profile,
    explained_profile,
    global_profile,
    rep_choices,
    set_rep_choices,
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
    for name in ("records", "direction", "invitations", "conflicts"):
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
            "health": health(session, utcnow()),
            "rep_choices": rep_choices(session), "rep_choosable": REP_CHOOSABLE,
        }
        values.update(extra)
        return page.render("admin.html", status, **values)


def add_type(page: Page) -> Response:
    admin_only(page)
    form = {name: page.request.form.get(name, "").strip() for name in ("name", "color", "kind")}
    try:
        with page.app.store.transaction() as session:
            create_type(session, form["name"], color=form["color"] or "#3A87AD",
                        syncable=page.request.form.get("syncable") == "on",
                        kind=form["kind"] or "event")
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
    """One user's sync: the profile with what it inherits, app passwords, the BCC address,
    the mailbox, linked calendar accounts, and reset / dedupe (the dedupe is previewed:
    nothing is removed until it is confirmed)."""
    user_id = admin_only(page)
    shown: dict[str, Any] = {}
    if page.request.method == "POST":
        action = page.request.form.get("action", "")
        try:
            with page.app.store.transaction() as session:
                shown = _person_change(page, get_user(session, username), action)
        except DomainError as exc:
            return _person_page(page, user_id, username, status=400,
                                errors={action: str(exc)},
                                label=page.request.form.get("label", ""))
    return _person_page(page, user_id, username, **shown)


def _person_change(page: Page, person: Any, action: str) -> dict[str, Any]:
    """Carry out one of the user page's actions in ``session``; what the page then says."""
    session = object_session(person)
    assert session is not None
    form = page.request.form
    if action == "reset":
        return {"done": f"Sync reset: {reset_sync(session, person)} calendar(s); clients "
                        "resync fully."}
    if action == "dedupe":
        return {"done": f"Removed {len(dedupe(session, person, dry_run=False))} duplicate "
                        "entries."}
    if action == "profile":
        changes = profile_changes(form, effective_profile(session, person.id))
        return {"done": "Sync profile saved." if change_profile(session, person, changes)
                else "Nothing changed."}
    if action == "app-password":
        issued = app_passwords.issue(session, person, form.get("label", ""))
        return {"issued": issued, "done": f"App password {issued.label!r} made: give it to "
                                          f"{person.username} now, it is not shown again."}
    if action == "revoke":
        number = form.get("password_id", "")
        row = session.get(AppPassword, int(number)) if number.isdigit() else None
        if row is None or row.user_id != person.id:
            raise Forbidden(f"No such app password of {person.username}.")
        app_passwords.revoke(session, person, row.id)
        return {"done": f"App password {row.label!r} revoked: it stops working on its next "
                        "request."}
    if action == "rotate-bcc":
        bcc_address(session, person, page.app.config.get("smtp", "logging_address"),
                    rotate=True)
        return {"done": "New BCC address issued; the old one no longer logs mail."}
    raise Forbidden("Unknown action.")


def _person_page(page: Page, user_id: int, username: str, *, status: int = 200,
                 **shown: Any) -> Response:
    with page.app.store.transaction() as session:  # the BCC address is made on first view
        person = get_user(session, username)
        preview = dedupe(session, person, dry_run=True)
        values: dict[str, Any] = {
            "done": "", "errors": {}, "issued": None, "label": "", **shown}
        return page.render(
            "admin_user.html", status, title=f"Sync of {username} · Admin console",
            user=web_logins.get_person(session, user_id), person=person,
            profile=explained_profile(session, person.id),
            current=effective_profile(session, person.id), mailbox=find_account(session, person),
            duplicates=preview,
            passwords=sorted((p for p in person.app_passwords if p.revoked_at is None),
                             key=lambda p: p.id),
            bcc=bcc_address(session, person, page.app.config.get("smtp", "logging_address"),
                            rotate=False),
            links=[describe(session, link) for link in links_of(session, person)],
            **values, **PROFILE_CHOICES)


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


def change_rep_choices(page: Page) -> Response:
    """Which settings reps may change for themselves on My sync."""
    admin_only(page)
    with page.app.store.transaction() as session:
        set_rep_choices(session, [name for name in REP_CHOOSABLE
                                  if page.request.form.get(name) == "on"])
    return page.redirect(CONSOLE + "#profile")


ROUTES = (
    ("/admin/users/<username>/sync", "person_sync", ["GET", "POST"], person_sync),
    ("/admin/rep-choices", "change_rep_choices", ["POST"], change_rep_choices),
    ("/admin/", "console", ["GET"], console),
    ("/admin/profile", "change_global_profile", ["POST"], change_global_profile),
    ("/admin/types", "add_type", ["POST"], add_type),
    ("/admin/types/<int:type_id>", "change_type", ["POST"], change_type),
    ("/admin/users", "add_person", ["POST"], add_person),
    ("/admin/users/<username>", "person_action", ["POST"], person_action),
    ("/admin/inbound/<int:message_id>/retry", "retry_message", ["POST"], retry_message),
)
