"""``/feeds/<token>.ics``: a rep's read-only calendar feed, for web calendars to poll.

No login: the secret token in the path is the credential (``gateway.feeds``); an unknown or
revoked one is a plain 404 that says nothing more. The ETag is computed before any entry is
read, so a poll of an unchanged feed (``If-None-Match``) costs O(calendars) and gets 304.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from gateway import feeds
from gateway.config import Config
from gateway.db import Store
from gateway.export import feed_body, feed_etag, feed_window
from gateway.models import User
from gateway.web.outage import plain_wsgi

MEDIA_TYPE = "text/calendar; charset=utf-8"
PREFIX = "/feeds/"
SUFFIX = ".ics"
# Web calendars poll on their own schedule; proxies must not share one rep's feed.
CACHE = "private, max-age=300"


class FeedsApp:
    """The WSGI app that answers ``/feeds/...`` (it sees the full path)."""

    def __init__(self, store: Store, config: Config):
        self.store = store
        self.days_back = config.get("feeds", "window_days_back")
        self.days_ahead = config.get("feeds", "window_days_ahead")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return plain_wsgi("feed", self.answer)(environ, start_response)

    def answer(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response("a feed is read-only\n", status=405,
                            headers={"Allow": "GET, HEAD"}, content_type="text/plain")
        path = request.path
        token = path[len(PREFIX):-len(SUFFIX)] if (
            path.startswith(PREFIX) and path.endswith(SUFFIX)) else ""
        window = feed_window(self.days_back, self.days_ahead)
        with self.store.reading() as session:
            user_id = feeds.resolve(session, token) if token else None
            user = session.get(User, user_id) if user_id is not None else None
            if user is None:
                return Response("no such feed\n", status=404, content_type="text/plain")
            etag = feed_etag(session, user, window)
            if request.if_none_match.contains_weak(etag.strip('"')):  # RFC 9110 13.1.2
                return Response(status=304, headers={"ETag": etag, "Cache-Control": CACHE})
            body, etag = feed_body(session, user, window)
        return Response(body.encode(), content_type=MEDIA_TYPE,
                        headers={"ETag": etag, "Cache-Control": CACHE})
