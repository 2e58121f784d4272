"""The BCC listener as tests drive it: a seeded CRM, the real listener on loopback, smtplib.

`running_listener` starts the "smtp" role's `SmtpListener` on its own asyncio loop in a thread
(``crm-gateway serve`` runs the same object on Twisted's asyncio reactor), bound to a free
port. `send` speaks SMTP to it with smtplib and returns every reply, so tests assert on what
a sending MTA sees. The CRM world matches the addresses of the .eml fixtures:
rep@crm.example sends to buyer@customer.example.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from bcc_ingest.smtp.listener import SmtpListener
from bcc_ingest.smtp.settings import SmtpSettings
from gateway.config import Config, load
from gateway.contacts import create_account, create_contact
from gateway.db import Store
from gateway.models import InboundMessage
from gateway.users import UserChanges, create_user, update_user
from peers import TEST_SECRET_KEY
from peers.dkim_keys import DNS_FUNCTION

EML = Path(__file__).resolve().parent.parent / "fixtures" / "eml"
LOG = "log@crm.example"
REP = "rep@crm.example"
REP2 = "rep2@crm.example"
QUIET = "quiet@crm.example"  # a user with email sync off
BUYER = "buyer@customer.example"
SETTLE_SECONDS = 30.0
CONFIG_NAME = "gateway.toml"


@dataclass(frozen=True)
class World:
    """Secret logging addresses of the seeded users."""

    rep: str
    rep2: str
    quiet: str


def seed_world(store: Store) -> World:
    """Users rep, rep2 (email sync on) and quiet (off); account Customer Ltd with buyer@."""
    with store.transaction() as session:
        users = {
            name: create_user(session, name, email, name=name.title())
            for name, email in (("rep", REP), ("rep2", REP2), ("quiet", QUIET))
        }
        update_user(session, users["quiet"], UserChanges(email_sync=False))
        account = create_account(session, "Customer Ltd", ["customer.example"])
        create_contact(session, BUYER, name="Bea Buyer", account=account)
        return World(*(f"log+{users[n].bcc_token}@crm.example" for n in ("rep", "rep2", "quiet")))


def write_config(directory: Path, database_url: str, **smtp: object) -> Config:
    """Write ``directory``/gateway.toml for the listener; ``smtp`` overrides [smtp] options."""
    options: dict[str, object] = {
        "listen": "127.0.0.1:0", "logging_address": LOG, "internal_domains": ["crm.example"],
        "never_log": ["counsel.example"], "dkim_dns": DNS_FUNCTION, "retry_delay_seconds": 0,
        **smtp,
    }
    lines = ["[database]", f"url = {_toml(database_url)}", "[paths]",
             f"data_dir = {_toml(str(directory / 'var'))}",
             # Every process on one database shares the key (serve refuses to start otherwise).
             "[security]", f'secret_key = "{TEST_SECRET_KEY}"', "[smtp]"]
    lines += [f"{key} = {_toml(value)}" for key, value in options.items()]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_NAME
    path.write_text("\n".join(lines) + "\n")
    return load(str(path), environ={})


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Running:
    listener: SmtpListener
    loop: asyncio.AbstractEventLoop
    port: int = 0


@contextmanager
def running_listener(config: Config, store: Store) -> Iterator[Running]:
    """The listener on a fresh loop in a thread; stopped (sessions closed) on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="smtp-test-loop", daemon=True)
    thread.start()
    listener = SmtpListener(SmtpSettings.from_config(config), store)

    async def start() -> None:
        listener.start()

    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        yield Running(listener, loop, listener.port)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(listener.stop(), loop).result(30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def crlf(raw: bytes) -> bytes:
    """An .eml file's line ends as SMTP carries them."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


def eml(name: str) -> bytes:
    return crlf((EML / name).read_bytes())


@dataclass
class Replies:
    """What a sending MTA saw: one (code, text) per command."""

    mail: tuple[int, str] = (0, "")
    rcpt: list[tuple[int, str]] = field(default_factory=list)
    data: tuple[int, str] | None = None  # None: DATA not reached (no recipient accepted)

    @property
    def final(self) -> int:
        """The code that decides the message's fate."""
        if self.data is not None:
            return self.data[0]
        refused = [code for code, _ in self.rcpt if code >= 400]
        return refused[0] if refused else self.mail[0]


def _reply(reply: tuple[int, bytes]) -> tuple[int, str]:
    return reply[0], reply[1].decode("utf-8", "replace")


def send(port: int, raw: bytes, *, mail_from: str, rcpt_tos: list[str],
         ehlo: str = "mta.test") -> Replies:
    """One SMTP transaction over a fresh connection; never raises on a refusal."""
    replies = Replies()
    with smtplib.SMTP("127.0.0.1", port, local_hostname=ehlo, timeout=30) as client:
        client.ehlo()
        options = [f"SIZE={len(raw)}"] if client.has_extn("size") else []
        replies.mail = _reply(client.mail(mail_from, options))
        if replies.mail[0] != 250:
            return replies
        replies.rcpt = [_reply(client.rcpt(rcpt)) for rcpt in rcpt_tos]
        if any(code == 250 for code, _ in replies.rcpt):
            try:
                replies.data = _reply(client.data(raw))
            except smtplib.SMTPDataError as exc:  # DATA itself refused (not 354)
                error = exc.smtp_error
                text = error.decode("utf-8", "replace") if isinstance(error, bytes) else error
                replies.data = (exc.smtp_code, text)
    return replies


def settle(store: Store, timeout: float = SETTLE_SECONDS) -> None:
    """Wait until no inbound message is still queued and due."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.reading() as session:
            waiting = session.scalar(
                select(func.count()).select_from(InboundMessage)
                .where(InboundMessage.status == "queued")
            )
        if not waiting:
            return
        time.sleep(0.05)
    raise AssertionError(f"{waiting} inbound message(s) still queued after {timeout}s")
