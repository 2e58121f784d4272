"""The "smtp" role of ``crm-gateway serve``: the BCC listener and the inbound queue's workers.

Runs on whatever asyncio loop is running: Twisted's asyncio reactor under ``serve``, a plain
loop in tests. The socket is bound synchronously in ``start`` so that a taken port stops
start-up at once. Limits (RFC 5321 section 4.5.3): SIZE is advertised and enforced (552),
a session idle for ``idle_timeout`` is closed, and each command may be sent at most
``max_commands`` times per session (then 421 and the connection is closed). aiosmtpd 1.4.6
ends DATA only at CRLF.CRLF, so a bare-LF dot cannot smuggle a second message.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiosmtpd.smtp import SMTP

from bcc_ingest.smtp.handler import BccEnvelope, BccHandler
from bcc_ingest.smtp.queue_worker import QueueWorker
from bcc_ingest.smtp.settings import SmtpSettings
from gateway.config import Config
from gateway.db import Store

log = logging.getLogger(__name__)

INTAKE_THREADS = 4  # concurrent RCPT checks and queue commits
IDENT = "crm-gateway"  # the greeting names no software version
STOP_GRACE_SECONDS = 10.0
SHUTTING_DOWN = b"421 4.3.2 Service shutting down, try again later\r\n"


class SmtpListener:
    """The listener, its intake threads and the queue's workers, as one start/stop unit."""

    def __init__(self, settings: SmtpSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.worker = QueueWorker(store, settings.policy, settings.processing, settings.workers)
        self._executor = ThreadPoolExecutor(INTAKE_THREADS, thread_name_prefix="crm-smtp")
        self._handler = BccHandler(store, settings.intake, self._executor, self.worker.notify)
        self.worker.intake_busy = self._handler.busy
        self._sessions: set[SMTP] = set()
        self._serving: asyncio.Task[asyncio.AbstractServer] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None, "not started"
        port: int = self._socket.getsockname()[1]
        return port

    def _session(self) -> SMTP:
        """A protocol instance for one connection."""
        settings = self.settings
        return _TrackedSMTP(
            self._handler,
            self._sessions,
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=settings.hostname,
            ident=IDENT,
            tls_context=settings.tls_context,
            timeout=settings.idle_timeout,
            command_call_limit={"*": settings.max_commands},
            loop=current_loop(),
        )

    def start(self) -> None:
        """Bind and start serving on the running loop; raises OSError if the port is taken."""
        # aiosmtpd logs every DATA line at debug: message bodies never reach the log.
        if logging.getLogger("mail.log").getEffectiveLevel() < logging.WARNING:
            logging.getLogger("mail.log").setLevel(logging.WARNING)
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        try:
            self._socket = socket.create_server(
                (self.settings.host, self.settings.port), family=family, reuse_port=False
            )
        except OSError as exc:
            reason = ("address already in use (is another crm-gateway serve running?)"
                      if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)).lower())
            raise OSError(
                f"smtp.listen {self.settings.host}:{self.settings.port}: {reason}"
            ) from None
        loop = current_loop()
        self._serving = loop.create_task(loop.create_server(self._session, sock=self._socket))
        self.worker.start(loop)
        log.info("BCC listener on %s:%d (STARTTLS %s, %d processing threads)",
                 self.settings.host, self.port, "on" if self.settings.tls_context else "off",
                 self.settings.workers)

    async def stop(self) -> None:
        """Stop accepting, let recipients and messages in hand be answered (at most
        ``STOP_GRACE_SECONDS``), close the other sessions with 421, then stop the workers."""
        if self._serving is not None:
            server = await self._serving
            server.close()
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while self._handler.busy() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for session in list(self._sessions):
                transport = session.transport
                if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
                    transport.write(SHUTTING_DOWN)
                if transport is not None:
                    transport.close()
            await server.wait_closed()
        await self.worker.stop()
        self._executor.shutdown(wait=True)


def current_loop() -> asyncio.AbstractEventLoop:
    """The running loop; under ``serve``, roles start before Twisted's reactor runs its loop,
    so then the loop the reactor installed as current."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop_policy().get_event_loop()


class _TrackedSMTP(SMTP):
    """aiosmtpd's protocol, registered while connected so that stopping can close it, and
    with envelopes that remember the RCPT-time verdicts (aiosmtpd's documented hook)."""

    def __init__(self, handler: Any, sessions: set[SMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._registry = sessions

    def _create_envelope(self) -> BccEnvelope:
        return BccEnvelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._registry.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._registry.discard(self)
        super().connection_lost(error)


def start(config: Config, store: Store) -> Any:
    """The role's entry point (gateway.host.ROLES): start, and return the stop coroutine."""
    listener = SmtpListener(SmtpSettings.from_config(config), store)
    listener.start()
    return listener.stop
