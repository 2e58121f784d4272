"""The command line as a user drives it: output, JSON, one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text

from gateway.db import Store
from gateway.models import AppPassword, Base, DiaryEntry, PublishedItem

Run = Callable[..., tuple[int, str, str]]




def counts(store: Store) -> dict[str, int]:
    with store.reading() as session:
        return {name: session.scalar(text(f"SELECT count(*) FROM {name}")) or 0
                for name in Base.metadata.tables}


def seed_basics(cli: Run) -> None:
    for argv in (
        ("users", "add", "alice", "--email", "alice@acme.example", "--name", "Alice"),
        ("users", "set", "alice", "--diary-sync", "on"),
        ("diary-types", "add", "Meeting", "--color", "#112233"),
        ("accounts", "add", "Globex", "--domain", "globex.example"),
        ("contacts", "add", "--email", "hank@globex.example", "--name", "Hank"),
    ):
        code, _, err = cli(*argv)
        assert code == 0, err


def test_a_session_at_the_command_line(cli: Run, store: Store) -> None:
    seed_basics(cli)
    code, out, _ = cli("entries", "add", "--type", "Meeting", "--title", "Pricing",
                       "--start", "2026-12-07T10:00", "--end", "2026-12-07T11:00",
                       "--tz", "Europe/Berlin", "--organizer", "alice",
                       "--attendee", "hank@globex.example")
    assert code == 0 and out.startswith("created entry ")
    code, out, _ = cli("--json", "entries", "list", "--user", "alice")
    entries = json.loads(out)
    assert [(e["title"], e["start"], e["tzid"]) for e in entries] == [
        ("Pricing", "2026-12-07T09:00:00Z", "Europe/Berlin")]
    assert entries[0]["participants"] == [
        {"email": "hank@globex.example", "partstat": "NEEDS-ACTION", "kind": "contact"}]
    code, out, _ = cli("entries", "set", str(entries[0]["id"]), "--title", "Pricing v2")
    assert code == 0
    code, out, _ = cli("--json", "users", "app-password", "alice", "--label", "Phone")
    issued = json.loads(out)
    assert issued["label"] == "Phone" and len(issued["password"]) == 19
    code, out, _ = cli("users", "show", "alice")
    assert "app password 1: Phone" in out and issued["password"] not in out
    code, out, _ = cli("entries", "delete", str(entries[0]["id"]))
    assert code == 0
    assert json.loads(cli("--json", "entries", "list")[1]) == []


def test_all_day_entries_take_inclusive_dates(cli: Run) -> None:
    seed_basics(cli)
    code, out, err = cli("--json", "entries", "add", "--type", "Meeting", "--title", "Fair",
                         "--start", "2026-12-07", "--end", "2026-12-08", "--all-day",
                         "--organizer", "alice")
    assert code == 0, err
    entry = json.loads(out)
    assert (entry["start"], entry["end"], entry["all_day"]) == (
        "2026-12-07T00:00:00Z", "2026-12-09T00:00:00Z", True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("entries", "add", "--type", "Nope", "--title", "T", "--start", "2026-12-07T10:00",
          "--end", "2026-12-07T11:00", "--organizer", "alice"), "no diary type named 'Nope'"),
        (("users", "add", "bob", "--email", "bob-at-example"), "not a valid email address"),
        (("users", "add", "alice", "--email", "other@acme.example"), "already exists"),
        (("users", "set", "alice", "--email-sync", "off"), "diary sync needs email sync"),
        (("users", "add", "bob", "--email", "bob@acme.example", "--name", "Bob"), None),
        (("entries", "add", "--type", "Meeting", "--title", "T", "--start", "tomorrow",
          "--end", "2026-12-07T11:00", "--organizer", "alice"), "not an ISO date"),
        (("diary-types", "add", "Call", "--color", "red"), "is not a colour"),
        (("users", "set", "alice", "--diary-sync", "maybe"), "expected on or off"),
        (("entries", "set", "999", "--title", "x"), "no diary entry 999"),
        (("contacts", "add", "--email", "x@globex.example", "--account", "Nope"),
         "no account named 'Nope'"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_mistakes_print_one_line_exit_2_and_write_nothing(
    cli: Run, store: Store, argv: tuple[str, ...], message: str | None
) -> None:
    seed_basics(cli)
    if message is None:  # a control: the same shape of command succeeds
        assert cli(*argv)[0] == 0
        return
    before = counts(store)
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err, err
    assert counts(store) == before


def test_diary_sync_without_email_sync_is_refused(cli: Run, store: Store) -> None:
    seed_basics(cli)
    cli("users", "add", "bob", "--email", "bob@acme.example")
    before = counts(store)
    code, _, err = cli("users", "set", "bob", "--email-sync", "off", "--diary-sync", "on")
    assert code == 2 and "diary sync needs email sync" in err
    assert counts(store) == before


def crm_state(store: Store) -> dict[str, object]:
    with store.reading() as session:
        entries = session.execute(select(
            DiaryEntry.uid, DiaryEntry.title, DiaryEntry.start_utc, DiaryEntry.ical)
            .order_by(DiaryEntry.uid)).all()
        published = session.execute(select(
            PublishedItem.uid, PublishedItem.etag, PublishedItem.revision)
            .order_by(PublishedItem.calendar_id, PublishedItem.uid)).all()
        live_demo_passwords = session.scalar(text(
            "SELECT count(*) FROM app_passwords WHERE label = 'demo' AND revoked_at IS NULL"))
    counted = counts(store)
    counted.pop("app_passwords")
    return {"counts": counted, "entries": entries, "published": published,
            "live_demo_passwords": live_demo_passwords}


def test_demo_twice_gives_the_same_crm(cli: Run, store: Store) -> None:
    code, out, err = cli("--json", "demo")
    assert code == 0, err
    first_logins = json.loads(out)["users"]
    first = crm_state(store)
    code, out, _ = cli("--json", "demo")
    second_logins = json.loads(out)["users"]
    assert crm_state(store) == first
    assert [u["username"] for u in first_logins] == ["alice", "bob", "carol"]
    # Each run hands out a fresh password and retires the previous demo one.
    assert first_logins[0]["app_password"] != second_logins[0]["app_password"]
    assert first["live_demo_passwords"] == 3
    counted = first["counts"]
    assert isinstance(counted, dict)
    assert counted["users"] == 3 and counted["diary_types"] == 4
    assert counted["accounts"] == 2 and counted["contacts"] == 5
    assert 45 <= counted["diary_entries"] <= 55
    with store.reading() as session:
        recurring = session.scalars(select(DiaryEntry.rrule).where(DiaryEntry.rrule.is_not(None)))
        assert list(recurring) == ["FREQ=WEEKLY;BYDAY=MO"]
        assert session.scalar(select(AppPassword.id).limit(1)) is not None


def test_console_script_runs_with_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:5999"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    script = Path(sys.executable).parent / "crm-gateway"
    created = subprocess.run([str(script), "--config", str(config), "db", "upgrade"],
                             capture_output=True, text=True, env=env, timeout=60, check=False)
    assert created.returncode == 0, created.stderr
    done = subprocess.run([str(script), "--config", str(config), "--json", "users", "list"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert (tmp_path / "var" / "crm-gateway.sqlite3").exists()
    bad = subprocess.run([str(script), "--config", str(tmp_path / "missing.toml"), "users",
                          "list"], capture_output=True, text=True, env=env, timeout=60,
                         check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "missing.toml does not exist" in bad.stderr


def test_the_global_profile_says_which_settings_reps_may_change(cli: Run, store: Store) -> None:
    code, out, _ = cli("sync", "profile", "--rep-choices", "records,sync-invitees")
    assert code == 0 and "reps may change: records, sync_invitees" in out
    code, out, _ = cli("--json", "sync", "profile")
    assert json.loads(out)["rep_choices"] == ["records", "sync_invitees"]
    for wrong in (("sync", "profile", "--rep-choices", "paused"),
                  ("sync", "profile", "alice", "--rep-choices", "records")):
        code, _, err = cli(*wrong)
        assert code == 2 and err.count("\n") == 1, err
    code, out, _ = cli("sync", "profile", "--rep-choices", "none")
    assert code == 0 and "reps may change: nothing" in out
