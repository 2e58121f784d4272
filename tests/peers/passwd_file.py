"""The passwd-file holding a test Dovecot's users, and when a running Dovecot sees a change.

Format (Dovecot's passwd-file driver): ``login:{PLAIN}password:uid:gid::home::``, one a line.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path

_PLAIN_LOGIN = re.compile(r"[A-Za-z0-9_.@+-]+")
_FORBIDDEN_IN_PASSWORD = re.compile(r"[:\r\n\0]")


class PasswdFile:
    """Users of one instance, all owned by one uid/gid, with homes under `home_root`."""

    def __init__(self, path: Path, uid: int, gid: int, home_root: Path) -> None:
        self.path = path
        self._uid = uid
        self._gid = gid
        self._home_root = home_root
        self._users: dict[str, str] = {}
        self._mtime = 0

    def home(self, login: str) -> Path:
        return self._home_root / login

    def password(self, login: str) -> str:
        try:
            return self._users[login]
        except KeyError:
            raise KeyError(f"no user {login!r}; call add_user() first") from None

    def set(self, login: str, password: str) -> None:
        """Add or re-password `login` and rewrite the file."""
        if not _PLAIN_LOGIN.fullmatch(login):
            raise ValueError(f"login {login!r}: use letters, digits and _.@+- only")
        if _FORBIDDEN_IN_PASSWORD.search(password):
            raise ValueError("a passwd-file password cannot contain ':', CR, LF or NUL")
        self._users[login] = password
        self.write()

    def write(self) -> None:
        """Replace the file atomically, readable by the auth process (group `gid`)."""
        lines = [
            f"{login}:{{PLAIN}}{password}:{self._uid}:{self._gid}::{self.home(login)}::\n"
            for login, password in self._users.items()
        ]
        temporary = self.path.with_name(self.path.name + ".new")
        temporary.write_text("".join(lines), encoding="utf-8")
        os.chmod(temporary, 0o640)
        os.chown(temporary, os.geteuid(), self._gid)
        # Dovecot re-reads when mtime (whole seconds) or size differ from what it loaded;
        # a strictly increasing mtime makes even a same-size rewrite visible.
        self._mtime = max(math.floor(time.time()), self._mtime + 1)
        os.utime(temporary, (self._mtime, self._mtime))
        os.replace(temporary, self.path)

    @staticmethod
    def wait_until_visible() -> None:
        """Sleep into the next wall-clock second, after which a running Dovecot sees the file.

        Dovecot 2.3's passwd_file_sync() stats the file at most once per second (it compares
        ioloop_time with the last sync): a login later in the second of a write may still be
        checked against the old users.
        """
        now = time.time()
        time.sleep(math.floor(now) + 1 - now)
