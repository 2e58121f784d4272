"""Every hostile IMAP server at once against one whole ``crm-gateway serve`` process.

While the poller meets each misbehaviour of tests/peers/hostile_imap.py (100,000 UIDs among
them), CalDAV and SMTP requests to the same process keep answering close to their usual
time, its memory stays bounded and it never spools a literal to a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from caldav_peer import free_port, new_rep
from imap_world import SECRET_KEY, account_state, activities, mail
from peers import hostile_imap as hostile
from peers.bcc_listener import BUYER, CONFIG_NAME, REP, crlf, seed_world, send, write_config
from peers.hostile_imap import assert_shown_safely
from sqlalchemy import or_, select

from gateway.db import Store
from gateway.diary_types import create_type
from gateway.mail_accounts import MailSettings, set_account
from gateway.models import MailAccount, MailFolderCursor
from gateway.secrets import SecretBox
from gateway.users import create_user

MANY = "many-uids"  # an honest server with 100,000 messages in INBOX
GREETING = "greeting"  # logs in to a second server, whose greeting is binary garbage
ONE_PASS = {hostile.BOGUS_UIDNEXT: 3, hostile.HUGE_LITERAL: 1, hostile.TRICKLE: 1,
            hostile.GARBAGE_LIST: 2, hostile.GARBAGE_ERROR: 1, hostile.HUGE_UID: 2,
            hostile.NEW_UIDVALIDITY: 2, hostile.DROP_MID_FETCH: 260, MANY: 3, GREETING: 1}
MANY_UIDS = 100_000


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str
    smtp_port: int


@contextmanager
def serve_everything(config_path: Path, workdir: Path, http_port: int) -> Iterator[Served]:
    """``crm-gateway serve`` with every role in one process; killed on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    (workdir / "tmp").mkdir()
    # The key that sealed the test's mailbox passwords (over any in the file).
    env.update(CRM_GATEWAY_CONFIG=str(config_path), TMPDIR=str(workdir / "tmp"),
               CRM_GATEWAY_SECURITY_SECRET_KEY=SECRET_KEY)
    log_path = workdir / "serve.log"
    script = Path(sys.executable).parent / "crm-gateway"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(script), "serve"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"BCC listener on [^ ]+:(\d+) ", log_path.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{http_port}/"
        while requests.get(url + "healthz", timeout=5).status_code != 200:
            time.sleep(0.1)
        yield Served(process, log_path, url, int(found.group(1)))
    finally:
        process.kill()
        process.wait(10)


