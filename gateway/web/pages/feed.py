"""The "Calendar feed" block of My sync: make, replace or revoke the rep's feed address.

The address is shown once, when it is made (only its hash is stored, ``gateway.feeds``);
making a new one ends the old, and revoking ends it from its next request on.
"""

from __future__ import annotations

from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

from gateway import feeds, web_logins
from gateway.preconditions import retrying
from gateway.web.pages.account import HOME, my_sync, signed_in
from gateway.web.pages.page import Page


def feed_action(page: Page) -> Response:
    user_id = signed_in(page)
    action = page.request.form.get("action", "")
    if action not in ("create", "revoke"):
        raise Forbidden("Unknown action.")

    def write() -> str | None:
        with page.app.store.transaction() as session:
            user = web_logins.get_person(session, user_id)
            if action == "revoke":
                feeds.revoke_feed(session, user)
                return None
            return feeds.create_feed(session, user)

    token = retrying(write)  # two tabs making one at once: the database decides, one wins
    if token is None:
        return page.redirect(HOME + "#feed")
    return my_sync(page, feed_url=feeds.feed_url(page.app.base_url, token))


ROUTES = (
    ("/account/feed", "feed_action", ["POST"], feed_action),
)
