"""Stock CalDAV servers on loopback, standing in for a rep's own calendar account.

``radicale`` runs the installed Radicale as its own process with its own configuration
(htpasswd auth with plain passwords, filesystem storage in a temp folder): not the gateway's
plugin. ``xandikos`` runs Xandikos, which has no authentication of its own (it expects a
reverse proxy to do it), so it accepts any credentials. Both can be stopped and started again
on the same port and folder (a server that goes down and comes back).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

START_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class CalServer:
    """One running CalDAV server: where to reach it, with which account."""

    kind: str  # "radicale" | "xandikos"
    folder: Path
    port: int
    login: str
    password: str
    command: list[str]
    prefix: str = "/"  # where the DAV tree starts (Xandikos behind a path)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """What a rep types into the link form: the server's root."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def calendar_home(self) -> str:
        if self.kind == "radicale":
            return f"{self.url}{self.login}/"
        return f"{self.url}{self.prefix.lstrip('/')}user/calendars/"

    @property
    def checks_passwords(self) -> bool:
        return self.kind == "radicale"

    def start(self) -> None:
        log = (self.folder / "server.log").open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.folder)
        log.close()
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                requests.request("OPTIONS", self.url, timeout=2)
                return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not start:\n"
                                   + (self.folder / "server.log").read_text(errors="replace"))
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def auth(self) -> tuple[str, str]:
        return (self.login, self.password)


def radicale_server(folder: Path, login: str = "rep", password: str = "s3cret") -> CalServer:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (folder / "users").write_text(f"{login}:{password}\n")
    (folder / "radicale.ini").write_text(
        "[server]\n"
        f"hosts = 127.0.0.1:{port}\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {folder / 'users'}\n"
        "htpasswd_encryption = plain\n"
        "delay = 0\n"
        "[rights]\n"
        "type = owner_only\n"
        "[storage]\n"
        f"filesystem_folder = {folder / 'collections'}\n"
        "[logging]\n"
        "level = warning\n"
    )
    command = [sys.executable, "-m", "radicale", "--config", str(folder / "radicale.ini")]
    return CalServer("radicale", folder, port, login, password, command)


def xandikos_server(folder: Path, prefix: str = "/") -> CalServer:
    """Xandikos; with ``prefix`` (e.g. ``/dav/``) its tree starts there and only
    ``/.well-known/caldav`` (and ``/``) lead to it, as on a host that serves other things."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "xandikos.web", "--defaults", "-d", str(folder / "dav"),
               "--state-dir", str(folder / "state"), "-l", "127.0.0.1", "-p", str(port),
               "--no-detect-systemd", "--route-prefix", prefix]
    return CalServer("xandikos", folder, port, "rep", "any password", command, prefix)


@contextmanager
def running(server: CalServer) -> Iterator[CalServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_calendar(server: CalServer, slug: str, name: str) -> str:
    """Create a calendar on the server the way a rep's own app would; returns its URL."""
    url = f"{server.calendar_home}{slug}/"
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
        f"<D:displayname>{name}</D:displayname>"
        "</D:prop></D:set></C:mkcalendar>"
    )
    answer = requests.request("MKCALENDAR", url, data=body, auth=server.auth(), timeout=10,
                              headers={"Content-Type": "application/xml"})
    assert answer.status_code in (201, 200), (answer.status_code, answer.text)
    return url


@dataclass
class SyncProcess:
    """``crm-gateway serve --only linked``: the sync role as its own process."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_sync_process(database_url: str, workdir: Path, secret_key: str,
                       interval: int = 1) -> SyncProcess:
    import os

    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env.update({
        "CRM_GATEWAY_DATABASE_URL": database_url,
        "CRM_GATEWAY_PATHS_DATA_DIR": str(workdir / "var"),
        "CRM_GATEWAY_SECURITY_SECRET_KEY": secret_key,
        "CRM_GATEWAY_LINKED_INTERVAL": str(interval),
    })
    log_path = workdir / "serve.log"
    script = Path(sys.executable).parent / "crm-gateway"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(script), "serve", "--only", "linked"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    child = SyncProcess(process, log_path)
    deadline = time.monotonic() + START_SECONDS
    while "role linked started" not in child.log():
        if process.poll() is not None or time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"crm-gateway serve --only linked did not start:\n{child.log()}")
        time.sleep(0.1)
    return child
