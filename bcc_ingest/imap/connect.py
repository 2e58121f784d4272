"""Opening a logged-in IMAP connection, one named step at a time.

The steps are those a connectivity test reports: ``resolve`` (DNS), ``connect``
(TCP, and the greeting on a plain connection), ``tls`` (handshake and certificate, STARTTLS
included), ``login``. A failure raises `StepFailed` naming its step and the server's or the
system's reason; ``auth`` marks a login the server refused, which pauses polling.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import error as net_error
from twisted.internet import ssl
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.threads import deferToThreadPool

from bcc_ingest.imap.guard import AnswerLimits
from bcc_ingest.imap.protocol import GatewayIMAP4Client
from bcc_ingest.imap.wire import ImapError, ImapNo, printable
from gateway.config import Config

Report = Callable[[str, str, str], None]  # (step, "ok" | "skipped", detail)
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
# RFC 5530 codes that say "try again later" rather than "these credentials are wrong".
_TRANSIENT_LOGIN_CODES = {"UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG"}
# Room in one answer beyond two messages: a batch of bodies is at most 16 MiB plus one message.
ANSWER_SLACK_BYTES = 32 * 1024 * 1024


class Mailbox(Protocol):
    """Where and as whom to connect (a `gateway.mail_leases.PollTarget` is one)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls(self) -> str: ...
    @property
    def login(self) -> str: ...
    @property
    def password(self) -> str: ...


@dataclass(frozen=True)
class ImapOptions:
    """The ``[imap]`` configuration section."""

    interval: int = 300
    backfill_days: int = 30
    ca_file: str = ""
    connect_timeout: int = 30
    command_timeout: int = 60
    command_deadline: int = 600
    max_message_bytes: int = 25 * 1024 * 1024
    max_backoff: int = 3600
    max_accounts: int = 50

    @classmethod
    def from_config(cls, config: Config) -> ImapOptions:
        def get(key: str) -> Any:
            return config.get("imap", key)

        return cls(
            interval=get("interval"), backfill_days=get("backfill_days"),
            ca_file=get("ca_file"), connect_timeout=get("connect_timeout_seconds"),
            command_timeout=get("command_timeout_seconds"),
            command_deadline=get("command_deadline_seconds"),
            max_message_bytes=get("max_message_bytes") or config.get("smtp",
                                                                     "max_message_bytes"),
            max_backoff=get("max_backoff_seconds"), max_accounts=get("max_accounts"),
        )

    @property
    def limits(self) -> AnswerLimits:
        """One literal is at most a message; one answer at most a batch of bodies (see sync)."""
        return AnswerLimits(
            deadline=self.command_deadline, max_literal=self.max_message_bytes,
            max_answer=2 * self.max_message_bytes + ANSWER_SLACK_BYTES,
        )


class StepFailed(Exception):
    """Step `step` failed for `reason`; `auth` when the server refused the credentials."""

    def __init__(self, step: str, reason: str, *, auth: bool = False) -> None:
        reason = printable(reason)
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason
        self.auth = auth


def describe_error(exc: BaseException) -> str:
    """One printable line for a user, at most a few hundred characters; never includes
    message content or credentials."""
    return printable(_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SSL.Error):
        reasons = [part[2] for part in exc.args[0] if len(part) > 2] if exc.args else []
        return "TLS handshake failed: " + ("; ".join(r for r in reasons if r) or "unknown")
    if isinstance(exc, VerificationError):
        return f"the server's certificate does not match the host name ({exc.errors!s})"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror}"
    if isinstance(exc, net_error.ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(exc, net_error.TCPTimedOutError | net_error.TimeoutError):
        return "no answer (timed out)"
    if isinstance(exc, net_error.ConnectionDone | net_error.ConnectionLost):
        return "the server closed the connection"
    if isinstance(exc, ImapError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def tls_creator(host: str, ca_file: str) -> Any:
    """A client TLS connection creator verifying `host` against `ca_file` or system trust."""
    if ca_file:
        try:
            pems = _PEM_CERT.findall(Path(ca_file).read_bytes())
        except OSError as exc:
            raise StepFailed("tls", f"imap.ca_file {ca_file}: {exc.strerror}") from None
        if not pems:
            raise StepFailed("tls", f"imap.ca_file {ca_file}: no PEM certificate in it")
        trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(pem) for pem in pems])
    else:
        trust = ssl.platformTrust()
    return ssl.optionsForClientTLS(host.strip("[]"), trustRoot=trust)


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def _certificate_summary(client: GatewayIMAP4Client, host: str) -> str:
    try:
        cert = client.transport.getPeerCertificate().to_cryptography()
        subject, issuer = _common_name(cert.subject), _common_name(cert.issuer)
    except Exception:  # the summary is a courtesy; verification already happened
        return f"certificate verified for {host}"
    return f"certificate of {subject!r} issued by {issuer!r}, verified for {host}"


