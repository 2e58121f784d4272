"""The reference target: stock Radicale 3.9 (multifilesystem storage, built-in server).

The events are written straight into a multifilesystem collection folder (much faster than a
PUT each), then ``python -m radicale`` runs as a subprocess with a generated config: htpasswd
auth with a plain-text user, loopback on a free port, logging at ``warning`` into a file in the
scratch directory.  Radicale's item cache starts cold; the benchmark warms it by running every
request once untimed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import requests

from bench.calgen import CalEvent
from bench.server_process import log_tail, wait_until_up

USER = "bench"
PASSWORD = "bench-password"
CALENDAR = "calendar"
START_TIMEOUT = 60.0  # seconds until Radicale must answer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class StockRadicale:
    """Stock Radicale serving /bench/calendar/ from a temporary multifilesystem folder."""

    name = "stock"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.credentials: tuple[str, str] | None = (USER, PASSWORD)
        self.collections = workdir / "collections"
        self.calendar_dir = self.collections / "collection-root" / USER / CALENDAR
        self.log_path = workdir / "radicale.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def load(self, events: Sequence[CalEvent]) -> None:
        """(Re)write the collection folder; Radicale lists the folder on every request, so this
        also works while it runs (its sync-token history then simply sees a big change)."""
        if self.calendar_dir.exists():
            shutil.rmtree(self.calendar_dir)
        self.calendar_dir.mkdir(parents=True)
        props = {"tag": "VCALENDAR", "C:supported-calendar-component-set": "VEVENT",
                 "D:displayname": "Benchmark"}
        (self.calendar_dir / ".Radicale.props").write_text(json.dumps(props), encoding="utf-8")
        for event in events:
            # newline="" keeps the CRLF line endings exactly as a client would have sent them
            with open(self.calendar_dir / event.href, "w", encoding="utf-8", newline="") as f:
                f.write(event.text)

    def _write_config(self) -> Path:
        users = self.workdir / "users"
        users.write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
        config = self.workdir / "radicale.conf"
        config.write_text(
            "[server]\n"
            f"hosts = 127.0.0.1:{self.port}\n"
            "[auth]\n"
            "type = htpasswd\n"
            f"htpasswd_filename = {users}\n"
            "htpasswd_encryption = plain\n"
            "[rights]\n"
            "type = owner_only\n"
            "[storage]\n"
            f"filesystem_folder = {self.collections}\n"
            "[web]\n"
            "type = none\n"
            "[logging]\n"
            "level = warning\n",
            encoding="utf-8")
        return config

    def start(self, events: Sequence[CalEvent]) -> str:
        self.load(events)
        self.port = free_port()
        config = self._write_config()
        env = {k: v for k, v in os.environ.items() if k != "RADICALE_CONFIG"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{self.port}/{USER}/{CALENDAR}/"
        self._wait_until_up(url)
        return url

    def _wait_until_up(self, url: str) -> None:
        assert self.process is not None
        wait_until_up(self.process,
                      lambda: requests.request("OPTIONS", url, timeout=2) is not None,
                      "Radicale", self.log_path, START_TIMEOUT)

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
