"""What a newcomer does: seed the demo, add the printed URL and password to a client."""

from __future__ import annotations

import json
from pathlib import Path

import caldav
import pytest
from caldav_peer import start_gateway, stop_gateway

from gateway.cli import main


def test_the_printed_demo_login_shows_the_diary_in_a_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    monkeypatch.setenv("CRM_GATEWAY_DATABASE_URL", url)
    monkeypatch.setenv("CRM_GATEWAY_PATHS_DATA_DIR", str(tmp_path / "var"))
    assert main(["--json", "demo"]) == 0
    alice = json.loads(capsys.readouterr().out)["users"][0]
    gateway = start_gateway(url, tmp_path)
    try:
        printed = alice["calendar_url"]
        assert printed.endswith("/alice/")
        # The client is given the running server's address and the printed login.
        server_url = gateway.url + printed.split("/", 3)[3]
        with caldav.DAVClient(url=server_url, username=alice["email"],
                              password=alice["app_password"], enable_rfc6764=False,
                              require_tls=False) as client:
            calendars = {c.get_display_name(): c for c in client.principal().calendars()}
            assert set(calendars) == {"Meeting", "Call", "Demo", "Invitations"}
            events = [o for c in calendars.values() for o in c.events()]
            summaries = {str(o.icalendar_component["summary"]) for o in events}
            assert len(events) >= 15
            assert "Weekly sales pipeline" in summaries
    finally:
        stop_gateway(gateway)
