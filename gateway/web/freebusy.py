"""``/freebusy/``: a rep's free/busy time as a VFREEBUSY, for colleagues and booking tools.

- ``/freebusy/<username>.ifb``: any enabled CRM user signed in with HTTP Basic and one of
  their app passwords (as for CalDAV; failed logins are throttled the same way) may read any
  colleague's free/busy time (only busy periods, never titles);
- ``/freebusy/t/<token>.ifb``: no login, the rep's secret token is the credential
  (``gateway.freebusy``); an unknown or revoked one is a plain 404.

``?start=&end=`` (ISO 8601 with an offset) choose the window, by default from now on for
``availability.max_days`` days; a longer window is refused with 400, not cut.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from gateway import freebusy
from gateway.clock import utcnow
from gateway.config import Config
from gateway.db import Store
from gateway.errors import Invalid
from gateway.logins import Settings, authenticator_for
from gateway.models import User
from gateway.web.outage import plain_wsgi

log = logging.getLogger(__name__)
MEDIA_TYPE = "text/calendar; charset=utf-8"
PREFIX = "/freebusy/"
TOKEN_PREFIX = "/freebusy/t/"
SUFFIX = ".ifb"
CACHE = "private, no-store"
REALM = 'Basic realm="crm-gateway free/busy", charset="UTF-8"'


def _moment(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name}={text!r} is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise Invalid(f"{name}={text!r} needs a UTC offset or Z")
    return value


class FreeBusyApp:
    """The WSGI app that answers ``/freebusy/...`` (it sees the full path)."""

    def __init__(self, store: Store, config: Config):
        self.store = store
        self.max_days: int = config.get("availability", "max_days")
        self.settings = Settings(
            parallel_verifications=config.get("auth", "parallel_verifications"),
            account_failures=config.get("auth", "account_failures"),
            address_failures=config.get("auth", "address_failures"),
            half_life_seconds=config.get("auth", "throttle_half_life_seconds"),
            max_delay_seconds=config.get("auth", "throttle_max_delay_ms") / 1000)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return plain_wsgi("free/busy", self.answer)(environ, start_response)

    def answer(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _text("free/busy time is read-only\n", 405, {"Allow": "GET, HEAD"})
        path = request.path
        if not path.endswith(SUFFIX):
            return _text("no such free/busy URL\n", 404)
        try:
            start = _moment(request.args.get("start"), "start") or utcnow().replace(
                microsecond=0)
            end = _moment(request.args.get("end"), "end") or start + timedelta(
                days=self.max_days)
        except Invalid as exc:
            return _text(f"{exc}\n", 400)
        if path.startswith(TOKEN_PREFIX):
            token = path[len(TOKEN_PREFIX):-len(SUFFIX)]
            with self.store.reading() as session:
                user_id = freebusy.resolve(session, token)
                user = session.get(User, user_id) if user_id is not None else None
                if user is None:
                    return _text("no such free/busy URL\n", 404)
                return self._body(session, user, start, end)
        username = path[len(PREFIX):-len(SUFFIX)]
        refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        with self.store.reading() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                return _text(f"no user named {username!r}\n", 404)
            return self._body(session, user, start, end)

    def _authenticate(self, request: Request) -> Response | None:
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username or not auth.password:
            return _text("sign in with your CRM username and an app password\n", 401,
                         {"WWW-Authenticate": REALM})
        outcome = authenticator_for(self.store, self.settings).authenticate(
            auth.username, auth.password, request.remote_addr or "unknown")
        if outcome.username is None:
            log.warning("free/busy login failed for %r from %s: %s", auth.username,
                        request.remote_addr, outcome.reason)
            return _text("the username or app password is wrong\n", 401,
                         {"WWW-Authenticate": REALM})
        return None

    def _body(self, session: Any, user: User, start: datetime, end: datetime) -> Response:
        try:
            body = freebusy.vfreebusy(session, user, start, end, self.max_days)
        except Invalid as exc:
            return _text(f"{exc}\n", 400)
        return Response(body.encode(), content_type=MEDIA_TYPE,
                        headers={"Cache-Control": CACHE})


def _text(body: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status=status, headers=headers or {},
                    content_type="text/plain; charset=utf-8")
