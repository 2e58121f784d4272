"""The pages' WSGI app: routing, the session on every request, CSRF on every POST, headers.

Each view gets a ``Page`` (the request, the session, the signed-in user's id) and returns a
werkzeug Response. A POST without the session's CSRF token is refused (403) before any view
runs; a signed-in session whose version is no longer the user's (signed out elsewhere, new
password, admin reset) is treated as signed out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from gateway import web_logins
from gateway.config import Config, public_base_url
from gateway.db import Store
from gateway.login_throttle import Throttle
from gateway.web.pages import (
    account,
    admin,
    calendar_links,
    calendar_setup,
    entries,
    feed,
    mail,
    mailbox,
)
from gateway.web.pages.page import Page
from gateway.web.pages.sessions import SessionCodec, csrf_ok, with_headers

log = logging.getLogger(__name__)

STATIC = {"style.css": "text/css; charset=utf-8", "copy.js": "text/javascript; charset=utf-8"}


View = Callable[..., Response]


class PagesApp:
    """The people's pages under ``/account/`` and ``/admin/``."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config, self.store = config, store
        self.base_url = public_base_url(config)
        self.codec = SessionCodec(config.get("security", "secret_key"),
                                  secure=self.base_url.startswith("https:"))
        self.throttle = Throttle(
            account_limit=config.get("auth", "account_failures"),
            address_limit=config.get("auth", "address_failures"),
            half_life=float(config.get("auth", "throttle_half_life_seconds")),
            max_delay=config.get("auth", "throttle_max_delay_ms") / 1000)
        self.templates = Environment(loader=PackageLoader("gateway.web.pages", "templates"),
                                     autoescape=select_autoescape(default=True))
        self.rules: dict[str, View] = {}
        self.url_map = Map([Rule("/account/static/<name>", endpoint="static", methods=["GET"])])
        for module in (account, calendar_setup, calendar_links, mail, mailbox, admin, entries,
                       feed):
            for path, endpoint, methods, view in module.ROUTES:
                self.url_map.add(Rule(path, endpoint=endpoint, methods=methods))
                self.rules[endpoint] = view

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        session, _ = self.codec.load(request)
        user_id = None
        if session.user_id is not None:
            with self.store.reading() as db:
                live = web_logins.session_version(db, session.user_id)
            if live and live == session.version:
                user_id = session.user_id
            else:
                session = session.signed_out()
        page = Page(request, session, user_id, self)
        try:
            adapter = self.url_map.bind_to_environ(request.environ)
            endpoint, args = adapter.match()
            if endpoint == "static":
                response = static_file(args["name"])
            elif request.method == "POST" and not csrf_ok(session, request):
                log.warning("web: POST %s without a valid CSRF token from %s",
                            request.path, page.peer)
                response = page.render("error.html", 403, title="Refused",
                                       message="This form is out of date or was not sent "
                                       "from this site. Reload the page and try again.")
            else:
                response = self.rules[endpoint](page, **args)
        except HTTPException as exc:
            status = exc.code or 500
            response = page.render("error.html", status, title=exc.name,
                                   message=exc.description)
        self.codec.store(response, request, page.session)
        return with_headers(response)


def static_file(name: str) -> Response:
    if name not in STATIC:
        raise NotFound("no such file")
    body = resources.files("gateway.web.pages").joinpath("static", name).read_bytes()
    response = Response(body, content_type=STATIC[name])
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
