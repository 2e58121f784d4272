"""The Radicale auth plugin: CRM users log in by username or email with an app password.

Every request is checked against the database (``gateway.logins``): revocations bite on the
next request on every process. Failed logins are logged with the peer address and the reason,
and throttled by the gateway per account and per address; Radicale's own failed-login delay,
which grows to the slowest failure ever seen and then applies to every user, is switched off.
A malformed ``Authorization: Basic`` header is treated as no credentials (401, not 500).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any, cast

from radicale import auth, httputils, types

from gateway.logins import Settings, authenticator_for
from storage_plugin.registry import store_for

log = logging.getLogger(__name__)

def _milliseconds(raw: str) -> float:
    return int(raw) / 1000


# Options of Radicale's [auth] section (``crm-gateway serve`` fills them from [auth] of the
# gateway configuration) and the Settings fields they set.
_OPTIONS: dict[str, tuple[str, Callable[[str], float]]] = {
    "parallel_verifications": ("parallel_verifications", int),
    "account_failures": ("account_failures", int),
    "address_failures": ("address_failures", int),
    "throttle_half_life_seconds": ("half_life_seconds", float),
    "throttle_max_delay_ms": ("max_delay_seconds", _milliseconds),
}


def _settings(configuration: Any) -> Settings:
    values: dict[str, Any] = {}
    for option, (field, parse) in _OPTIONS.items():
        try:
            raw = configuration.get("auth", option)
        except KeyError:
            continue
        try:
            values[field] = parse(str(raw))
        except ValueError:
            values[field] = 0
        if values[field] <= 0:
            raise RuntimeError(f"[auth] {option} = {raw!r}: expected a positive number")
    return Settings(**values)


def _malformed_basic(configuration: Any, environ: types.WSGIEnviron) -> bool:
    """Whether the Authorization header is Basic but not decodable the way Radicale
    decodes it (Radicale would answer 500)."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Basic"):
        return False
    encoded = header[len("Basic"):].strip()
    try:
        decoded = httputils.decode_request(
            configuration, environ, base64.b64decode(encoded.encode("ascii")))
    except (binascii.Error, UnicodeError, LookupError, ValueError):
        return True
    return ":" not in decoded


class Auth(auth.BaseAuth):
    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.authenticator = authenticator_for(store_for(configuration),
                                               _settings(configuration))

    def get_external_login(self, environ: types.WSGIEnviron) -> tuple[()] | tuple[str, str]:
        if _malformed_basic(self.configuration, environ):
            log.warning("malformed Basic credentials from %s: treated as none",
                        environ.get("REMOTE_ADDR", "unknown"))
            # The environ is the request's own dict; Radicale's type says Mapping.
            del cast(dict[str, Any], environ)["HTTP_AUTHORIZATION"]
        return ()

    def _sleep_for_constant_exec_time(self, time_ns_begin: int) -> None:
        """No delay: the gateway throttles failed logins itself (bounded, per account and
        address); Radicale's delay would grow to the slowest failure and hit every user."""

    def _login(self, login: str, password: str) -> str:
        return self._check(login, password, "unknown")

    def _login_ext(self, login: str, password: str, context: auth.AuthContext) -> str:
        return self._check(login, password, context.remote_addr or "unknown")

    def _check(self, login: str, password: str, peer: str) -> str:
        outcome = self.authenticator.authenticate(login, password, peer)
        if outcome.username is None:
            log.warning("CalDAV login failed for %r from %s: %s", login, peer, outcome.reason)
            return ""
        return outcome.username
