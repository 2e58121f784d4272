"""The Dovecot peer itself: what the IMAP poller's tests rely on when they use `dovecot`."""

from __future__ import annotations

import contextlib
import imaplib
import re
import shutil
import socket
import ssl
import tempfile
import time
from pathlib import Path

import pytest
from peers import dovecot as dovecot_module
from peers.dovecot import DovecotServer, dovecot_fixture, require_dovecot
from peers.imap_ops import AppendMessage, encode_mailbox_name
from peers.imap_sessions import close_quietly

pytestmark = pytest.mark.dovecot

LOGIN = "alice"
PASSWORD = "correct horse battery staple"
dovecot = dovecot_fixture(users={LOGIN: PASSWORD})
MESSAGE = (
    b"From: Carol Client <carol@example.com>\r\n"
    b"To: Alice <alice@example.com>\r\n"
    b"Subject: Quote for the spring order\r\n"
    b"Message-ID: <quote-1@example.com>\r\n"
    b"Date: Thu, 21 Nov 2024 10:00:00 +0000\r\n"
    b"\r\n"
    b"Please find the quote attached.\r\n"
)
_FETCH_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


def _list_lines(conn: imaplib.IMAP4, *args: str) -> list[bytes]:
    status, _ = conn.xatom("LIST", *args)
    assert status == "OK"
    _, lines = conn.response("LIST")
    return [line for line in lines if isinstance(line, bytes)]


def test_login_with_the_right_password_succeeds(dovecot: DovecotServer) -> None:
    conn = dovecot.open()
    try:
        status, _ = conn.login(LOGIN, PASSWORD)
        assert status == "OK"
        assert conn.state == "AUTH"
    finally:
        close_quietly(conn)


def test_wrong_password_is_refused(dovecot: DovecotServer) -> None:
    conn = dovecot.open()
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            conn.login(LOGIN, "wrong password")
    finally:
        close_quietly(conn)


def test_user_added_while_running_can_log_in_at_once(dovecot: DovecotServer) -> None:
    with dovecot.session(LOGIN) as conn:
        conn.noop()  # Dovecot has just read the passwd-file
    dovecot.add_user("bob", "bob's password")
    with dovecot.session("bob") as conn:
        assert conn.state == "AUTH"


def test_sent_folder_carries_special_use_sent(dovecot: DovecotServer) -> None:
    with dovecot.session(LOGIN) as conn:
        plain = _list_lines(conn, '""', '"*"')
        # RFC 6154 section 5.1: LIST (SPECIAL-USE) returns only the special-use folders.
        special = _list_lines(conn, "(SPECIAL-USE)", '""', '"*"')
    assert rb'(\HasNoChildren \Sent) "/" Sent' in plain
    assert special == [rb'(\Sent) "/" Sent']


def test_implicit_tls_login_verifies_the_generated_certificate(dovecot: DovecotServer) -> None:
    with dovecot.session(LOGIN, "tls") as conn:
        assert isinstance(conn.sock, ssl.SSLSocket)
        peer = conn.sock.getpeercert()
        assert peer is not None
        assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]


