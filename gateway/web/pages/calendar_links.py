"""Linking the rep's own calendar account from "My sync": the form with provider presets,
the step-by-step test, and test / sync now / unlink for each link.

The flow is ``gateway.linked_ops``, the same as ``crm-gateway calendars link`` and the
API's; it talks to the account from this request's worker thread.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from gateway import linked_ops, web_logins
from gateway.errors import DomainError
from gateway.web.pages.account import HOME, my_sync, signed_in
from gateway.web.pages.page import Page

FIELDS = ("provider", "url", "login", "target", "sources")


def _username(page: Page, user_id: int) -> str:
    with page.app.store.reading() as session:
        return web_logins.get_person(session, user_id).username


def link(page: Page) -> Response:
    user_id = signed_in(page)
    form = {name: page.request.form.get(name, "").strip() for name in FIELDS}
    sources = tuple(name.strip() for name in form["sources"].split(",") if name.strip())
    request = linked_ops.LinkRequest(
        username=_username(page, user_id), login=form["login"],
        password=page.request.form.get("password", ""), provider=form["provider"] or "custom",
        url=form["url"] or None, target=form["target"] or linked_ops.DEFAULT_TARGET,
        sources=sources)
    try:
        linked = linked_ops.link_account(page.app.config, page.app.store, request)
    except linked_ops.LinkRefused as exc:
        return my_sync(page, 400, link_form=form, link_check=exc.check,
                       errors={"linked": f"Nothing was linked: the test {exc}."})
    except DomainError as exc:
        return my_sync(page, 400, link_form=form, errors={"linked": str(exc)})
    done = f"Linked: your diary goes to {linked.target.name or linked.target.url}"
    if linked.made_target:
        done += " (made on the account just now)"
    if linked.sources:
        done += "; events are fetched from " + ", ".join(s.name or s.url for s in linked.sources)
    return my_sync(page, link_check=linked.check, link_done=done + ".")


def link_action(page: Page, link_id: int) -> Response:
    user_id = signed_in(page)
    username = _username(page, user_id)
    action = page.request.form.get("action", "")
    app = page.app
    try:
        if action == "test":
            _, check = linked_ops.test_link(app.config, app.store, username, link_id)
            return my_sync(page, link_check=check)
        if action == "sync":
            with app.store.reading() as session:
                linked_ops.chosen_link(session, username, link_id)  # the rep's own, or 404
            reports = linked_ops.sync_links(app.config, app.store, username)
            return my_sync(page, link_passes=reports or None,
                           link_done=None if reports else
                           "Another process is syncing your calendars right now.")
        if action == "unlink":
            _, removal = linked_ops.unlink(
                app.config, app.store, username, link_id,
                remove_pushed=page.request.form.get("remove_pushed") == "on")
            done = "Unlinked."
            if removal is not None:
                done += f" Removed {len(removal.removed)} events the CRM had put there"
                done += (f"; left {len(removal.kept)} you changed there since." if removal.kept
                         else ".")
            return my_sync(page, link_done=done)
    except DomainError as exc:
        return my_sync(page, 400, errors={"linked": str(exc)})
    return page.redirect(HOME + "#linked")


ROUTES = (
    ("/account/linked", "link_calendar", ["POST"], link),
    ("/account/linked/<int:link_id>", "link_action", ["POST"], link_action),
)
