"""Mail account settings and their secret, as ``crm-gateway mail`` users see them.

The commands here touch only the database (``set``, ``test`` and ``poll`` talk to a server
and are driven in their own process in test_imap_failures.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from imap_world import SECRET_KEY, account_state, cursors, seed_crm
from sqlalchemy import insert

from gateway.db import Store
from gateway.errors import Invalid
from gateway.mail_accounts import MailSettings, resolve_settings, set_account
from gateway.models import MailFolderCursor
from gateway.secrets import SecretBox, SecretError
from gateway.users import get_user

PASSWORD = "Tr0ub4dor&3 süß"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATEWAY_SECURITY_SECRET_KEY", SECRET_KEY)


def store_account(store: Store, password: str = PASSWORD, host: str = "imap.acme.example",
                  ) -> None:
    with store.transaction() as session:
        set_account(session, get_user(session, "alice"),
                    MailSettings(host, 993, "ssl", "alice@acme.example", password),
                    SecretBox(SECRET_KEY))


def test_the_secret_is_stored_encrypted_and_never_shown(store: Store, cli: Run) -> None:
    seed_crm(store)
    store_account(store)
    stored = account_state(store, "alice").secret
    assert PASSWORD.encode() not in stored and b"Tr0ub4dor" not in stored
    assert SecretBox(SECRET_KEY).decrypt(stored) == PASSWORD
    with pytest.raises(SecretError, match="cannot be decrypted with the configured"):
        SecretBox("another key").decrypt(stored)

    code, out, _ = cli("mail", "show", "alice")
    assert code == 0 and "password:     stored encrypted" in out
    code, json_out, _ = cli("--json", "mail", "show", "alice")
    shown = json.loads(json_out)
    assert shown["login"] == "alice@acme.example" and shown["state"] == "active"
    for text in (out, json_out):
        assert "Tr0ub4dor" not in text and stored.decode() not in text


def test_pop3_is_refused_with_the_reason(store: Store, cli: Run) -> None:
    seed_crm(store)
    code, _, err = cli("mail", "set", "alice", "--protocol", "pop3")
    assert code == 2
    assert "POP3 is not supported" in err and "cannot be synchronised" in err
    code, _, err = cli("mail", "show", "alice")
    assert code == 2 and "has no mail account" in err


def test_bad_input_is_refused_before_anything_is_stored(
    store: Store, cli: Run, tmp_path: Path
) -> None:
    seed_crm(store)
    secret = tmp_path / "password"
    secret.write_text("a password\n")
    for argv, message in [
        (("--host", "imap.example.com", "--login", "a"), "exactly one of --password-env"),
        (("--host", "imap.example.com", "--login", "a", "--password-env", "NO_SUCH_VAR"),
         "NO_SUCH_VAR is not set"),
        (("--host", "imap.example.com", "--login", "a", "--password-file",
          str(tmp_path / "missing")), "cannot read the password file"),
        (("--host", "bad host!", "--login", "a", "--password-file", str(secret)),
         "is not a host name"),
        (("--host", "imap.example.com", "--password-file", str(secret)),
         "--login is required"),
        (("--provider", "gmail", "--login", "a", "--password-file", str(secret),
          "--folders", " , "), "--folders names no folder"),
    ]:
        code, _, err = cli("mail", "set", "alice", *argv)
        assert code == 2 and message in err, (argv, err)
    code, _, err = cli("mail", "poll", "alice")
    assert code == 2 and "needs --once" in err
    code, _, _ = cli("mail", "show", "alice")
    assert code == 2


def test_provider_presets_and_defaults() -> None:
    def settings(**given: object) -> MailSettings:
        values: dict[str, object] = {"provider": None, "host": None, "port": None,
                                     "tls": None, "login": "a", "password": "p",
                                     "folders": None}
        values.update(given)
        return resolve_settings(**values)  # type: ignore[arg-type]

    gmail = settings(provider="gmail")
    assert (gmail.host, gmail.port, gmail.tls, gmail.folders) == (
        "imap.gmail.com", 993, "ssl", ("INBOX",))
    assert settings(provider="icloud").host == "imap.mail.me.com"
    assert settings(host="mail.example.com", tls="starttls").port == 143
    assert settings(provider="outlook", tls="starttls").port == 143
    assert settings(host="mail.example.com", folders=["inbox", "Sent", "Sent"]).folders == (
        "INBOX", "Sent")
    with pytest.raises(Invalid, match="unknown provider 'aol'"):
        settings(provider="aol")
    assert "PollTarget" not in repr(gmail) and "'p'" not in repr(gmail)


def test_pause_resume_remove_and_new_settings(store: Store, cli: Run) -> None:
    seed_crm(store)
    store_account(store)
    assert cli("mail", "pause", "alice")[0] == 0
    code, out, _ = cli("mail", "show", "alice")
    assert "state:        paused: paused with 'crm-gateway mail pause'" in out
    assert cli("mail", "resume", "alice")[0] == 0
    assert not account_state(store, "alice").paused

    # Another server is another mailbox: its folder cursors start afresh.
    with store.transaction() as session:
        session.execute(insert(MailFolderCursor).values(
            mail_account_id=account_state(store, "alice").id, folder="INBOX",
            uidvalidity=7, last_uid=40))
    store_account(store, password="new password")
    assert cursors(store, "alice") == {"INBOX": (7, 40)}
    store_account(store, host="imap2.acme.example")
    assert cursors(store, "alice") == {}

    code, out, _ = cli("mail", "remove", "alice")
    assert code == 0 and "logged activities stay" in out
    assert cli("mail", "show", "alice")[0] == 2
