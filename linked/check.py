"""The connectivity test of a linked account (``calendars test`` and ``calendars link``).

Steps in order: resolve, connect, tls (https only), auth, discovery, calendar list. The
first failure ends the test; the result names that step and why. Nothing is written to the
account.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from caldav.lib import error

from gateway.connectivity import FAILED, OK, SKIPPED
from gateway.linked_ops import AccountCheck
from linked.dav import Account

CheckResult = AccountCheck


def _endpoint(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if tls else 80), tls


def check_account(url: str, login: str, password: str, *, timeout: int = 30) -> CheckResult:
    """Run every step against the real server; never raises for a server-side problem."""
    result = CheckResult()
    host, port, tls = _endpoint(url)
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        result.add("resolve", FAILED, f"cannot resolve {host}: {exc.strerror or exc}")
        return result
    result.add("resolve", OK, f"{host} is {addresses[0][4][0]}")
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        result.add("connect", FAILED, f"cannot connect to {host}:{port}: "
                   f"{exc.strerror or exc}")
        return result
    with connection:
        result.add("connect", OK, f"{host}:{port} accepts connections")
        if tls:
            try:
                with ssl.create_default_context().wrap_socket(connection,
                                                              server_hostname=host) as secured:
                    result.add("tls", OK, f"{secured.version()}, certificate valid for {host}")
            except (ssl.SSLError, OSError) as exc:
                result.add("tls", FAILED, f"TLS with {host} failed: {exc}")
                return result
        else:
            result.add("tls", SKIPPED, "plain http (use https for a real account)")
    account = Account(url, login, password, timeout)
    try:
        _check_dav(account, url, result)
    finally:
        account.close()
    return result


def _check_dav(account: Account, url: str, result: CheckResult) -> None:
    try:
        answer = account.client.request(url, "PROPFIND", "", {"Depth": "0"})
    except error.AuthorizationError as exc:
        if getattr(exc, "status", None) == 401:
            result.add("auth", FAILED, f"the server refused the login {account.client.username!r}"
                       " (wrong password? providers such as iCloud need an app-specific one)")
            return
        answer = None  # 403 on the root: logged in, but not allowed there
    except Exception as exc:
        result.add("auth", FAILED, f"no answer from {url}: {exc}")
        return
    if answer is not None and answer.status == 404:
        result.add("auth", OK, "logged in (nothing at this URL itself)")
    else:
        result.add("auth", OK, f"logged in as {account.client.username}")
    try:
        principal, home = account.discover()
    except Exception as exc:
        result.add("discovery", FAILED, f"no CalDAV principal or calendar home found from "
                   f"{url}: {getattr(exc, 'reason', None) or exc}")
        return
    result.principal_url, result.home_url = principal, home
    result.add("discovery", OK, f"principal {principal}, calendar home {home}")
    try:
        result.calendars = account.calendars()
    except Exception as exc:
        result.add("calendar list", FAILED, f"cannot list the calendars in {home}: "
                   f"{getattr(exc, 'reason', None) or exc}")
        return
    names = ", ".join(c.name or c.url for c in result.calendars) or "none yet"
    result.add("calendar list", OK, f"{len(result.calendars)} calendars: {names}")
