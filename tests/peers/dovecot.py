"""A private Dovecot IMAP server on loopback, and the pytest fixture that starts one per test.

`DovecotServer` owns one instance: its dovecot.conf, passwd-file, maildirs, TLS files and
processes, all under one directory. Dovecot runs in the foreground (``dovecot -F``) as our child,
so it is always reaped and never outlives a failed start. Facts about running it as root are in
docs/TESTING.md.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal

import pytest

from peers import peer_missing

from . import procs
from .dovecot_conf import DovecotSettings, Storage, render
from .imap_sessions import HOST, ImapSessions
from .passwd_file import PasswdFile
from .tls import TlsFiles, write_tls_files

Scope = Literal["session", "package", "module", "class", "function"]

NOT_INSTALLED = (
    "Dovecot is not installed (no `dovecot` on PATH or in /usr/sbin); run scripts/install-peers"
)
# Dovecot's settings parser splits on spaces and "#"; keep paths to plain characters.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+-]+")
# Unix sockets live in <root>/run and their paths must fit sun_path (107 bytes) with the
# longest of Dovecot's socket names, "run/token-login/imap-urlauth-worker"-sized, appended.
_MAX_ROOT_LENGTH = 64
_LOG_TAIL_LINES = 30


class DovecotError(RuntimeError):
    """The instance did not start or stop as asked; the message ends with its log tail."""


def dovecot_binary() -> str | None:
    """Path of the ``dovecot`` executable (Debian puts it in /usr/sbin, often not on PATH)."""
    search = os.pathsep.join(p for p in (os.environ.get("PATH"), "/usr/sbin", "/sbin") if p)
    return shutil.which("dovecot", path=search)


def _free_ports(count: int) -> list[int]:
    # Held open together so the ports differ; Dovecot binds them a moment later. The race with
    # other programs is handled by start() retrying on "Address already in use".
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


class _PortTaken(Exception):
    pass


class DovecotServer(ImapSessions):
    """A Dovecot instance under `root`, listening on 127.0.0.1 only.

    Plain IMAP (with STARTTLS when `tls`) on `port`; implicit TLS on `tls_port` when `tls`.
    The certificate chains to `ca_path`. Users come from a passwd-file that Dovecot re-reads
    on login, so `add_user` works before and after `start`. Each user's maildir is under
    ``<root>/mail/<login>``; the folder ``Sent`` exists with SPECIAL-USE ``\\Sent``.
    """

    def __init__(
        self,
        root: Path,
        *,
        tls: bool = True,
        separator: str = "/",
        storage: Storage = "maildir",
        auth_delays: bool = False,
        log_path: Path | None = None,
        start_timeout: float = 10.0,
        client_timeout: float = 10.0,
    ) -> None:
        """Describe the instance; nothing runs or is written before `add_user` or `start`.

        `separator` is the folder hierarchy separator; `storage` the mailbox format;
        `auth_delays` keeps Dovecot's slow answers to failed logins (see dovecot_conf);
        `log_path` may lie outside `root` (only root, or the caller's user, writes it).
        """
        self.root = root.resolve()
        if not _PLAIN_PATH.fullmatch(str(self.root)) or len(str(self.root)) > _MAX_ROOT_LENGTH:
            raise DovecotError(
                f"{self.root}: need a path of at most {_MAX_ROOT_LENGTH} plain characters "
                "(Dovecot's unix sockets live under it); use tempfile.mkdtemp()"
            )
        self.log_path = log_path if log_path is not None else self.root / "dovecot.log"
        self.config_path = self.root / "dovecot.conf"
        self.passwd_path = self.root / "passwd"
        self.mail_root = self.root / "mail"
        self.base_dir = self.root / "run"
        self.port = 0
        self.tls_port = 0
        self.tls_files: TlsFiles | None = None
        self.start_timeout = start_timeout
        self.client_timeout = client_timeout
        self._tls = tls
        self._separator = separator
        self._storage: Storage = storage
        self._auth_delays = auth_delays
        self._process: subprocess.Popen[bytes] | None = None
        self._prepared = False
        if os.geteuid() == 0:
            # imap-login refuses to run as root and a passwd-file uid 0 is rejected, so the
            # mail belongs to the "dovecot" user (docs/TESTING.md).
            try:
                mail_user = pwd.getpwnam("dovecot")
                pwd.getpwnam("dovenull")
            except KeyError as exc:
                raise DovecotError(f"{NOT_INSTALLED} (missing system user: {exc})") from None
            self._login_user, self._internal_user = "dovenull", "dovecot"
        else:
            # Unprivileged, every Dovecot process runs as the caller.
            mail_user = pwd.getpwuid(os.geteuid())
            self._login_user = self._internal_user = mail_user.pw_name
        self.mail_uid, self.mail_gid = mail_user.pw_uid, mail_user.pw_gid
        self._internal_group = grp.getgrgid(self.mail_gid).gr_name
        self._passwd = PasswdFile(self.passwd_path, self.mail_uid, self.mail_gid, self.mail_root)

    # -- set-up ----------------------------------------------------------------------------

    def _tls_material(self) -> TlsFiles:
        self._prepare()
        if self.tls_files is None:
            raise DovecotError("this instance was created with tls=False")
        return self.tls_files

    @property
    def ca_path(self) -> Path:
        """PEM file of the CA that signed the server certificate (trust it in clients)."""
        return self._tls_material().ca_path

    def client_context(self) -> ssl.SSLContext:
        """A client SSLContext that trusts exactly this instance's CA."""
        return self._tls_material().client_context()

    def password(self, login: str) -> str:
        """The password given to `add_user` for `login`."""
        return self._passwd.password(login)

    def _check_traversable(self) -> None:
        # The imap process runs as the mail user and must reach its maildir through every parent.
        for directory in [self.root, *self.root.parents]:
            info = directory.stat()
            mode = info.st_mode
            if (
                mode & stat.S_IXOTH
                or (info.st_uid == self.mail_uid and mode & stat.S_IXUSR)
                or (info.st_gid == self.mail_gid and mode & stat.S_IXGRP)
            ):
                continue
            raise DovecotError(
                f"{directory} (mode {stat.filemode(mode)}) is not traversable by uid "
                f"{self.mail_uid}; put the instance under a world-traversable directory such "
                "as the one tempfile.mkdtemp() returns"
            )

    def _prepare(self) -> None:
        if self._prepared:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self._check_traversable()
        self.base_dir.mkdir(exist_ok=True)
        self.mail_root.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.mail_root, self.mail_uid, self.mail_gid)
        if self._tls:
            tls_dir = self.root / "tls"
            tls_dir.mkdir(mode=0o700, exist_ok=True)
            self.tls_files = write_tls_files(tls_dir)
        self._passwd.write()
        self._prepared = True

    def add_user(self, login: str, password: str) -> None:
        """Add (or re-password) a user; a running server accepts the login on return.

        On a running server this waits for the next wall-clock second (half a second on
        average, see `PasswdFile.wait_until_visible`); users added before `start` cost nothing.
        """
        self._prepare()
        home = self._passwd.home(login)
        self._passwd.set(login, password)
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, self.mail_uid, self.mail_gid)
        if self.running:
            self._passwd.wait_until_visible()

    def _write_config(self) -> None:
        settings = DovecotSettings(
            root=self.root,
            log_path=self.log_path,
            passwd_path=self.passwd_path,
            port=self.port,
            tls_port=self.tls_port,
            tls=self.tls_files,
            login_user=self._login_user,
            internal_user=self._internal_user,
            internal_group=self._internal_group,
            mail_uid=self.mail_uid,
            mail_gid=self.mail_gid,
            separator=self._separator,
            storage=self._storage,
            auth_delays=self._auth_delays,
        )
        self.config_path.write_text(render(settings), encoding="utf-8")

    # -- processes -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start Dovecot and return once the plain port sends its IMAP greeting."""
        if self.running:
            raise DovecotError("already running")
        binary = dovecot_binary()
        if binary is None:
            raise DovecotError(NOT_INSTALLED)
        self._prepare()
        # Ports are chosen once; restart() must come back on the same ones.
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            if attempts > 1:
                self.port, self.tls_port = _free_ports(2) if self._tls else [*_free_ports(1), 0]
            self._write_config()
            try:
                self._spawn(binary)
                return
            except _PortTaken:
                if attempt + 1 == attempts:
                    raise DovecotError(
                        f"ports {self.port}/{self.tls_port} in use\n{self.log_tail()}"
                    ) from None

    def _spawn(self, binary: str) -> None:
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        startup_log = self.root / "startup.log"
        with startup_log.open("wb") as output:
            # A new session: a Ctrl-C meant for pytest does not reach Dovecot directly.
            self._process = subprocess.Popen(
                [binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while not self._greets():
            status = self._process.poll()
            if status is not None:
                self._process = None
                text = _read_from(self.log_path, log_start) + _read_from(startup_log, 0)
                if "Address already in use" in text:
                    raise _PortTaken
                raise DovecotError(f"dovecot exited with status {status}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise DovecotError(
                    f"no IMAP greeting on {HOST}:{self.port} within {self.start_timeout} s\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.01)

    def _greets(self) -> bool:
        try:
            with (
                socket.create_connection((HOST, self.port), timeout=0.5) as sock,
                sock.makefile("rb") as reader,
            ):
                return reader.readline().startswith(b"* OK")
        except OSError:
            return False

    def _master_pid(self) -> int:
        """The pid in <base_dir>/master.pid, when it names our master; else our child's pid."""
        assert self._process is not None
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.base_dir / "master.pid").read_text().strip())
            if pid == self._process.pid:
                return pid
        return self._process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM to the master) and wait until every process has exited.

        Dovecot 2.3's master always sleeps 1 s before exiting, so this takes about a second.
        """
        if self._process is None:
            return
        process = self._process
        pid = self._master_pid()
        workers = procs.children(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DovecotError(f"master {pid} ignored SIGTERM for {timeout} s; killed it") from None
        self._process = None
        left = procs.wait_gone(workers, timeout)
        if left:
            raise DovecotError(f"processes {left} outlived the master\n{self.log_tail()}")

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the master and all its processes (imap-login, imap, auth, ...) at once.

        Connected clients see their connection drop mid-command, as on a crash or power loss.
        """
        if self._process is None:
            return
        process = self._process
        pid = self._master_pid()
        with contextlib.suppress(ProcessLookupError):
            # Stopped first, so it forks nothing new while its children are collected.
            os.kill(pid, signal.SIGSTOP)
        workers = procs.children(pid)
        # All frozen before any dies, so none logs errors about the others vanishing.
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for worker in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout)
        self._process = None
        # The stale pid file would make the next start refuse if the pid got reused.
        (self.base_dir / "master.pid").unlink(missing_ok=True)
        left = procs.wait_gone(workers, timeout)
        if left:
            raise DovecotError(f"processes {left} survived SIGKILL")

    def restart(self) -> None:
        """Stop (if running) and start again on the same ports, with the same mail and users."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of Dovecot's log and of its start-up output."""
        texts = []
        for path in (self.log_path, self.root / "startup.log"):
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                if tail:
                    texts.append(f"--- {path} ---\n" + "\n".join(tail))
        return "\n".join(texts) or "(no log output)"

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Killed, not stopped: nothing under root must survive, and stop() costs a second.
        self.kill()