def test_implicit_tls_without_trusting_the_ca_is_rejected(dovecot: DovecotServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(
            "127.0.0.1", dovecot.tls_port, ssl_context=ssl.create_default_context(), timeout=10
        )


def test_starttls_upgrades_the_plain_port(dovecot: DovecotServer) -> None:
    conn = dovecot.open()
    try:
        assert "STARTTLS" in conn.capabilities
        status, _ = conn.starttls(ssl_context=dovecot.client_context())
        assert status == "OK"
        assert isinstance(conn.sock, ssl.SSLSocket)
        status, _ = conn.login(LOGIN, PASSWORD)
        assert status == "OK"
    finally:
        close_quietly(conn)


def test_body_peek_leaves_seen_unset_and_body_sets_it(dovecot: DovecotServer) -> None:
    uid = dovecot.append(LOGIN, "INBOX", MESSAGE, flags=["$Forwarded"])
    with dovecot.session(LOGIN) as conn:
        conn.select("INBOX")
        status, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert status == "OK"
        assert isinstance(data[0], tuple)
        assert data[0][1] == MESSAGE
    assert dovecot.flags(LOGIN, "INBOX") == {uid: {"$Forwarded"}}

    with dovecot.session(LOGIN) as conn:
        conn.select("INBOX")
        conn.uid("FETCH", str(uid), "(BODY[])")
    assert dovecot.flags(LOGIN, "INBOX") == {uid: {"$Forwarded", "\\Seen"}}


def test_recreated_folder_gets_a_new_uidvalidity(dovecot: DovecotServer) -> None:
    dovecot.create_folder(LOGIN, "Archive/2024")
    dovecot.append(LOGIN, "Archive/2024", MESSAGE)
    before = dovecot.uidvalidity(LOGIN, "Archive/2024")
    dovecot.delete_folder(LOGIN, "Archive/2024")
    dovecot.create_folder(LOGIN, "Archive/2024")
    assert dovecot.uidvalidity(LOGIN, "Archive/2024") != before
    assert dovecot.flags(LOGIN, "Archive/2024") == {}


def test_folder_names_travel_as_modified_utf7(dovecot: DovecotServer) -> None:
    assert encode_mailbox_name("Entwürfe & Co") == "Entw&APw-rfe &- Co"
    dovecot.create_folder(LOGIN, "Entwürfe & Co")
    uid = dovecot.append(LOGIN, "Entwürfe & Co", MESSAGE)
    assert dovecot.flags(LOGIN, "Entwürfe & Co") == {uid: set()}
    with dovecot.session(LOGIN) as conn:
        assert rb'(\HasNoChildren) "/" "Entw&APw-rfe &- Co"' in _list_lines(conn, '""', '"*"')


def test_kill_drops_a_connected_client_and_restart_brings_the_mail_back(
    dovecot: DovecotServer,
) -> None:
    uid = dovecot.append(LOGIN, "INBOX", MESSAGE)
    conn = dovecot.connect(LOGIN)
    try:
        conn.select("INBOX")
        dovecot.kill()
        with pytest.raises(imaplib.IMAP4.abort):
            conn.noop()
    finally:
        close_quietly(conn)
    assert not dovecot.running

    dovecot.restart()
    assert dovecot.flags(LOGIN, "INBOX") == {uid: set()}


def test_kill_mid_fetch_cuts_the_literal_short(dovecot: DovecotServer) -> None:
    body = b"".join(b"line %07d of a large attachment\r\n" % n for n in range(500_000))
    uid = dovecot.append(LOGIN, "INBOX", MESSAGE + body)
    conn = dovecot.connect(LOGIN)
    try:
        # A fixed receive buffer turns off autotuning, so at most a few MiB can be in flight
        # (the server's send buffer plus this) and most of the message is still unsent.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        conn.select("INBOX")
        conn.send(b"F1 UID FETCH %d (BODY.PEEK[])\r\n" % uid)
        match = _FETCH_LITERAL.search(conn.readline())
        assert match is not None
        size = int(match.group(1))
        received = len(conn.read(64 * 1024))
        dovecot.kill()
        # The kernel still hands over what was in flight, then EOF (or a reset).
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.read(1024 * 1024):
                received += len(chunk)
    finally:
        close_quietly(conn)
    assert 0 < received < size


def test_graceful_restart_keeps_users_mail_and_port(dovecot: DovecotServer) -> None:
    uid = dovecot.append(LOGIN, "Sent", MESSAGE, flags=["\\Seen"])
    port = dovecot.port
    dovecot.restart()
    assert dovecot.port == port
    assert dovecot.flags(LOGIN, "Sent") == {uid: {"\\Seen"}}


def test_ten_thousand_messages_fill_in_well_under_a_minute(dovecot: DovecotServer) -> None:
    messages = (
        AppendMessage(MESSAGE.replace(b"quote-1@", b"quote-%d@" % n), ("\\Seen",) if n % 2 else ())
        for n in range(10_000)
    )
    started = time.monotonic()
    uids = dovecot.append_many(LOGIN, "INBOX", messages)
    elapsed = time.monotonic() - started

    assert uids == list(range(1, 10_001))
    with dovecot.session(LOGIN) as conn:
        _, data = conn.status("INBOX", "(MESSAGES UNSEEN)")
    assert isinstance(data[0], bytes)
    assert data[0].endswith(b"(MESSAGES 10000 UNSEEN 5000)")
    assert elapsed < 60, f"10,000 APPENDs took {elapsed:.1f} s"


def test_plain_only_mdbox_instance_with_dot_separator(tmp_path: Path) -> None:
    require_dovecot()
    root = Path(tempfile.mkdtemp(prefix="dovecot-"))
    try:
        server = DovecotServer(
            root, tls=False, storage="mdbox", separator=".", log_path=tmp_path / "dovecot.log"
        )
        server.add_user(LOGIN, PASSWORD)
        with server:
            conn = server.open()
            try:
                assert "STARTTLS" not in conn.capabilities
            finally:
                close_quietly(conn)
            server.create_folder(LOGIN, "Clients.Acme")
            uids = server.append_many(LOGIN, "Clients.Acme", [MESSAGE] * 3)
            assert server.flags(LOGIN, "Clients.Acme") == {uid: set() for uid in uids}
            with server.session(LOGIN) as conn:
                assert rb'(\HasNoChildren \Sent) "." Sent' in _list_lines(conn, '""', '"*"')
        assert server.tls_port == 0
        assert (root / "mail" / LOGIN / "mdbox").is_dir()
    finally:
        shutil.rmtree(root)


def test_missing_dovecot_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dovecot_module, "dovecot_binary", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Dovecot is not installed"):
        dovecot_module.require_dovecot()


def test_missing_dovecot_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dovecot_module, "dovecot_binary", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Dovecot is not installed"):
        dovecot_module.require_dovecot()
