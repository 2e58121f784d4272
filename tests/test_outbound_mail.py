"""The outbox and the smarthost sender against a real aiosmtpd smarthost on loopback.

Changes are made with the CLI (in-process, on the test's database) and the core services;
the sender's own functions (lease, one SMTP conversation with ``smtplib``, record) send what
is due, as one round of the "outbound" role does. Assertions parse what the smarthost
received with ``email`` and ``icalendar``: invitations follow the sync profile's
``invitations`` setting with the right METHOD and SEQUENCE, deferrals are retried, refusals
park the mail with the reply. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CliRun
from peers.smarthost import USER, Smarthost, smarthost
from sqlalchemy import select

from delivery.outbound import Smarthost as Target
from delivery.outbound import send
from gateway.clock import utcnow
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.models import OutboundMail, User
from gateway.outbound_leases import RetryPolicy, lease_due, record_attempt
from gateway.users import UserChanges, create_user, update_user

START = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(first_retry_seconds=1, retry_for_seconds=3600, timeout_seconds=5)
FROM = "crm@gateway.example"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Smarthost]:
    with smarthost(tmp_path / "relay") as host:
        yield host


@pytest.fixture
def crm(store: Store) -> Store:
    with store.transaction() as session:
        create_type(session, "Meeting")
        alice = create_user(session, "alice", "alice@acme.example", name="Alice Martin")
        update_user(session, alice, UserChanges(diary_sync=True))
        create_user(session, "bob", "bob@acme.example", name="Bob Stone")
    return store


@pytest.fixture
def mailing_cli(cli: CliRun, relay: Smarthost, monkeypatch: pytest.MonkeyPatch) -> CliRun:
    """The CLI of a gateway that sends through ``relay``."""
    for key, value in relay.env(FROM).items():
        monkeypatch.setenv(key, value)
    return cli


def target(host: Smarthost) -> Target:
    from urllib.parse import urlsplit

    parts = urlsplit(host.url)
    security = {"smtp": "plain", "smtps": "tls", "smtp+starttls": "starttls"}[parts.scheme]
    return Target(parts.hostname or "", host.port, security, parts.username, parts.password,
                  str(host.tls.ca_path) if host.tls else None, 5.0)


def send_due(store: Store, host: Smarthost, now: datetime | None = None) -> list[str | None]:
    """One sender round: lease what is due, send each, record; the new statuses."""
    jobs = lease_due(store, "test-sender", now or utcnow(), limit=50,
                     lease_seconds=POLICY.lease_seconds)
    return [record_attempt(store, job, "test-sender", send(job, target(host)), utcnow(),
                           POLICY) for job in jobs]


def ok(run: CliRun, *argv: str) -> str:
    code, out, err = run(*argv)
    assert code == 0, err
    return out


def add_entry(run: CliRun, title: str = "Pricing review", *attendees: str) -> int:
    args = ["--json", "entries", "add", "--type", "Meeting", "--title", title,
            "--start", "2026-12-08T09:00", "--end", "2026-12-08T10:00", "--organizer", "alice"]
    for attendee in attendees:
        args += ["--attendee", attendee]
    return int(json.loads(ok(run, *args))["id"])


def test_without_a_smarthost_nothing_is_queued(cli: CliRun, crm: Store) -> None:
    ok(cli, "sync", "profile", "--invitations", "always")
    add_entry(cli, "Pricing review", "carol@globex.example")
    with crm.reading() as session:
        assert session.scalars(select(OutboundMail)).all() == []
    assert "outbound mail is off" in ok(cli, "outbound", "list")


def test_a_new_entry_invites_external_attendees_with_a_request(
    mailing_cli: CliRun, crm: Store, relay: Smarthost,
) -> None:
    ok(mailing_cli, "sync", "profile", "--invitations", "always")
    entry_id = add_entry(mailing_cli, "Pricing review", "carol@globex.example", "bob")
    assert send_due(crm, relay) == ["sent"]
    [mail] = relay.wait_for(1)
    assert mail.rcpt_tos == ("carol@globex.example",)  # bob is a CRM user: not mailed
    assert mail.mail_from == FROM
    message = mail.message
    assert message["Reply-To"].addresses[0].addr_spec == "alice@acme.example"
    assert message["From"].addresses[0].addr_spec == FROM
    assert message["From"].addresses[0].display_name == "Alice Martin"
    assert mail.calendar_method_param() == "REQUEST"
    calendar = mail.calendar()
    assert calendar is not None and calendar["METHOD"] == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert event["SUMMARY"] == "Pricing review"
    assert int(event["SEQUENCE"]) == 0
    assert str(event["ORGANIZER"]).lower() == "mailto:alice@acme.example"
    attendees = {str(a).lower() for a in event.get("ATTENDEE")}
    assert "mailto:carol@globex.example" in attendees
    shown = json.loads(ok(mailing_cli, "--json", "outbound", "list"))
    assert [(m["kind"], m["status"], m["entry_id"]) for m in shown] == [
        ("request", "sent", entry_id)]
    assert shown[0]["message_id"] == mail.message_id


def test_a_reschedule_sends_a_request_with_a_bumped_sequence_and_a_delete_a_cancel(
    mailing_cli: CliRun, crm: Store, relay: Smarthost,
) -> None:
    ok(mailing_cli, "sync", "profile", "--invitations", "always")
    entry_id = add_entry(mailing_cli, "Pricing review", "carol@globex.example")
    send_due(crm, relay)
    ok(mailing_cli, "entries", "set", str(entry_id), "--title", "Pricing review v2")
    assert send_due(crm, relay) == []  # a new title alone changes nothing for attendees
    ok(mailing_cli, "entries", "set", str(entry_id), "--start", "2026-12-08T11:00")
    assert send_due(crm, relay) == ["sent"]
    ok(mailing_cli, "entries", "delete", str(entry_id))
    assert send_due(crm, relay) == ["sent"]
    first, moved, cancelled = relay.wait_for(3)
    assert len(relay.messages()) == 3
    moved_event = moved.calendar().walk("VEVENT")[0]  # type: ignore[union-attr]
    assert moved.calendar()["METHOD"] == "REQUEST"  # type: ignore[index]
    assert moved.message["Subject"].startswith("Updated invitation")
    assert int(moved_event["SEQUENCE"]) == 2  # the title and the time each bumped it
    assert moved_event.decoded("DTSTART").astimezone(UTC).hour == 11
    cancel = cancelled.calendar()
    assert cancel is not None and cancel["METHOD"] == "CANCEL"
    assert cancelled.calendar_method_param() == "CANCEL"
    [cancel_event] = cancel.walk("VEVENT")
    assert cancel_event["STATUS"] == "CANCELLED"
    assert int(cancel_event["SEQUENCE"]) == 3
    assert str(cancel_event["UID"]) == str(moved_event["UID"])
    assert len({first.message_id, moved.message_id, cancelled.message_id}) == 3


def test_a_new_place_or_new_attendees_requests_and_the_removed_get_a_cancel(
    mailing_cli: CliRun, crm: Store, relay: Smarthost,
) -> None:
    ok(mailing_cli, "sync", "profile", "--invitations", "always")
    entry_id = add_entry(mailing_cli, "Pricing review", "carol@globex.example",
                         "dave@globex.example")
    assert send_due(crm, relay) == ["sent", "sent"]
    ok(mailing_cli, "entries", "set", str(entry_id), "--location", "Room 4")
    assert sorted(send_due(crm, relay)) == ["sent", "sent"]  # both told of the new place
    ok(mailing_cli, "entries", "set", str(entry_id), "--attendees",
       "carol@globex.example,erin@initech.example,bob")
    assert sorted(send_due(crm, relay)) == ["sent", "sent", "sent"]
    mails = relay.wait_for(7)
    placed = [m for m in mails[2:4]]
    assert {m.rcpt_tos for m in placed} == {("carol@globex.example",), ("dave@globex.example",)}
    assert all(m.calendar().walk("VEVENT")[0]["LOCATION"] == "Room 4"  # type: ignore[union-attr]
               for m in placed)
    last = {m.rcpt_tos[0]: m for m in mails[4:]}
    assert set(last) == {"carol@globex.example", "erin@initech.example",
                         "dave@globex.example"}  # bob is a CRM user: his calendar shows it
    assert last["dave@globex.example"].calendar_method_param() == "CANCEL"
    for invited in ("carol@globex.example", "erin@initech.example"):
        assert last[invited].calendar_method_param() == "REQUEST"
        event = last[invited].calendar().walk("VEVENT")[0]  # type: ignore[union-attr]
        attendees = {str(a).lower() for a in event.get("ATTENDEE")}
        assert attendees == {"mailto:carol@globex.example", "mailto:erin@initech.example",
                             "mailto:bob@acme.example"}
        assert int(event["SEQUENCE"]) == 2
    assert send_due(crm, relay) == []
    ok(mailing_cli, "entries", "set", str(entry_id), "--attendees",
       "carol@globex.example,erin@initech.example,bob")
    assert send_due(crm, relay) == []  # the same attendees again: nothing to say


def test_never_sends_no_invitation(mailing_cli: CliRun, crm: Store, relay: Smarthost) -> None:
    ok(mailing_cli, "sync", "profile", "--invitations", "never")
    entry_id = add_entry(mailing_cli, "Pricing review", "carol@globex.example")
    ok(mailing_cli, "entries", "set", str(entry_id), "--start", "2026-12-08T11:00")
    ok(mailing_cli, "entries", "delete", str(entry_id))
    assert send_due(crm, relay) == []
    assert relay.messages() == []


def test_after_first_sync_sends_nothing_for_entries_from_before_the_reps_first_sync(
    mailing_cli: CliRun, crm: Store, relay: Smarthost,
) -> None:
    ok(mailing_cli, "sync", "profile", "--invitations", "after_first_sync")
    before_any_sync = add_entry(mailing_cli, "Backlog", "carol@globex.example")
    assert send_due(crm, relay) == []
    with crm.transaction() as session:  # what the first app-password login records
        alice = session.scalar(select(User).where(User.username == "alice"))
        assert alice is not None
        alice.calendar_synced_at = utcnow() + timedelta(seconds=1)
    ok(mailing_cli, "entries", "set", str(before_any_sync), "--start", "2026-12-08T11:00")
    assert send_due(crm, relay) == []  # still the backlog: its attendees were never invited
    with crm.transaction() as session:
        alice = session.scalar(select(User).where(User.username == "alice"))
        assert alice is not None
        alice.calendar_synced_at = utcnow() - timedelta(seconds=1)
    add_entry(mailing_cli, "After the sync", "dave@initech.example")
    assert send_due(crm, relay) == ["sent"]
    [mail] = relay.wait_for(1)
    assert mail.rcpt_tos == ("dave@initech.example",)
    assert "After the sync" in str(mail.message["Subject"])


def test_a_451_then_250_delivers_once(mailing_cli: CliRun, crm: Store, relay: Smarthost
                                      ) -> None:
    ok(mailing_cli, "sync", "profile", "--invitations", "always")
    add_entry(mailing_cli, "Pricing review", "carol@globex.example")
    relay.fail_next(1, "451 4.3.0 Greylisted, try again")
    assert send_due(crm, relay) == ["pending"]
    [shown] = json.loads(ok(mailing_cli, "--json", "outbound", "list"))
    assert shown["last_code"] == 451 and "Greylisted" in shown["last_reply"]
    assert send_due(crm, relay) == []  # not due yet: the backoff holds it
    assert send_due(crm, relay, utcnow() + timedelta(seconds=5)) == ["sent"]
    assert len(relay.wait_for(1)) == 1
    assert relay.data_commands == 2
    detail = json.loads(ok(mailing_cli, "--json", "outbound", "show", str(shown["id"])))
    assert [a["code"] for a in detail["attempts_made"]] == [451, 250]


def test_a_550_parks_the_mail_with_the_reason_and_retry_sends_it(
    mailing_cli: CliRun, crm: Store, relay: Smarthost,
) -> None:
    ok(mailing_cli, "sync", "profile", "--invitations", "always")
    add_entry(mailing_cli, "Pricing review", "carol@globex.example")
    relay.fail_next(1, "550 5.7.1 Relaying denied")
    assert send_due(crm, relay) == ["failed"]
    assert send_due(crm, relay, utcnow() + timedelta(hours=2)) == []  # parked: never retried
    [failed] = json.loads(ok(mailing_cli, "--json", "outbound", "list", "--status", "failed"))
    assert failed["last_code"] == 550 and "Relaying denied" in failed["last_reply"]
    assert relay.messages() == []
    out = ok(mailing_cli, "outbound", "retry", str(failed["id"]))
    assert "due now" in out
    assert send_due(crm, relay) == ["sent"]
    [mail] = relay.wait_for(1)
    assert mail.message_id == failed["message_id"]
    code, _, err = mailing_cli("outbound", "retry", str(failed["id"]))
    assert code != 0 and "not sent again" in err


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_the_sender_authenticates_over_starttls_and_tls(
    cli: CliRun, crm: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, security: str,
) -> None:
    with smarthost(tmp_path / security, security, auth=True) as host:
        for key, value in host.env(FROM).items():
            monkeypatch.setenv(key, value)
        ok(cli, "sync", "profile", "--invitations", "always")
        add_entry(cli, "Pricing review", "carol@globex.example")
        assert send_due(crm, host) == ["sent"]
        [mail] = host.wait_for(1)
        assert mail.login == USER
        assert mail.calendar() is not None


def test_a_wrong_smarthost_password_is_retried_not_parked(
    cli: CliRun, crm: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with smarthost(tmp_path / "auth", "starttls", auth=True) as host:
        for key, value in host.env(FROM).items():
            monkeypatch.setenv(key, value)
        ok(cli, "sync", "profile", "--invitations", "always")
        add_entry(cli, "Pricing review", "carol@globex.example")
        wrong = target(host)
        jobs = lease_due(crm, "t", utcnow(), limit=5, lease_seconds=60)
        outcome = send(jobs[0], Target(wrong.host, wrong.port, wrong.security, wrong.user,
                                       "not-it", wrong.ca_file, 5.0))
        assert record_attempt(crm, jobs[0], "t", outcome, utcnow(), POLICY) == "pending"
        assert outcome.code == 535
        assert host.messages() == []


@pytest.mark.parametrize("url", ["http://relay.example", "smtp://", "smtps://relay:0",
                                 "smtp://relay.example/path"])
def test_a_smarthost_url_of_the_wrong_form_is_refused_naming_the_option(url: str) -> None:
    from gateway.config import ConfigError, load

    with pytest.raises(ConfigError, match=r"outbound\.smtp_url"):
        load(environ={"CRM_GATEWAY_OUTBOUND_SMTP_URL": url}, create_data_dir=False)


def test_a_smarthost_without_a_from_address_is_one_line_and_exit_2(
    cli: CliRun, crm: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_GATEWAY_OUTBOUND_SMTP_URL", "smtp://127.0.0.1:2526")
    code, _, err = cli("outbound", "list")
    assert code == 2
    assert err.strip().count("\n") == 0 and "outbound.from_address" in err


def test_the_smarthost_password_comes_from_a_file(tmp_path: Path) -> None:
    from delivery.outbound import smarthost_from
    from gateway.config import load

    secret = tmp_path / "relay-password"
    secret.write_text("from-the-file\n")
    config = load(environ={
        "CRM_GATEWAY_OUTBOUND_SMTP_URL": "smtp+starttls://gw%40acme:in-url@relay.example",
        "CRM_GATEWAY_OUTBOUND_SMTP_PASSWORD_FILE": str(secret),
        "CRM_GATEWAY_OUTBOUND_FROM_ADDRESS": FROM}, create_data_dir=False)
    host = smarthost_from(config)
    assert (host.user, host.password, host.port, host.security) == (
        "gw@acme", "from-the-file", 587, "starttls")
    assert "from-the-file" not in repr(host)
