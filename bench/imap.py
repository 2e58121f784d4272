"""IMAP benchmark: the poller's initial import and idle re-polls against a plain imaplib script.

    .venv/bin/python -m bench.imap [--messages 10000] [--repeat 3]

One private Dovecot (tests/peers/dovecot.py) holds a generated mailbox (bench/mailgen.py):
INBOX and Sent, 10 % of the mail involving CRM contacts or accounts. In the same run:

- **imaplib script**, the unavoidable work: one connection, every message's header
  (``BODY.PEEK[HEADER]``) parsed with the standard ``email`` package, then the relevant
  messages fetched whole and fully parsed (bodies and attachments decoded);
- **crm-gateway**: ``mail poll --once``'s code path (`poll_once`) on the asyncio reactor into
  a fresh SQLite store per run, logging the relevant messages as activities;
- **re-poll on the held connection**: what ``crm-gateway serve`` does on every IDLE wake-up
  or interval: one pass of `AccountSession` (`run_pass`: the folder pass and recording it on
  the account) over its connection, logged in already, with nothing new in the mailbox;
- **re-poll with a new connection**: ``mail poll --once`` again with nothing new (lease,
  connect, LOGIN, the pass, LOGOUT).

Each is repeated; the median is reported. Progress goes to stderr, the Markdown table to
stdout. The run fails (exit 1) if the gateway did not log exactly the relevant messages.
"""

from __future__ import annotations

import argparse
import email
import imaplib
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from email.utils import getaddresses
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project root importable instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from peers.dovecot import DovecotServer, dovecot_binary
from peers.imap_ops import AppendMessage
from peers.imap_sessions import HOST

from bench.mailgen import REP, Crm, generate, make_crm

LOGIN, PASSWORD = "alice", "bench password"
_UID = re.compile(rb"UID (\d+)")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def baseline(port: int, crm: Crm) -> tuple[float, int]:
    """The imaplib script; returns (seconds, messages fetched whole).

    Parsing uses the email package's default (compat32) API, its fastest complete one.
    """
    contacts, domains = set(crm.contacts), set(crm.domains)
    started = time.perf_counter()
    conn = imaplib.IMAP4(HOST, port)
    conn.login(LOGIN, PASSWORD)
    fetched = 0
    for folder in ("INBOX", "Sent"):
        conn.select(folder, readonly=True)
        _, data = conn.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER])")
        wanted: list[bytes] = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            headers = email.message_from_bytes(item[1])
            people = [address.lower() for _, address in getaddresses(
                [str(value) for field in ("from", "to", "cc")
                 for value in headers.get_all(field, [])]
            )]
            if any(p in contacts or p.rpartition("@")[2] in domains for p in people):
                match = _UID.search(item[0])
                assert match is not None
                wanted.append(match.group(1))
        for start in range(0, len(wanted), 100):
            _, data = conn.uid("FETCH", b",".join(wanted[start:start + 100]).decode(),
                               "(BODY.PEEK[])")
            for item in data:
                if isinstance(item, tuple):
                    message = email.message_from_bytes(item[1])
                    for part in message.walk():
                        if not part.is_multipart():
                            part.get_payload(decode=True)
                    fetched += 1
    conn.logout()
    return time.perf_counter() - started, fetched


def seed_store(path: Path, crm: Crm, port: int, secret_key: str) -> None:
    from gateway.contacts import create_account, create_contact
    from gateway.db import Store
    from gateway.mail_accounts import MailSettings, set_account
    from gateway.secrets import SecretBox
    from gateway.users import create_user

    store = Store(f"sqlite:///{path}")
    store.upgrade()
    with store.transaction() as session:
        user = create_user(session, LOGIN, REP)
        for domain in crm.domains:
            create_account(session, domain.partition(".")[0].title(), [domain])
        for address in crm.contacts:
            create_contact(session, address)
        settings = MailSettings(HOST, port, "none", LOGIN, PASSWORD)
        set_account(session, user, settings, SecretBox(secret_key))
    store.dispose()


