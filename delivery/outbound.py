"""The "outbound" role of ``crm-gateway serve``: send due outbox mail through the smarthost.

Every ``outbound.poll_seconds`` (at once while there is work) the sender leases up to
``outbound.workers`` due mails (``gateway.outbound_leases``), sends each with ``smtplib`` on a
worker thread, never on the event loop, over ``smtp://``, ``smtps://`` (TLS from the start)
or ``smtp+starttls://`` (STARTTLS required), with AUTH when the URL names a user, and records
the attempt. Each mail goes to its one recipient with the Message-ID it was queued with.

Exactly once, as far as SMTP allows: the lease is committed before the conversation and the
outcome right after it, so a mail is never sent twice by two senders, nor again after a 250.
The one window left is a crash (or lost connection) after the smarthost accepted the DATA
and before "sent" was committed: the mail is then sent again after its lease runs out, with
the same Message-ID, by which the smarthost and mail clients can recognise the copy.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from delivery.rounds import Rounds, owner_name
from gateway.clock import utcnow
from gateway.config import SMTP_SCHEMES, Config, ConfigError
from gateway.db import Store
from gateway.outbound_leases import Job, Outcome, RetryPolicy, lease_due, record_attempt

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"plain": 25, "tls": 465, "starttls": 587}


@dataclass(frozen=True)
class Smarthost:
    host: str
    port: int
    security: str  # "plain" | "tls" | "starttls"
    user: str | None
    password: str | None
    ca_file: str | None
    timeout: float

    def __repr__(self) -> str:  # the password stays out of logs
        return f"Smarthost({self.security}://{self.host}:{self.port}, user={self.user!r})"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)


def smarthost_from(config: Config) -> Smarthost:
    """The smarthost of ``outbound.smtp_url``; the password from ``smtp_password``, else
    ``smtp_password_file``, else the URL."""
    url = config.get("outbound", "smtp_url")
    parts = urlsplit(url)
    security = SMTP_SCHEMES[parts.scheme]
    password = unquote(parts.password) if parts.password is not None else None
    if config.get("outbound", "smtp_password"):
        password = config.get("outbound", "smtp_password")
    elif config.get("outbound", "smtp_password_file"):
        path = Path(config.get("outbound", "smtp_password_file"))
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"outbound.smtp_password_file: cannot read {path}: "
                              f"{exc.strerror}") from None
        password = lines[0] if lines else ""
    user = unquote(parts.username) if parts.username else None
    if password and not user:
        raise ConfigError("outbound.smtp_url: a password needs a user (user:password@host)")
    return Smarthost(parts.hostname or "", parts.port or DEFAULT_PORTS[security], security,
                     user, password if user else None,
                     config.get("outbound", "ca_file") or None,
                     float(config.get("outbound", "timeout_seconds")))


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def _connect(smarthost: Smarthost) -> smtplib.SMTP:
    if smarthost.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(smarthost.host, smarthost.port,
                                                timeout=smarthost.timeout,
                                                context=smarthost.tls_context())
    else:
        client = smtplib.SMTP(smarthost.host, smarthost.port, timeout=smarthost.timeout)
    try:
        client.ehlo()
        if smarthost.security == "starttls":
            client.starttls(context=smarthost.tls_context())
            client.ehlo()
        if smarthost.user:
            client.login(smarthost.user, smarthost.password or "")
    except BaseException:
        client.close()
        raise
    return client


def send(job: Job, smarthost: Smarthost) -> Outcome:
    """One attempt at ``job``: the smarthost's final reply, or why there was none."""
    started = time.monotonic()
    try:
        client = _connect(smarthost)
    except smtplib.SMTPResponseException as exc:  # refused at greeting, STARTTLS or AUTH
        return Outcome(exc.smtp_code, f"{exc.smtp_code} {_reply_text(exc.smtp_error)}",
                       _ms_since(started))
    except (OSError, smtplib.SMTPException) as exc:
        return Outcome(None, _error_of(exc), _ms_since(started))
    try:
        code, reply = client.mail(job.sender)
        if code == 250:
            code, reply = client.rcpt(job.recipient)
        if code in (250, 251):
            code, reply = client.data(job.message.encode("ascii", "surrogateescape"))
        outcome = Outcome(code, f"{code} {_reply_text(reply)}", _ms_since(started),
                          permanent=code >= 500)
    except smtplib.SMTPResponseException as exc:  # DATA refused
        outcome = Outcome(exc.smtp_code, f"{exc.smtp_code} {_reply_text(exc.smtp_error)}",
                          _ms_since(started), permanent=exc.smtp_code >= 500)
    except (OSError, smtplib.SMTPException) as exc:
        outcome = Outcome(None, _error_of(exc), _ms_since(started))
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()
        client.close()
    return outcome


def _error_of(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class Sender(Rounds[Job]):
    """Leases, sends and records mail on ``workers`` threads until stopped."""

    name = "outbound"

    def __init__(self, store: Store, smarthost: Smarthost, policy: RetryPolicy, *,
                 poll_seconds: float, workers: int, owner: str) -> None:
        super().__init__(poll_seconds=poll_seconds, workers=workers, owner=owner)
        self.store = store
        self.smarthost = smarthost
        self.policy = policy

    def lease(self) -> list[Job]:
        return lease_due(self.store, self.owner, utcnow(), limit=self.workers,
                         lease_seconds=self.policy.lease_seconds)

    def work(self, job: Job) -> None:
        outcome = send(job, self.smarthost)
        status = record_attempt(self.store, job, self.owner, outcome, utcnow(), self.policy)
        log.info("mail %d <%s> to %r attempt %d: %s (%s)", job.mail_id, job.message_id,
                 job.recipient, job.attempts + 1, status or "lease lost meanwhile",
                 outcome.reply)


def start(config: Config, store: Store) -> object:
    """The role's entry point (gateway.host.ROLES): start, and return the stop coroutine.
    Without a smarthost the role has nothing to do and says so once."""
    if not config.get("outbound", "enabled") or not config.get("outbound", "smtp_url"):
        log.info("outbound mail is off (no outbound.smtp_url, or outbound.enabled = false)")
        return lambda: None
    if not config.get("outbound", "from_address"):
        raise ConfigError("outbound.from_address: needed when outbound.smtp_url is set")
    smarthost = smarthost_from(config)
    policy = RetryPolicy(
        first_retry_seconds=config.get("outbound", "first_retry_seconds"),
        retry_for_seconds=config.get("outbound", "retry_for_seconds"),
        timeout_seconds=config.get("outbound", "timeout_seconds"),
    )
    sender = Sender(store, smarthost, policy, poll_seconds=config.get("outbound", "poll_seconds"),
                    workers=config.get("outbound", "workers"), owner=owner_name())
    sender.start()
    log.info("outbound mail sender %s started (%r)", sender.owner, smarthost)
    return sender.stop
