"""A smarthost on loopback: an aiosmtpd server that keeps every message it accepts.

Variants: plain SMTP, STARTTLS (required) and implicit TLS, each optionally with AUTH (PLAIN
and LOGIN, one user). ``fail_next(count, reply)`` makes the next ``count`` DATA commands
answer ``reply`` (``"451 …"`` or ``"550 …"``) instead of 250, as a deferring or refusing
relay would. Tests parse what arrived with the stdlib ``email`` package and ``icalendar``.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import icalendar
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from caldav_peer import free_port

from peers.tls import TlsFiles, write_tls_files

USER, PASSWORD = "gateway", "relay-secret"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"]).strip("<> ")

    def calendar(self) -> icalendar.Calendar | None:
        """The ``text/calendar`` part, parsed; None when there is none."""
        for part in self.message.walk():
            if part.get_content_type() == "text/calendar":
                return icalendar.Calendar.from_ical(part.get_content())
        return None

    def calendar_method_param(self) -> str | None:
        for part in self.message.walk():
            if part.get_content_type() == "text/calendar":
                return part.get_param("method")  # type: ignore[return-value]
        return None

    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())


@dataclass
class Smarthost:
    port: int
    security: str  # "plain" | "starttls" | "tls"
    auth: bool
    tls: TlsFiles | None
    received: list[Received] = field(default_factory=list)
    data_commands: int = 0
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        scheme = {"plain": "smtp", "starttls": "smtp+starttls", "tls": "smtps"}[self.security]
        credentials = f"{USER}:{PASSWORD}@" if self.auth else ""
        host = "localhost" if self.tls else "127.0.0.1"
        return f"{scheme}://{credentials}{host}:{self.port}"

    def env(self, sender: str = "crm@gateway.example") -> dict[str, str]:
        """The gateway settings that send through this smarthost."""
        values = {"CRM_GATEWAY_OUTBOUND_SMTP_URL": self.url,
                  "CRM_GATEWAY_OUTBOUND_FROM_ADDRESS": sender}
        if self.tls is not None:
            values["CRM_GATEWAY_OUTBOUND_CA_FILE"] = str(self.tls.ca_path)
        return values

    def fail_next(self, count: int, reply: str) -> None:
        with self._lock:
            self._failures[:] = [reply] * count

    def answer(self, envelope: Envelope, login: str | None) -> str:
        with self._lock:
            self.data_commands += 1
            if self._failures:
                return self._failures.pop(0)
            self.received.append(Received(
                str(envelope.mail_from), tuple(str(r) for r in envelope.rcpt_tos),
                bytes(envelope.original_content or envelope.content or b""), login))
        return "250 2.0.0 OK queued"

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages())} mail(s) of {count} after {timeout}s")

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self._failures.clear()
            self.data_commands = 0


class _Handler:
    def __init__(self, host: Smarthost):
        self.host = host

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        found = getattr(session, "auth_data", None)
        login = found.decode() if isinstance(found, bytes) else None
        return self.host.answer(envelope, login)


class _Controller(Controller):
    def factory(self) -> SMTP:
        # Implicit TLS with AUTH: aiosmtpd warns that AUTH does not require (STARTTLS) TLS.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            return super().factory()


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@contextmanager
def smarthost(folder: Path, security: str = "plain", auth: bool = False
              ) -> Iterator[Smarthost]:
    """A running smarthost; ``folder`` holds its certificates for the TLS variants."""
    folder.mkdir(parents=True, exist_ok=True)
    tls = write_tls_files(folder) if security != "plain" else None
    host = Smarthost(free_port(), security, auth, tls)
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.cert_path), str(tls.key_path))
    kwargs: dict[str, Any] = {}
    if auth:
        kwargs.update(authenticator=_authenticator, auth_required=True,
                      # aiosmtpd counts only STARTTLS as TLS; implicit TLS is TLS too.
                      auth_require_tls=security == "starttls")
    if security == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    controller = _Controller(_Handler(host), hostname="127.0.0.1", port=host.port,
                            ssl_context=context if security == "tls" else None,
                            server_hostname="localhost", **kwargs)
    controller.start()
    try:
        yield host
    finally:
        controller.stop()
