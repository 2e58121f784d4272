"""Availability, free/busy URLs and conflicts at the command line, on SQLite and PostgreSQL:
working hours, the availability query, warn / refuse / force on `entries add`, and mistakes
as one line with exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import func, select

from gateway.db import Store
from gateway.models import DiaryEntry

Run = Callable[..., tuple[int, str, str]]


def ok(cli: Run, *argv: str) -> str:
    code, out, err = cli(*argv)
    assert code == 0, err
    return out


def seed(cli: Run) -> None:
    for name, hours in (("alice", "Mon-Fri 09:00-17:00 Europe/Berlin"),
                        ("carol", "Mon-Fri 09:00-17:00 America/New_York")):
        ok(cli, "users", "add", name, "--email", f"{name}@acme.example")
        ok(cli, "users", "set", name, "--diary-sync", "on", "--working-hours", hours)
    ok(cli, "diary-types", "add", "Meeting")


def add(cli: Run, title: str, start: str, end: str, *extra: str) -> tuple[int, str, str]:
    return cli("--json", "entries", "add", "--type", "Meeting", "--title", title,
               "--organizer", "alice", "--start", start, "--end", end, *extra)


def test_availability_and_working_hours_at_the_command_line(cli: Run) -> None:
    seed(cli)
    shown = json.loads(ok(cli, "--json", "users", "show", "carol"))
    assert shown["working_hours"] == "Mon-Fri 09:00-17:00 America/New_York"
    assert add(cli, "Busy", "2026-12-07T14:00Z", "2026-12-07T15:00Z")[0] == 0
    out = ok(cli, "availability", "alice", "carol", "--from", "2026-12-07",
             "--to", "2026-12-08", "--duration", "30m")
    assert out.splitlines() == ["2026-12-07T15:00:00Z  2026-12-07T16:00:00Z  (60 min)"]
    out = ok(cli, "availability", "alice", "carol", "--from", "2026-12-07",
             "--to", "2026-12-08", "--duration", "2h")
    assert out.strip() == "no common free window of 120 min"
    ok(cli, "users", "set", "carol", "--working-hours", "default")
    assert json.loads(ok(cli, "--json", "users", "show", "carol"))["working_hours"] is None


def test_refuse_and_force_at_the_command_line(cli: Run, store: Store) -> None:
    seed(cli)
    ok(cli, "sync", "profile", "alice", "--conflicts", "refuse")
    assert add(cli, "Pricing", "2026-12-07T09:00Z", "2026-12-07T10:00Z")[0] == 0
    code, out, err = add(cli, "Overlap", "2026-12-07T09:30Z", "2026-12-07T10:30Z")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "'Pricing'" in err and "refuse" in err
    with store.reading() as session:
        assert session.scalar(select(func.count()).select_from(DiaryEntry)) == 1
    code, out, err = add(cli, "Overlap", "2026-12-07T09:30Z", "2026-12-07T10:30Z", "--force")
    assert code == 0, err
    [clash] = json.loads(out)["conflicts"]
    assert (clash["title"], clash["start"], clash["user"]) == (
        "Pricing", "2026-12-07T09:00:00Z", "alice")
    listed = ok(cli, "conflicts", "--user", "alice")
    assert "overlaps alice's 'Pricing'" in listed
    ok(cli, "sync", "profile", "alice", "--conflicts", "warn")
    code, out, _ = cli("entries", "add", "--type", "Meeting", "--title", "Third",
                       "--organizer", "alice", "--start", "2026-12-07T09:45Z",
                       "--end", "2026-12-07T10:15Z")
    assert code == 0 and "overlaps alice's 'Pricing'" in out and "'Overlap'" in out


def test_mistakes_are_one_line_and_exit_2(cli: Run) -> None:
    seed(cli)
    for argv in (("users", "set", "alice", "--working-hours", "weekdays"),
                 ("users", "set", "alice", "--working-hours", "Mon-Fri 09:00-17:00 Nowhere/X"),
                 ("availability", "alice", "--from", "2026-12-07", "--to", "2026-12-06"),
                 ("availability", "alice", "--from", "2026-12-07", "--to", "2027-06-01"),
                 ("availability", "alice", "--from", "2026-12-07", "--to", "2026-12-08",
                  "--duration", "soon"),
                 ("sync", "profile", "alice", "--conflicts", "maybe"),
                 ("freebusy", "revoke", "alice")):
        code, _out, err = cli(*argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, (argv, err)


def test_freebusy_urls_at_the_command_line(cli: Run) -> None:
    seed(cli)
    first = json.loads(ok(cli, "--json", "freebusy", "create", "alice"))
    assert "/freebusy/t/" in first["url"] and first["url"].endswith(".ifb")
    second = json.loads(ok(cli, "--json", "freebusy", "create", "alice"))
    assert second["url"] != first["url"]
    assert ok(cli, "freebusy", "revoke", "alice").strip() == \
        "revoked the free/busy URL of alice"
