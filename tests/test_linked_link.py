"""Linking a rep's own CalDAV account: discovery, the connectivity test, show, unlink."""

from __future__ import annotations

import pytest
from linked_world import World


def test_link_discovers_the_account_and_makes_the_missing_target(linked: World) -> None:
    code, out, err = linked.link()
    assert code == 0, (out, err)
    for step in ("resolve", "connect", "tls", "auth", "discovery", "calendar list"):
        assert f"  {step}" in out
    assert "all steps ok" in out
    assert f"calendar home {linked.server.calendar_home}" in out
    assert "made the calendar 'CRM'" in out
    assert linked.remote("crm") == {}  # it exists now, empty
    code, out, _ = linked.run("calendars", "show", linked.username)
    assert code == 0
    assert "target CRM: 0 pushed" in out
    assert "source Personal: 0 pushed, 0 fetched" in out
    code, out, _ = linked.run("calendars", "list-remote", linked.username)
    assert code == 0
    assert "Personal" in out and "(source)" in out and "(target)" in out


def test_link_refuses_a_source_as_target_and_an_unknown_source(linked: World) -> None:
    code, _, err = linked.link("--target", "personal")
    assert code == 2
    assert "is the target" in err  # a calendar is either pushed to or fetched from
    code, _out, err = linked.link("--target", "Personal", "--source", "nope")
    assert code == 2 and "no calendar 'nope' on the account" in err
    assert linked.run("calendars", "show", linked.username)[1].startswith(
        f"{linked.username} has no linked")


def test_a_wrong_url_fails_at_connect_and_stores_nothing(linked: World) -> None:
    port = linked.server.port
    linked.server.stop()
    code, _, err = linked.link()
    assert code == 1
    assert "failed at step connect" in err and f"127.0.0.1:{port}" in err
    linked.server.start()
    code, _out, err = linked.run("calendars", "link", linked.username, "--url",
                               "http://no-such-host.invalid/dav/", "--login", "x",
                               "--password-env", "LINKED_TEST_PASSWORD")
    assert code == 1 and "failed at step resolve" in err
    assert "has no linked calendar account" in linked.run("calendars", "show", linked.username)[1]


def test_a_wrong_password_fails_at_auth(linked: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKED_TEST_PASSWORD", "wrong")
    code, _out, err = linked.link()
    if not linked.server.checks_passwords:
        # Xandikos has no authentication of its own (a reverse proxy does it): any password
        # passes the auth step, and the link is made.
        assert code == 0, err
        assert "has no linked calendar account" not in linked.run(
            "calendars", "show", linked.username)[1]
        return
    assert code == 1
    assert "failed at step auth" in err and "refused the login" in err
    assert "has no linked calendar account" in linked.run("calendars", "show", linked.username)[1]


def test_cli_mistakes_are_one_line_and_exit_2(linked: World) -> None:
    code, _, err = linked.run("calendars", "sync", linked.username)
    assert code == 2 and err.count("\n") == 1 and "--now" in err
    code, _, err = linked.run("calendars", "sync", linked.username, "--now")
    assert code == 2 and "no linked calendar account" in err
    code, _, err = linked.run("calendars", "link", linked.username, "--login", "x",
                             "--password-env", "LINKED_TEST_PASSWORD")
    assert code == 2 and "a URL is required" in err
    code, _, err = linked.run("calendars", "unlink", linked.username, "7")
    assert code == 2 and err.count("\n") == 1
    code, _, err = linked.run("calendars", "link", "nobody", "--url", linked.server.url,
                             "--login", "x", "--password-env", "LINKED_TEST_PASSWORD")
    assert code == 2 and "nobody" in err


def test_unlink_leaves_what_was_pushed_unless_asked(linked: World) -> None:
    assert linked.link()[0] == 0
    linked.entry("Kick-off")
    linked.sync()
    assert linked.remote_titles("crm") == ["Kick-off"]
    code, out, _ = linked.run("calendars", "unlink", linked.username, "1")
    assert code == 0 and "unlinked account" in out
    assert linked.remote_titles("crm") == ["Kick-off"]
    assert linked.link("--target", "CRM")[0] == 0
    linked.entry("Review", hours=2)
    linked.sync()
    assert linked.remote_titles("crm") == ["Kick-off", "Review"]  # adopted, not doubled
    code, out, _ = linked.run("calendars", "unlink", linked.username, "--remove-pushed")
    assert code == 0 and "removed 2 events" in out
    assert linked.remote_titles("crm") == []