def require_dovecot() -> str:
    """The ``dovecot`` executable; without one, skip the test, or fail it when CI=true."""
    binary = dovecot_binary()
    if binary is None:
        peer_missing(NOT_INSTALLED)
        raise AssertionError("unreachable: peer_missing skips or fails")
    return binary


def dovecot_fixture(
    *,
    name: str = "dovecot",
    scope: Scope = "function",
    tls: bool = True,
    storage: Storage = "maildir",
    users: Mapping[str, str] | None = None,
) -> Callable[..., Iterator[DovecotServer]]:
    """A pytest fixture yielding a started `DovecotServer` that knows `users` (login: password).

    Users given here exist before start-up; `add_user` on the running server costs up to a
    second (see there).

    Per test by default: start-up takes a few tens of milliseconds and teardown kills the
    processes, so tests do not share users, folders or the connection counters. The instance
    lives under a fresh ``tempfile.mkdtemp()`` directory (short and world-traversable, which
    pytest's tmp_path is not), removed afterwards; its log stays in pytest's tmp dirs.
    """

    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
        require_dovecot()
        log_dir = tmp_path_factory.mktemp("dovecot-log")
        root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        try:
            server = DovecotServer(root, tls=tls, storage=storage, log_path=log_dir / "dovecot.log")
            for login, password in (users or {}).items():
                server.add_user(login, password)
            with server:
                yield server
        finally:
            shutil.rmtree(root, ignore_errors=True)

    return pytest.fixture(scope=scope, name=name)(fixture)
