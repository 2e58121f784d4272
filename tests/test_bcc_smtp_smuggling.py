"""SMTP smuggling: a bare-LF (or bare-CR) "dot" inside DATA must not end the message.

An attacker hides a second transaction after a line end that some servers take for the end of
DATA (`\\n.\\r\\n`, `\\r\\n.\\n`, ...). Here only CRLF.CRLF ends a message, so the whole payload is
one message: one 250, one queued row holding the smuggled commands as text, one activity.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers.bcc_listener import (
    BUYER,
    REP,
    Running,
    World,
    running_listener,
    seed_world,
    settle,
    write_config,
)
from sqlalchemy import select

from gateway.db import Store
from gateway.models import Activity, InboundMessage

CARRIER = (
    b"From: Rep One <rep@crm.example>\r\nTo: <buyer@customer.example>\r\n"
    b"Subject: carrier\r\nMessage-ID: <carrier@crm.example>\r\n\r\nfirst line\r\n"
)


def smuggled(rcpt: str) -> bytes:
    return (
        b"MAIL FROM:<ceo@crm.example>\r\nRCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\n"
        b"From: CEO <ceo@crm.example>\r\nTo: <buyer@customer.example>\r\n"
        b"Subject: smuggled\r\nMessage-ID: <smuggled@attacker.example>\r\n\r\n"
        b"pay the attacker\r\n"
    )


@pytest.fixture
def smtp(tmp_path: Path, database_url: str, store: Store) -> Iterator[tuple[Running, World]]:
    world = seed_world(store)
    with running_listener(write_config(tmp_path, database_url), store) as running:
        yield running, world


@pytest.mark.parametrize("fake_end", [b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\n", b"\r\n.\r"])
def test_a_bare_line_end_dot_does_not_split_the_message(
    smtp: tuple[Running, World], store: Store, fake_end: bytes
) -> None:
    running, world = smtp
    payload = CARRIER + b"last line" + fake_end + smuggled(world.rep2) + b"\r\n.\r\n"
    with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
        client.ehlo("mta.test")
        assert client.mail(REP)[0] == 250
        assert client.rcpt(world.rep)[0] == 250
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        client.send(payload)
        code, text = client.getreply()
        assert (code, text.startswith(b"2.0.0 Queued as ")) == (250, True)
        # Nothing more was answered: the "smuggled" commands were message text.
        assert client.noop()[0] == 250
    settle(store)
    with store.reading() as session:
        [row] = session.scalars(select(InboundMessage))
        assert b"pay the attacker" in row.raw and b"RCPT TO:<" in row.raw
        [activity] = session.scalars(select(Activity))
        assert activity.message_key == "mid:carrier@crm.example"
        assert activity.text_body is not None and "MAIL FROM:<ceo@crm.example>" in (
            activity.text_body)
        assert activity.to_addrs == [BUYER]
