"""The aiosmtpd handler: SMTP hooks mapped to the intake's decisions and back to replies.

Thin, as aiosmtpd intends: each hook runs a blocking decision from
``bcc_ingest.smtp.decisions`` on a thread and returns a reply constant from
``bcc_ingest.smtp.replies``. No exception chooses a reply: a failure to reach the store, and
anything unexpected, is a 451 (the sender keeps the message and retries), never aiosmtpd's
default permanent 500 that also leaks the error text.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

from bcc_ingest.smtp.decisions import Delivery, IntakeSettings, admit, check_rcpt
from bcc_ingest.smtp.replies import (
    ERR_451,
    ERR_NOT_AUTHORISED,
    ERR_UNKNOWN_RECIPIENT,
    QUEUED,
    RCPT_OK,
)
from gateway.bcc_addresses import SHARED, SYNC_OFF, USER
from gateway.db import Store
from gateway.inbound_queue import describe_error

log = logging.getLogger(__name__)

T = TypeVar("T")
BUSY_SECONDS = 0.25  # after the last recipient or message, the listener counts as busy this long


def _peer(session: Session) -> tuple[str | None, str]:
    """The client's host, and host:port for the log and the queue row."""
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), f"{peer[0]}:{peer[1]}"
    return None, str(peer)


class BccEnvelope(Envelope):
    """aiosmtpd's envelope, plus the RCPT-time verdict on each accepted recipient."""

    def __init__(self) -> None:
        super().__init__()
        self.recipients: list[int | None] = []  # a user id, or None: the shared address


class BccHandler:
    """Hooks for ``aiosmtpd.smtp.SMTP``; ``on_queued`` is called after each 250."""

    def __init__(self, store: Store, settings: IntakeSettings, executor: Executor,
                 on_queued: Callable[[], None]) -> None:
        self.store = store
        self.settings = settings
        self.executor = executor
        self.on_queued = on_queued
        self._in_flight = 0
        self._last_seen = float("-inf")

    def busy(self) -> bool:
        """Is mail arriving right now (a recipient or message in hand, or one just now)?"""
        return self._in_flight > 0 or time.monotonic() - self._last_seen < BUSY_SECONDS

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        try:
            return await loop.run_in_executor(self.executor, functools.partial(function, *args))
        finally:
            self._in_flight -= 1
            self._last_seen = time.monotonic()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        # No AUTH here: senders prove themselves by token, DKIM or network, not by login.
        session.host_name = hostname
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        _, peer = _peer(session)
        try:
            check = await self._blocking(check_rcpt, self.store, self.settings, address)
        except Exception as exc:
            log.warning("%s: cannot check recipient %r: %s", peer, address, describe_error(exc))
            return ERR_451
        if check.kind in (SHARED, USER):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            if isinstance(envelope, BccEnvelope):
                envelope.recipients.append(check.user_id if check.kind == USER else None)
            return RCPT_OK
        if check.kind == SYNC_OFF:
            # The address is a secret: the log names its user instead.
            log.info("%s: secret address of user id %s refused: email sync is off", peer,
                     check.user_id)
            return ERR_NOT_AUTHORISED
        log.info("%s: recipient %r refused: not a logging address", peer, address)
        return ERR_UNKNOWN_RECIPIENT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        host, peer = _peer(session)
        delivery = Delivery(
            peer_host=host, peer=peer, mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos), raw=envelope.original_content or b"",
            recipients=tuple(envelope.recipients) if isinstance(envelope, BccEnvelope) else None,
        )
        try:
            admission = await self._blocking(admit, self.store, self.settings, delivery)
        except Exception as exc:  # the store could not commit: the sender must keep it
            log.warning("%s: message from %r not queued: %s", peer, delivery.mail_from,
                        describe_error(exc))
            return ERR_451
        if not admission.queued:
            log.info("%s: message from %r refused: %s", peer, delivery.mail_from, admission.note)
            return ERR_NOT_AUTHORISED
        if admission.note:
            log.info("%s: shared-address copy not attributed: %s", peer, admission.note)
        if admission.left_out:
            log.info("%s: shared-address copy logged without %s: not covered by its DKIM "
                     "signature", peer, ", ".join(admission.left_out))
        ids = " ".join(str(i) for i in admission.queued)
        log.info("%s: message from %r (%d bytes) queued as %s", peer, delivery.mail_from,
                 len(delivery.raw), ids)
        self.on_queued()
        return QUEUED.format(ids=ids)

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error: %s", describe_error(error))
        return ERR_451
