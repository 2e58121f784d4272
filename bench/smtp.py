"""SMTP benchmark: BCC'd mail accepted and durably queued, and logged end to end.

    .venv/bin/python -m bench.smtp [--messages 1000] [--clients 4]
        [--postgres postgresql+psycopg://postgres@127.0.0.1/test [--pg-workers N]]

The same deterministic messages (bench/smtp_messages.py: ~10 KB, every third with a 100 KB
attachment) are sent by ``--clients`` concurrent smtplib clients, each reusing a connection
for up to 50 messages as MTAs do, to:

- the anchor: aiosmtpd with a no-op handler (answers 250 and keeps nothing), in a child process;
- ``crm-gateway serve --only smtp`` in a child process, over a fresh SQLite database (and a
  fresh PostgreSQL database with ``--postgres``), each 250 only after the queue commit.

"Accepted" is messages per second from the first connection to the last 250; "logged" is from
the first connection until every queued message is an activity. Progress goes to stderr, the
Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project root importable instead
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.smtp_messages import CUSTOMER_DOMAINS, SENDER, message

PER_CONNECTION = 50
LOGGING_ADDRESS = "log@bench.example"
_LISTENING = re.compile(r"BCC listener on [^ ]+:(\d+) ")
_NOOP_SERVER = """
import asyncio, socket, sys
from aiosmtpd.smtp import SMTP

class NoOp:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    sock = socket.create_server(("127.0.0.1", 0))
    server = await loop.create_server(
        lambda: SMTP(NoOp(), hostname="noop.example", data_size_limit=26214400), sock=sock)
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class Result:
    name: str
    accepted_per_s: float
    logged_per_s: float | None
    refused: int


def send_all(port: int, messages: list[bytes], rcpt: str, clients: int) -> tuple[float, int]:
    """Send every message over ``clients`` threads; returns (seconds to last 250, refusals)."""
    refused = [0] * clients
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        mine = messages[index::clients]
        try:
            start.wait()
            for offset in range(0, len(mine), PER_CONNECTION):
                with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.client",
                                  timeout=120) as smtp:
                    for raw in mine[offset:offset + PER_CONNECTION]:
                        failed = smtp.sendmail(SENDER, [rcpt], raw)
                        refused[index] += len(failed)
        except smtplib.SMTPException as exc:
            refused[index] += 1
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        log(f"client errors: {errors[0]!r} (and {len(errors) - 1} more)")
    return elapsed, sum(refused)


@contextmanager
def child(argv: list[str], env: dict[str, str], port_of: Callable[[str], int | None],
          log_path: Path) -> Iterator[int]:
    """A server in a child process; yields its port once ``port_of`` finds it in the output."""
    with log_path.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            port = port_of(log_path.read_text(errors="replace"))
            if port:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_noop(messages: list[bytes], clients: int, workdir: Path) -> Result:
    def port_of(text: str) -> int | None:
        first = text.split("\n", 1)[0].strip()
        return int(first) if first.isdigit() else None

    with child([sys.executable, "-c", _NOOP_SERVER], dict(os.environ), port_of,
               workdir / "noop.log") as port:
        seconds, refused = send_all(port, messages, LOGGING_ADDRESS, clients)
    return Result("no-op aiosmtpd handler (anchor)", len(messages) / seconds, None, refused)


def prepare(url: str) -> str:
    """Migrate ``url``, make the sending rep and the customers' accounts; returns the rep's
    secret logging address."""
    from gateway.bcc_addresses import user_address
    from gateway.contacts import create_account
    from gateway.db import Store
    from gateway.users import create_user

    store = Store(url)
    try:
        store.upgrade()
        with store.transaction() as session:
            rep = create_user(session, "rep", SENDER)
            for number, domain in enumerate(CUSTOMER_DOMAINS):
                create_account(session, f"Customer {number:02d}", [domain])
            return user_address(rep, LOGGING_ADDRESS)
    finally:
        store.dispose()


def wait_logged(url: str, count: int, began: float) -> float:
    from sqlalchemy import func, select

    from gateway.db import Store
    from gateway.models import InboundMessage

    store = Store(url)
    try:
        while True:
            with store.reading() as session:
                left = session.scalar(select(func.count()).select_from(InboundMessage).where(
                    InboundMessage.status == "queued"))
                total = session.scalar(select(func.count()).select_from(InboundMessage))
            if total == count and not left:
                return time.perf_counter() - began
            time.sleep(0.02)
    finally:
        store.dispose()


def run_gateway(name: str, url: str, messages: list[bytes], clients: int, workers: int,
                workdir: Path) -> Result:
    rcpt = prepare(url)
    config = workdir / f"{name}.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[paths]\ndata_dir = "{workdir / "var"}"\n'
        f'[smtp]\nlisten = "127.0.0.1:0"\nlogging_address = "{LOGGING_ADDRESS}"\n'
        f'internal_domains = ["bench.example"]\nworkers = {workers}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env["CRM_GATEWAY_CONFIG"] = str(config)

    def port_of(text: str) -> int | None:
        found = _LISTENING.search(text)
        return int(found.group(1)) if found else None

    argv = [sys.executable, "-c", "from gateway.cli import main; raise SystemExit(main())",
            "serve", "--only", "smtp"]
    with child(argv, env, port_of, workdir / f"{name}.log") as port:
        began = time.perf_counter()
        seconds, refused = send_all(port, messages, rcpt, clients)
        logged = wait_logged(url, len(messages) - refused, began)
    threads = f", {workers} processing threads" if workers != 1 else ""
    return Result(f"crm-gateway, {name}{threads}", len(messages) / seconds,
                  (len(messages) - refused) / logged, refused)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bench_smtp_{os.getpid()}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(results: list[Result], count: int, clients: int, size: int) -> str:
    anchor = results[0].accepted_per_s
    lines = [
        f"{count} messages ({size / count / 1024:.0f} KB average, every third with a 100 KB "
        f"attachment), {clients} concurrent smtplib clients, loopback, {os.cpu_count()} cores.",
        "",
        "| server | accepted and durably queued, msg/s | vs no-op | logged end to end, msg/s |",
        "|---|---:|---:|---:|",
    ]
    for result in results:
        logged = f"{result.logged_per_s:.0f}" if result.logged_per_s is not None else "n/a"
        refused = f" ({result.refused} refused)" if result.refused else ""
        lines.append(f"| {result.name}{refused} | {result.accepted_per_s:.0f} | "
                     f"{result.accepted_per_s / anchor:.2f}x | {logged} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="also run on a fresh database of this PostgreSQL server")
    parser.add_argument("--pg-workers", type=int, default=1, metavar="N",
                        help="smtp.workers for the PostgreSQL run (default 1, as configured "
                             "out of the box)")
    args = parser.parse_args(argv)
    messages = [message(n) for n in range(args.messages)]
    size = sum(len(m) for m in messages)
    workdir = Path(tempfile.mkdtemp(prefix="bench-smtp-"))
    try:
        log(f"{len(messages)} messages, {size / 1e6:.1f} MB; no-op anchor")
        results = [run_noop(messages, args.clients, workdir)]
        log("crm-gateway on SQLite")
        url = f"sqlite:///{workdir / 'crm.sqlite3'}"
        results.append(run_gateway("SQLite", url, messages, args.clients, 1, workdir))
        if args.postgres:
            log("crm-gateway on PostgreSQL")
            with postgres_database(args.postgres) as pg_url:
                results.append(run_gateway("PostgreSQL", pg_url, messages, args.clients,
                                           args.pg_workers, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(results, len(messages), args.clients, size))
    return 0 if all(r.refused == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
