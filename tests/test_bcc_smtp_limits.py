"""The listener's limits, seen from the client: size, idle and chatty sessions, hostile MIME
structure that must not stall other sessions, STARTTLS."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from peers.bcc_listener import (
    REP,
    Running,
    World,
    crlf,
    eml,
    running_listener,
    send,
    settle,
    write_config,
)
from peers.tls import write_tls_files
from sqlalchemy import select

from bcc_ingest.smtp.handler import BccHandler
from bcc_ingest.smtp.settings import SmtpSettings
from gateway.db import Store
from gateway.models import Activity, InboundMessage

EML = Path(__file__).parent / "fixtures" / "eml"
HEAD = (b"From: Rep One <rep@crm.example>\r\nTo: Bea Buyer <buyer@customer.example>\r\n"
        b"Subject: %s\r\nMessage-ID: <%s@crm.example>\r\n")


@pytest.fixture
def smtp(tmp_path: Path, database_url: str, store: Store, world: World) -> Iterator[Running]:
    config = write_config(tmp_path, database_url, max_message_bytes=50_000,
                          idle_timeout_seconds=1, max_commands=5)
    with running_listener(config, store) as running:
        yield running


def rows(store: Store) -> list[InboundMessage]:
    with store.reading() as session:
        found = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        session.expunge_all()
    return found


def message(subject: bytes, body_bytes: int) -> bytes:
    body = b"".join(b"%075d\r\n" % n for n in range(body_bytes // 77 + 1))
    return HEAD % (subject, subject) + b"\r\n" + body


def test_size_is_advertised_and_oversized_mail_gets_552(
    smtp: Running, store: Store, world: World
) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        client.ehlo("mta.test")
        assert client.esmtp_features["size"] == "50000"
        # Declared too big: refused at MAIL FROM, before any data is sent.
        assert client.mail(REP, ["SIZE=60000"])[0] == 552
        client.rset()
        # Not declared: the whole message is read, then refused.
        assert client.mail(REP)[0] == 250
        assert client.rcpt(world.rep)[0] == 250
        assert client.data(message(b"big", 60_000))[0] == 552
        # The session goes on, and a message within the limit is taken.
        assert client.mail(REP)[0] == 250
        assert client.rcpt(world.rep)[0] == 250
        assert client.data(message(b"small", 40_000))[0] == 250
    settle(store)
    assert [row.size < 50_000 for row in rows(store)] == [True]


def test_a_silent_client_is_disconnected_after_the_idle_timeout(smtp: Running) -> None:
    with socket.create_connection(("127.0.0.1", smtp.port), timeout=10) as raw:
        assert raw.recv(1024).startswith(b"220 crm.example ")
        started = time.monotonic()
        assert raw.recv(1024) == b""  # the server closed the connection
        assert 0.5 < time.monotonic() - started < 5


def test_a_client_dribbling_its_message_is_cut_off(smtp: Running, world: World) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        client.ehlo("mta.test")
        client.mail(REP)
        client.rcpt(world.rep)
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        started = time.monotonic()
        with pytest.raises(OSError):  # reset or closed under the client's feet
            for n in range(100):
                client.send(b"line %d\r\n" % n)
                time.sleep(0.2)
        assert time.monotonic() - started < 5


def test_a_chatty_client_is_closed_after_max_commands(smtp: Running) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        for _ in range(5):
            assert client.noop()[0] == 250
        assert client.noop() == (421, b"4.7.0 NOOP sent too many times")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def nested(depth: int) -> bytes:
    """``depth`` nested multipart/mixed levels, each with a line of text."""
    head, tail = [HEAD % (b"deep", b"deep")], []
    for level in range(depth):
        head.append(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n"
                    b"Content-Type: text/plain\r\n\r\nlevel %d\r\n--b%d\r\n"
                    % (level, level, level, level))
        tail.append(b"\r\n--b%d--\r\n" % level)
    return b"".join(head) + b"Content-Type: text/plain\r\n\r\ninnermost" + b"".join(
        reversed(tail))


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--x\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n
                     for n in range(count))
    return (HEAD % (b"wide", b"wide") + b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
            + parts + b"--x--\r\n")


@pytest.mark.parametrize(
    ("build", "truncated"),
    [(lambda: nested(2000), "MIME nesting deeper than 20 levels"),
     (lambda: many_parts(50_000), "more than 500 MIME parts")],
    ids=["2000-deep", "50000-parts"],
)
def test_hostile_structure_is_logged_within_limits_while_others_get_answers(
    tmp_path: Path, database_url: str, store: Store, world: World,
    build: Callable[[], bytes], truncated: str,
) -> None:
    raw = build()
    with running_listener(write_config(tmp_path, database_url), store) as smtp:
        assert send(smtp.port, raw, mail_from=REP, rcpt_tos=[world.rep]).final == 250
        # While that is processed, a second session is answered promptly.
        with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as other:
            started = time.monotonic()
            assert other.ehlo("mta.test")[0] == 250
            assert other.noop()[0] == 250
            assert time.monotonic() - started < 1.0
        settle(store)
    with store.reading() as session:
        [activity] = session.scalars(select(Activity))
        [row] = session.scalars(select(InboundMessage))
        assert row.status == "done"
        assert activity.notes is not None and f"Parsing stopped early ({truncated})" in (
            activity.notes)
        assert activity.raw_sha256 is not None  # the original is kept whole
        assert activity.text_body is not None and activity.text_body.startswith(
            "level 0" if "deep" in truncated else "part 0")


@pytest.mark.parametrize("fixture", sorted(p.name for p in EML.glob("malformed_*.eml")))
def test_malformed_mime_is_accepted_and_processed_without_failing(
    tmp_path: Path, database_url: str, store: Store, world: World, fixture: str
) -> None:
    with running_listener(write_config(tmp_path, database_url), store) as smtp:
        assert send(smtp.port, eml(fixture), mail_from=REP, rcpt_tos=[world.rep]).final == 250
        settle(store)
    [row] = rows(store)
    assert row.status in ("done", "skipped") and row.last_error is None, row.decision


def test_starttls_when_configured_and_no_auth_is_offered(
    tmp_path: Path, database_url: str, store: Store, world: World
) -> None:
    files = write_tls_files(tmp_path)
    config = write_config(tmp_path, database_url, tls_cert=str(files.cert_path),
                          tls_key=str(files.key_path))
    with running_listener(config, store) as smtp, smtplib.SMTP(
        "localhost", smtp.port, timeout=10
    ) as client:
        client.ehlo("mta.test")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        assert client.starttls(context=files.client_context())[0] == 220
        client.ehlo("mta.test")
        assert not client.has_extn("starttls") and not client.has_extn("auth")
        raw = crlf((EML / "smtp" / "quote_with_attachments.eml").read_bytes())
        assert client.sendmail(REP, [world.rep], raw) == {}
        settle(store)
    assert [row.status for row in rows(store)] == ["done"]


def test_an_unexpected_error_is_a_temporary_451_that_leaks_nothing(
    tmp_path: Path, database_url: str, store: Store
) -> None:
    # aiosmtpd's own default would be "500 Error: (RuntimeError) <the text>": permanent, leaky.
    handler = BccHandler(store, SmtpSettings.from_config(write_config(tmp_path, database_url))
                         .intake, ThreadPoolExecutor(1), lambda: None)
    reply = asyncio.run(handler.handle_exception(RuntimeError("password=hunter2 at db-3")))
    assert reply == "451 4.3.0 Temporary failure, please try again later"
    handler.executor.shutdown()
