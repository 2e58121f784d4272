"""Signed session cookies, CSRF tokens and the security headers of every page.

The cookie holds ``{"u": user id, "v": session version, "c": CSRF token}`` signed with the
configured secret key (itsdangerous, HMAC-SHA1 over a derived key, timestamped); nothing in it
is secret and nothing in it is trusted until the signature and the user's live session
version (``gateway.web_logins.session_version``) agree. A visitor who is not signed in still
gets a cookie with a CSRF token, so the sign-in form is protected as well.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Request, Response

COOKIE = "crm_gateway_session"
MAX_AGE = 7 * 24 * 3600
CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class WebSession:
    user_id: int | None
    version: int
    csrf: str

    def signed_in_as(self, user_id: int, version: int) -> WebSession:
        return WebSession(user_id, version, secrets.token_urlsafe(24))

    def signed_out(self) -> WebSession:
        return WebSession(None, 0, secrets.token_urlsafe(24))


def _fresh() -> WebSession:
    return WebSession(None, 0, secrets.token_urlsafe(24))


class SessionCodec:
    """Reads and writes the session cookie; ``secure`` forces the Secure flag."""

    def __init__(self, secret_key: str, *, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="crm-gateway web session")
        self.secure = secure

    def load(self, request: Request) -> tuple[WebSession, bool]:
        """The request's session and whether it came with a valid cookie."""
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data: Any = self._serializer.loads(raw, max_age=MAX_AGE)
                user = data.get("u")
                return WebSession(int(user) if user is not None else None, int(data["v"]),
                                  str(data["c"])), True
            except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
                pass
        return _fresh(), False

    def store(self, response: Response, request: Request, session: WebSession) -> None:
        value = self._serializer.dumps({"u": session.user_id, "v": session.version,
                                        "c": session.csrf})
        response.set_cookie(COOKIE, value, max_age=MAX_AGE, path="/", httponly=True,
                            samesite="Lax", secure=self.secure or request.scheme == "https")


def csrf_ok(session: WebSession, request: Request) -> bool:
    given = request.form.get("csrf", "")
    return bool(given) and hmac.compare_digest(given, session.csrf)


def with_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response
