"""``/users/{username}/feed``: a rep's secret calendar feed address, made and revoked.

The address is shown only in the answer that makes it (only its hash is stored); making a
new one ends the old, and revoking ends it on its next request (``gateway.feeds``).
"""

from __future__ import annotations

from gateway import feeds
from gateway.config import public_base_url
from gateway.errors import NotFound
from gateway.users import get_user
from gateway.web.api.models import FeedOut
from gateway.web.api.routing import Call, Reply, route

TAG = "users"
FEED = "/users/<username>/feed"


@route("POST", FEED, summary="Make the user's calendar feed address (shown only in this "
       "answer; an earlier one stops working)", tag=TAG, response=FeedOut, status=201)
def create_feed(call: Call) -> FeedOut:
    user = get_user(call.session, call.params["username"])
    token = feeds.create_feed(call.session, user)
    return FeedOut(username=user.username,
                   url=feeds.feed_url(public_base_url(call.config), token))


@route("DELETE", FEED, summary="Revoke the user's calendar feed (404 from its next request)",
       tag=TAG, response=None, status=204)
def revoke_feed(call: Call) -> Reply:
    user = get_user(call.session, call.params["username"])
    if not feeds.revoke_feed(call.session, user):
        raise NotFound(f"user {user.username} has no calendar feed")
    return Reply(status=204)