async def _resolve(reactor: Any, host: str, port: int, timeout: float) -> list[tuple[int, str]]:
    d = deferToThreadPool(reactor, reactor.getThreadPool(), socket.getaddrinfo,
                          host.strip("[]"), port, 0, socket.SOCK_STREAM)
    d.addTimeout(timeout, reactor)
    try:
        infos = await d
    except socket.gaierror as exc:
        raise StepFailed("resolve", describe_error(exc)) from None
    except net_error.TimeoutError:
        raise StepFailed("resolve", f"no answer from DNS within {timeout:g} s") from None
    addresses: list[tuple[int, str]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr[0]) not in addresses:
            addresses.append((family, str(sockaddr[0])))
    if not addresses:
        raise StepFailed("resolve", f"{host} has no IPv4 or IPv6 address")
    return addresses


async def _connect_any(
    reactor: Any, addresses: list[tuple[int, str]], mailbox: Mailbox, options: ImapOptions,
    creator: Any,
) -> tuple[GatewayIMAP4Client, str]:
    last: BaseException | None = None
    for family, address in addresses:
        endpoint_type = TCP6ClientEndpoint if family == socket.AF_INET6 else TCP4ClientEndpoint
        endpoint: Any = endpoint_type(reactor, address, mailbox.port,
                                      timeout=options.connect_timeout)
        if mailbox.tls == "ssl":
            endpoint = wrapClientTLS(creator, endpoint)
        client = GatewayIMAP4Client(options.command_timeout, reactor, options.limits)
        try:
            await connectProtocol(endpoint, client)
        except Exception as exc:
            last = exc
            continue
        return client, address
    assert last is not None
    raise StepFailed("connect", f"{mailbox.host}:{mailbox.port}: {describe_error(last)}")


async def open_session(
    reactor: Any, mailbox: Mailbox, options: ImapOptions, report: Report | None = None
) -> GatewayIMAP4Client:
    """A connection logged in to `mailbox`; raises StepFailed naming the failed step."""
    say: Report = report or (lambda _step, _status, _detail: None)
    addresses = await _resolve(reactor, mailbox.host, mailbox.port, options.connect_timeout)
    say("resolve", "ok", f"{mailbox.host} -> {', '.join(a for _, a in addresses)}")
    creator = tls_creator(mailbox.host, options.ca_file) if mailbox.tls != "none" else None
    client, address = await _connect_any(reactor, addresses, mailbox, options, creator)
    try:
        await _secure(client, mailbox, address, creator, say)
        try:
            await client.log_in(mailbox.login, mailbox.password)
        except ImapNo as exc:
            raise StepFailed("login", exc.text,
                             auth=exc.code not in _TRANSIENT_LOGIN_CODES) from None
        except Exception as exc:
            raise StepFailed("login", describe_error(exc)) from None
        say("login", "ok", f"logged in as {mailbox.login}")
    except BaseException:
        client.transport.abortConnection()
        raise
    return client


async def _secure(
    client: GatewayIMAP4Client, mailbox: Mailbox, address: str, creator: Any, say: Report
) -> None:
    where = f"{address}:{mailbox.port}"
    if mailbox.tls == "ssl":
        say("connect", "ok", where)
        try:
            await client.handshake
            await client.greeted
        except Exception as exc:
            raise StepFailed("tls", describe_error(exc)) from None
        say("tls", "ok", _certificate_summary(client, mailbox.host))
        return
    try:
        await client.greeted
    except Exception as exc:
        raise StepFailed("connect", f"{where}: no IMAP greeting: {describe_error(exc)}") from None
    say("connect", "ok", f"{where}, IMAP greeting received")
    if mailbox.tls == "none":
        say("tls", "skipped", "tls = none: the password and mail cross the network unencrypted")
        return
    if "STARTTLS" not in client.capabilities:
        raise StepFailed("tls", "the server does not offer STARTTLS; try --tls ssl --port 993")
    try:
        await client.start_tls(creator)
    except Exception as exc:
        raise StepFailed("tls", describe_error(exc)) from None
    say("tls", "ok", "STARTTLS, " + _certificate_summary(client, mailbox.host))
