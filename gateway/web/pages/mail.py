"""The email part of "My sync": rotating the secret BCC address."""

from __future__ import annotations

from werkzeug.wrappers import Response

from gateway import web_logins
from gateway.bcc_addresses import bcc_address
from gateway.web.pages.account import HOME, signed_in
from gateway.web.pages.page import Page


def rotate_bcc(page: Page) -> Response:
    user_id = signed_in(page)
    with page.app.store.transaction() as session:
        user = web_logins.get_person(session, user_id)
        bcc_address(session, user, page.app.config.get("smtp", "logging_address"), rotate=True)
    return page.redirect(HOME + "#email")


ROUTES = (
    ("/account/bcc/rotate", "rotate_bcc", ["POST"], rotate_bcc),
)
