"""The Radicale auth plugin: CRM users log in by username or email with an app password.

Verified credentials are cached briefly so argon2 does not run on every request; failed
logins are logged with the peer address and the reason.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from radicale import auth

from gateway import app_passwords
from gateway.users import find_login
from storage_plugin.registry import store_for

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0  # a revoked password or a user's diary sync turned off bites this late

_cache: dict[str, tuple[str, float]] = {}
_cache_lock = threading.Lock()


def _key(login: str, password: str) -> str:
    return hashlib.sha256(f"{login}\0{password}".encode()).hexdigest()


class Auth(auth.BaseAuth):
    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.store = store_for(configuration)

    def _login(self, login: str, password: str) -> str:
        return self._check(login, password, "unknown")

    def _login_ext(self, login: str, password: str, context: auth.AuthContext) -> str:
        return self._check(login, password, context.remote_addr or "unknown")

    def _check(self, login: str, password: str, peer: str) -> str:
        if not login or not password:
            return ""
        key = _key(login, password)
        now = time.monotonic()
        with _cache_lock:
            cached = _cache.get(key)
            if cached is not None and cached[1] > now:
                return cached[0]
        with self.store.reading() as session:
            user = find_login(session, login)
            reason = None
            if user is None:
                reason = "no such user"
            elif not user.diary_sync:
                reason = f"diary sync is off for user {user.username!r}"
            elif not app_passwords.matches(session, user, password):
                reason = "wrong or revoked app password"
            username = user.username if user is not None else ""
        if reason is not None:
            log.warning("CalDAV login failed for %r from %s: %s", login, peer, reason)
            return ""
        with _cache_lock:
            _cache[key] = (username, now + CACHE_SECONDS)
        return username
