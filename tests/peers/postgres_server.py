"""A private PostgreSQL server that a test starts, stops and starts again: a real outage.

Debian's ``initdb`` and ``pg_ctl`` (``/usr/lib/postgresql/<version>/bin``) make a cluster in a
temporary folder and run it on a free loopback port with trust authentication. PostgreSQL
refuses to run as root, so as root the cluster belongs to the ``postgres`` user and the
commands run through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from peers import peer_missing

START_SECONDS = 60


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@dataclass
class PrivatePostgres:
    bin_dir: Path
    folder: Path
    port: int
    owner: str | None  # run the server as this user (we are root), else as ourselves

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        command = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_SECONDS,
                              check=False)
        if done.returncode != 0:
            log = self.folder / "server.log"
            raise AssertionError(f"{argv[0]} failed: {done.stderr}\n"
                                 f"{log.read_text() if log.exists() else ''}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-w", "-t", str(START_SECONDS), "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 "
                  f"-c unix_socket_directories={self.folder} -c fsync=off", "start")

    def stop(self) -> None:
        """As an operator's restart does: clients are disconnected, then the server ends."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def create_database(self, name: str) -> str:
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)


@contextlib.contextmanager
def private_postgres(port: int) -> Iterator[PrivatePostgres]:
    """A fresh cluster listening on 127.0.0.1:``port``; stopped and removed on exit."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        peer_missing("PostgreSQL server binaries are not installed (/usr/lib/postgresql)")
        raise AssertionError("unreachable")
    owner = "postgres" if os.geteuid() == 0 else None
    # Not under pytest's tmp_path: its folders are private to root, the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="crmgw-pg-"))
    if owner:
        account = pwd.getpwnam(owner)
        os.chown(folder, account.pw_uid, account.pw_gid)
    server = PrivatePostgres(bin_dir, folder, port, owner)
    try:
        server._run("initdb", "-D", str(server.data), "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8")
        server.start()
        yield server
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