class ServiceClock:
    """CPU seconds spent inside the activity service, which the poller calls but does not own.

    Wraps the service's entry points where `gateway.mail_import` looks them up (`record_emails`
    for a batch, `record_email` for one message of a failed batch, `relevant_messages` for the
    header pass), so the report can say how much of the import is logging itself.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def install(self) -> None:
        import gateway.mail_import as mail_import

        for name in ("record_emails", "record_email", "relevant_messages"):
            setattr(mail_import, name, self._timed(getattr(mail_import, name)))

    def _timed(self, function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds += time.thread_time() - started

        return timed


async def gateway_runs(reactor: Any, template: Path, work: Path, repeat: int,
                       expected: int) -> dict[str, list[float]]:
    from bcc_ingest.imap.service import make_context, owner_name, poll_once
    from gateway.config import load
    from gateway.db import Store

    clock = ServiceClock()
    clock.install()
    times: dict[str, list[float]] = {"import": [], "repoll": [], "held": [], "service": []}
    for run in range(repeat):
        database = work / f"run{run}.sqlite3"
        shutil.copyfile(template, database)
        config = load(None, environ={
            "CRM_GATEWAY_DATABASE_URL": f"sqlite:///{database}",
            "CRM_GATEWAY_PATHS_DATA_DIR": str(work),
            "CRM_GATEWAY_SECURITY_SECRET_KEY": "bench secret key",
        })
        store = Store(config.get("database", "url"))
        ctx = make_context(reactor, store, config, owner_name(":bench"))
        started, service_before = time.perf_counter(), clock.seconds
        [report] = await poll_once(ctx)
        times["import"].append(time.perf_counter() - started)
        times["service"].append(clock.seconds - service_before)
        if report.error or report.counts.logged != expected:
            raise SystemExit(f"gateway run {run}: {report.as_dict()}; expected {expected} logged")
        say(f"gateway import {run + 1}/{repeat}: {times['import'][-1]:.2f} s, "
            f"{report.counts.as_dict()}")
        for _ in range(5):
            started = time.perf_counter()
            [again] = await poll_once(ctx)
            times["repoll"].append(time.perf_counter() - started)
            if again.error or again.counts.examined:
                raise SystemExit(f"re-poll examined mail: {again.as_dict()}")
        times["held"] += await held_passes(ctx, HELD_PASSES)
        say(f"gateway re-poll {run + 1}/{repeat}: held connection "
            f"{statistics.median(times['held'][-HELD_PASSES:]) * 1000:.1f} ms, new connection "
            f"{statistics.median(times['repoll'][-5:]) * 1000:.1f} ms")
        store.dispose()
    return times


HELD_PASSES = 50


async def held_passes(ctx: Any, count: int) -> list[float]:
    """Seconds of each of `count` passes of one `serve` session over its held connection.

    The session is `AccountSession` as `PollerService` runs it (`keep_idle`); instead of
    waiting in IDLE between passes, the next pass starts at once.
    """
    from twisted.internet.threads import deferToThreadPool

    from bcc_ingest.imap.session import AccountSession
    from gateway.clock import utcnow
    from gateway.mail_leases import lease_accounts, release

    reactor = ctx.reactor

    def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
        return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args, **kwargs)

    [account_id] = await in_thread(lease_accounts, ctx.store, ctx.owner, utcnow(), limit=1,
                                   due_only=False)
    session = AccountSession(ctx, account_id, keep_idle=True)
    try:
        await session.connect()
        if not await session.run_pass():  # the session's first pass, on the new connection
            raise SystemExit("the held session would not stay connected (no IDLE?)")
        times = []
        for _ in range(count):
            started = time.perf_counter()
            idle = await session.run_pass()
            times.append(time.perf_counter() - started)
            if not idle or session.report.counts.examined:
                raise SystemExit(f"held re-poll examined mail: {session.report.as_dict()}")
        return times
    finally:
        session.abort()
        await in_thread(release, ctx.store, account_id, ctx.owner, next_poll_at=utcnow())


def table(count: int, relevant: int, script: float, imported: float, held: float,
          repoll: float, service: float) -> str:
    script_rate, gateway_rate = count / script, count / imported
    share, new_share = held / imported * 100, repoll / imported * 100
    return "\n".join([
        f"IMAP benchmark: {count:,} messages (INBOX and Sent), {relevant:,} involving CRM "
        "contacts; local Dovecot, SQLite store; medians",
        "",
        "| measure | imaplib script | crm-gateway | target | met |",
        "|---|---|---|---|---|",
        f"| initial import | {script:.2f} s ({script_rate:,.0f} msg/s) | {imported:.2f} s "
        f"({gateway_rate:,.0f} msg/s, {gateway_rate / script_rate:.2f}x) | >= 0.5x the "
        f"script's rate | {'yes' if gateway_rate >= 0.5 * script_rate else 'NO'} |",
        f"| re-poll, unchanged mailbox, on the poller's held connection (serve) | - | "
        f"{held * 1000:.1f} ms ({share:.2f} % of the import) | < 1 % of the import | "
        f"{'yes' if share < 1 else 'NO'} |",
        f"| re-poll with a new connection (`mail poll --once`) | - | {repoll * 1000:.1f} ms "
        f"({new_share:.2f} % of the import; connection setup included) | information | - |",
        "",
        f"Of the import, {service:.2f} s of CPU were spent inside the activity service "
        f"(`record_emails` for {relevant:,} messages and `relevant_messages`); the poller's own "
        f"work (IMAP, parsing, batching, cursors) took the remaining "
        f"{max(imported - service, 0):.2f} s.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if dovecot_binary() is None:
        print("bench/imap.py needs Dovecot: run scripts/install-peers", file=sys.stderr)
        return 1
    crm = make_crm()
    messages = generate(args.messages, crm)
    relevant = sum(message.relevant for message in messages)
    root = Path(tempfile.mkdtemp(prefix="imapbench-"))
    root.chmod(0o755)  # Dovecot's mail user must traverse it
    server = DovecotServer(root / "dovecot", tls=False)
    try:
        server.add_user(LOGIN, PASSWORD)
        server.start()
        say(f"filling the mailbox with {len(messages)} messages")
        for folder in ("INBOX", "Sent"):
            server.append_many(LOGIN, folder, [AppendMessage(m.raw, date=m.date)
                                               for m in messages if m.folder == folder])
        script_times = []
        for run in range(args.repeat):
            seconds, fetched = baseline(server.port, crm)
            script_times.append(seconds)
            say(f"imaplib script {run + 1}/{args.repeat}: {seconds:.2f} s, {fetched} fetched")
        template = root / "template.sqlite3"
        seed_store(template, crm, server.port, "bench secret key")
        from twisted.internet import defer

        from gateway.host import install_reactor

        reactor = install_reactor()  # the asyncio reactor, as `crm-gateway serve` runs it
        outcome: list[Any] = []
        reactor.callWhenRunning(lambda: defer.Deferred.fromCoroutine(
            gateway_runs(reactor, template, root, args.repeat, relevant)
        ).addBoth(outcome.append).addBoth(lambda _: reactor.stop()))
        reactor.run(installSignalHandlers=False)
        if not outcome or not isinstance(outcome[0], dict):
            if outcome and hasattr(outcome[0], "raiseException"):
                outcome[0].raiseException()
            return 1
        times = outcome[0]
        print(table(len(messages), relevant, statistics.median(script_times),
                    statistics.median(times["import"]), statistics.median(times["held"]),
                    statistics.median(times["repoll"]), statistics.median(times["service"])))
        return 0
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
