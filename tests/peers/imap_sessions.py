"""Client side of a test IMAP server: log in as one of its users and fill or inspect a mailbox.

A mixin (as Radicale composes its storage from one module per operation): the server class
supplies where to connect and the users' passwords; this supplies the sessions and helpers.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import imaplib
import ssl
from collections.abc import Iterable, Iterator
from typing import Literal

from . import imap_ops

HOST = "127.0.0.1"
Security = Literal["plain", "starttls", "tls"]


def close_quietly(conn: imaplib.IMAP4) -> None:
    """LOGOUT if the server still answers; close the socket in every case."""
    try:
        conn.logout()
    except (imaplib.IMAP4.error, OSError):
        # logout() closes the socket only after LOGOUT got an answer.
        with contextlib.suppress(OSError):
            conn.shutdown()


class ImapSessions(abc.ABC):
    """Sessions on `port` (plain or STARTTLS) and `tls_port` (implicit TLS) of 127.0.0.1."""

    port: int
    tls_port: int
    client_timeout: float

    @abc.abstractmethod
    def client_context(self) -> ssl.SSLContext:
        """The SSLContext clients use to verify the server."""

    @abc.abstractmethod
    def password(self, login: str) -> str:
        """The password of a known user."""

    def open(self, security: Security = "plain") -> imaplib.IMAP4:
        """A connection in the not-authenticated state; the caller closes it."""
        if security == "tls":
            return imaplib.IMAP4_SSL(
                HOST, self.tls_port, ssl_context=self.client_context(), timeout=self.client_timeout
            )
        conn = imaplib.IMAP4(HOST, self.port, timeout=self.client_timeout)
        if security == "starttls":
            try:
                conn.starttls(ssl_context=self.client_context())
            except BaseException:
                close_quietly(conn)
                raise
        return conn

    def connect(self, login: str, security: Security = "plain") -> imaplib.IMAP4:
        """A connection logged in as `login`; the caller closes it (see `session`)."""
        conn = self.open(security)
        try:
            conn.login(login, self.password(login))
        except BaseException:
            close_quietly(conn)
            raise
        return conn

    @contextlib.contextmanager
    def session(self, login: str, security: Security = "plain") -> Iterator[imaplib.IMAP4]:
        """A logged-in connection, logged out (or closed) when the block ends."""
        conn = self.connect(login, security)
        try:
            yield conn
        finally:
            close_quietly(conn)

    def append(
        self,
        login: str,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        date: dt.datetime | None = None,
    ) -> int:
        """APPEND one message to `folder` of `login`; return its UID."""
        with self.session(login) as conn:
            return imap_ops.append(conn, folder, raw, flags, date)

    def append_many(
        self, login: str, folder: str, messages: Iterable[bytes | imap_ops.AppendMessage]
    ) -> list[int]:
        """APPEND many messages over one connection with MULTIAPPEND; return their UIDs."""
        with self.session(login) as conn:
            return imap_ops.append_many(conn, folder, messages)

    def create_folder(self, login: str, folder: str) -> None:
        """CREATE `folder`; after `delete_folder` it comes back with a new UIDVALIDITY."""
        with self.session(login) as conn:
            imap_ops.create_folder(conn, folder)

    def delete_folder(self, login: str, folder: str) -> None:
        """DELETE `folder` and its messages."""
        with self.session(login) as conn:
            imap_ops.delete_folder(conn, folder)

    def flags(self, login: str, folder: str) -> dict[int, set[str]]:
        """UID -> flags (without ``\\Recent``), read without changing any flag."""
        with self.session(login) as conn:
            return imap_ops.fetch_flags(conn, folder)

    def uidvalidity(self, login: str, folder: str) -> int:
        """UIDVALIDITY of `folder`."""
        with self.session(login) as conn:
            return imap_ops.uidvalidity(conn, folder)
