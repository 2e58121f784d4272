"""Every process on one database uses the same ``security.secret_key``.

Two real ``serve`` processes: the second, with another key, refuses to start naming the
option and never listens; with the same key it runs. The first key recorded must open the
mailbox passwords already stored; racing first starts with two keys let exactly one in;
``db record-key`` is the deliberate way to change the key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from caldav_peer import free_port, start_gateway, stop_gateway
from sqlalchemy import delete

from gateway.db import Store
from gateway.key_check import KeyMismatch, check_key
from gateway.mail_accounts import MailSettings, set_account
from gateway.models import KeyFingerprint
from gateway.secrets import SecretBox
from gateway.users import create_user

CliRun = Callable[..., tuple[int, str, str]]
KEY_A, KEY_B = "the first installation key", "a key of its own"


def serve_http(database_url: str, folder: Path, key: str, port: int
               ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env.update({
        "CRM_GATEWAY_DATABASE_URL": database_url,
        "CRM_GATEWAY_HTTP_LISTEN": f"127.0.0.1:{port}",
        "CRM_GATEWAY_PATHS_DATA_DIR": str(folder / "var"),
        "CRM_GATEWAY_SECURITY_SECRET_KEY": key,
    })
    script = Path(sys.executable).parent / "crm-gateway"
    folder.mkdir(exist_ok=True)
    return subprocess.run([str(script), "serve", "--only", "http"], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_second_process_with_another_key_refuses_to_start_naming_the_option(
    database_url: str, tmp_path: Path
) -> None:
    first = start_gateway(database_url, tmp_path, ("CRM_GATEWAY_SECURITY_SECRET_KEY", KEY_A))
    try:
        port = free_port()
        refused = serve_http(database_url, tmp_path / "second", KEY_B, port)
        assert refused.returncode == 2, refused.stderr
        assert refused.stdout == ""
        line = refused.stderr
        assert line.count("\n") == 1 and line.startswith("crm-gateway: security.secret_key "), line
        assert "differs from the key this database was set up with" in line
        assert KEY_A not in line and KEY_B not in line
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert requests.get(first.url + "healthz", timeout=10).status_code == 200

        (tmp_path / "third").mkdir()
        second = start_gateway(database_url, tmp_path / "third",
                               ("CRM_GATEWAY_SECURITY_SECRET_KEY", KEY_A))
        try:
            assert requests.get(second.url + "healthz", timeout=10).status_code == 200
        finally:
            stop_gateway(second)
    finally:
        stop_gateway(first)


def add_mailbox(store: Store, key: str) -> None:
    with store.transaction() as session:
        user = create_user(session, "alice", "alice@acme.example")
        set_account(session, user, MailSettings("imap.acme.example", 993, "ssl", "alice",
                                                "alice's mail password", ("INBOX",)),
                     SecretBox(key))


def test_the_first_key_recorded_must_open_the_stored_mailbox_passwords(store: Store) -> None:
    add_mailbox(store, KEY_A)
    with pytest.raises(KeyMismatch, match="does not open the mailbox passwords stored"):
        check_key(store, KEY_B)
    with store.reading() as session:
        assert session.get(KeyFingerprint, "security.secret_key") is None
    check_key(store, KEY_A)
    check_key(store, KEY_A)
    with pytest.raises(KeyMismatch, match=r"^security\.secret_key differs"):
        check_key(store, KEY_B)


def race(store: Store, barrier: threading.Barrier, key: str, outcomes: dict[str, str]) -> None:
    barrier.wait()
    try:
        check_key(store, key)
        outcomes[key] = "started"
    except KeyMismatch:
        outcomes[key] = "refused"


def test_first_starts_racing_with_two_keys_let_exactly_one_in(store: Store) -> None:
    for _ in range(10):
        with store.transaction() as session:
            session.execute(delete(KeyFingerprint))
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}
        threads = [threading.Thread(target=race, args=(store, barrier, key, outcomes))
                   for key in (KEY_A, KEY_B)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(outcomes.values()) == ["refused", "started"]


def test_db_record_key_makes_a_changed_key_the_one_every_process_must_use(
    cli: CliRun, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_key(store, KEY_A)
    monkeypatch.setenv("CRM_GATEWAY_SECURITY_SECRET_KEY", KEY_B)
    code, out, err = cli("db", "record-key")
    assert (code, err) == (0, "")
    assert out.startswith("security.secret_key recorded: processes with another key now refuse")
    check_key(store, KEY_B)
    with pytest.raises(KeyMismatch):
        check_key(store, KEY_A)
    assert cli("db", "record-key")[1] == "security.secret_key is already the recorded one\n"


def test_mail_set_with_another_key_is_refused_and_stores_nothing(
    cli: CliRun, store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with store.transaction() as session:
        create_user(session, "alice", "alice@acme.example")
    check_key(store, KEY_A)
    monkeypatch.setenv("CRM_GATEWAY_SECURITY_SECRET_KEY", KEY_B)
    monkeypatch.setenv("ALICE_PASSWORD", "alice's mail password")
    code, out, err = cli("mail", "set", "alice", "--host", "imap.acme.example",
                         "--login", "alice", "--password-env", "ALICE_PASSWORD")
    assert code == 2 and out == ""
    assert err.startswith("crm-gateway: security.secret_key differs") and err.count("\n") == 1
    assert cli("mail", "show", "alice")[0] == 2  # no mailbox was stored