def memory(pid: int, key: str) -> int:
    """A memory figure of /proc/PID/status in bytes: VmRSS now, VmHWM the peak so far."""
    found = re.search(key + r":\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert found is not None
    return int(found.group(1)) * 1024


def peak_and_spooled(pid: int, tmp: Path) -> tuple[int, int]:
    """The process's peak resident memory, and the bytes of its open files under `tmp`."""
    peak = memory(pid, "VmHWM")
    spooled = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(str(tmp)):
                spooled += fd.stat().st_size
    return peak, spooled


def timed(action: Callable[[], int]) -> tuple[int, float]:
    started = time.monotonic()
    status = action()
    return status, time.monotonic() - started


def test_hostile_servers_leave_caldav_smtp_memory_and_disk_of_serve_unharmed(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    world = seed_world(store)
    with store.transaction() as session:
        create_type(session, "Meeting", color="#3A87AD", syncable=True)
    rep = new_rep(store)
    config_path = tmp_path / CONFIG_NAME
    write_config(tmp_path, database_url, dkim_dns="")  # token addresses need no DKIM
    http_port = free_port()
    with config_path.open("a") as extra:
        extra.write(f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
                    "[imap]\ninterval = 2\ncommand_timeout_seconds = 3\n"
                    f"command_deadline_seconds = 5\nmax_message_bytes = {1024 * 1024}\n")

    def caldav() -> int:
        return requests.request("PROPFIND", f"{served.url}{rep.username}/", auth=rep.auth,
                                headers={"Depth": "1"}, timeout=30).status_code

    def smtp() -> int:
        quote = time.monotonic_ns()
        raw = crlf(f"From: {REP}\nTo: {BUYER}\nSubject: Quote {quote}\n"
                   f"Message-ID: <quote-{quote}@crm.example>\n\nHi\n".encode())
        return send(served.smtp_port, raw, mail_from=REP, rcpt_tos=[world.rep]).final

    with (hostile.hostile_imap(max_seconds=300) as server,
          hostile.hostile_imap(greeting=b"* " + hostile.GARBAGE) as rude,
          serve_everything(config_path, tmp_path, http_port) as served):
        usual = [timed(request) for _ in range(5) for request in (caldav, smtp)]
        baseline = memory(served.process.pid, "VmRSS")
        server.folder(MANY).generated = MANY_UIDS
        with store.transaction() as session:
            for mode, count in ONE_PASS.items():
                user = create_user(session, mode.replace("-", ""), f"{mode}@crm.example")
                target = rude if mode == GREETING else server
                set_account(session, user, MailSettings(
                    "127.0.0.1", target.port, "none", mode, "pw", ("INBOX",)),
                    SecretBox(SECRET_KEY))
                for n in range(count):
                    target.add(mode, mail(BUYER, [f"{mode}@crm.example"], f"{mode} {n}",
                                          message_id=f"{mode}-{n}@customer.example"))
        during: list[tuple[int, float]] = []
        peaks: list[tuple[int, int]] = []
        deadline = time.monotonic() + 240
        while not all_passed(store) and time.monotonic() < deadline:
            during += [timed(caldav), timed(smtp)]
            peaks.append(peak_and_spooled(served.process.pid, tmp_path / "tmp"))

    assert all_passed(store), served.log_path.read_text()[-3000:]
    assert {status for status, _ in usual + during} <= {207, 250}
    usual_worst = max(seconds for _, seconds in usual)
    worst = max(seconds for _, seconds in during)
    print(f"usual median {statistics.median(s for _, s in usual):.3f} s, during median "
          f"{statistics.median(s for _, s in during):.3f} s; "
          f"usual worst {usual_worst:.3f} s, during worst {worst:.3f} s over {len(during)} "
          f"requests; peak RSS {max(p for p, _ in peaks) / 2**20:.0f} MiB, "
          f"baseline {baseline / 2**20:.0f} MiB")
    # Typical answers stay close to usual; none waits behind the poller's troubles (the
    # machine is shared, so single answers may be slow for reasons of their own).
    assert statistics.median(s for _, s in during) < max(3 * statistics.median(
        s for _, s in usual), 0.25)
    assert worst < 10
    assert max(spooled for _, spooled in peaks) == 0  # never a temporary file
    assert max(peak for peak, _ in peaks) - baseline < 200 * 2**20
    states = {mode: account_state(store, mode.replace("-", "")) for mode in ONE_PASS}
    assert "2147483648" in (states[hostile.HUGE_LITERAL].last_error or "")
    assert "deadline of 5 s" in (states[hostile.TRICKLE].last_error or "")
    for mode in (hostile.GARBAGE_ERROR, GREETING, hostile.HUGE_UID):
        assert_shown_safely(states[mode].last_error)
    got = cursors_by_mode(store)
    assert got[MANY] == MANY_UIDS + 3 and got[hostile.BOGUS_UIDNEXT] == 3
    # The two body batches committed before the drop, or (after the backoff) everything:
    # never a checkpoint past what is logged, never a message twice.
    dropped = [m for m in activities(store) if m.startswith(hostile.DROP_MID_FETCH)]
    assert got[hostile.DROP_MID_FETCH] in (200, 260) and len(dropped) == got[hostile.DROP_MID_FETCH]


def all_passed(store: Store) -> bool:
    """Every hostile account has finished a first pass (well or badly)."""
    with store.reading() as session:
        done = session.scalars(select(MailAccount).where(or_(
            MailAccount.last_success_at.is_not(None), MailAccount.last_error_at.is_not(None))))
        return len(done.all()) == len(ONE_PASS)


def cursors_by_mode(store: Store) -> dict[str, int]:
    with store.reading() as session:
        rows = session.execute(select(MailAccount.login, MailFolderCursor.last_uid).join(
            MailFolderCursor, MailFolderCursor.mail_account_id == MailAccount.id))
        return {login: last_uid for login, last_uid in rows}
