"""A calendar client's changes reach the CRM application as signed webhooks.

A real ``caldav`` client PUTs and DELETEs through ``serve --only http``; a second process,
``serve --only webhooks``, delivers to a receiver on loopback, which verifies each signature
with the ``standardwebhooks`` package. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import caldav
import pytest
import requests
from caldav_peer import Gateway, Rep, event, new_rep
from peers import TEST_SECRET_KEY
from standardwebhooks import Webhook
from webhook_peers import deliverers, receiver

from gateway.cli import main


@pytest.fixture
def client(gateway: Gateway) -> Iterator[tuple[caldav.DAVClient, Rep]]:
    rep = new_rep(gateway.store)
    client = caldav.DAVClient(url=gateway.url, username=rep.username, password=rep.password,
                              enable_rfc6764=False, require_tls=False)
    yield client, rep
    client.close()


def test_a_client_put_fires_entry_created_with_origin_calendar(
    gateway: Gateway, client: tuple[caldav.DAVClient, Rep], module_database_url: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    dav, rep = client
    username = rep.username
    monkeypatch.setenv("CRM_GATEWAY_DATABASE_URL", module_database_url)
    monkeypatch.setenv("CRM_GATEWAY_PATHS_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("CRM_GATEWAY_SECURITY_SECRET_KEY", TEST_SECRET_KEY)
    with receiver() as hooks, deliverers(module_database_url, tmp_path):
        capsys.readouterr()
        assert main(["--json", "webhooks", "add", hooks.url, "--events", "entry.*"]) == 0
        secret = json.loads(capsys.readouterr().out)["secret"]

        meeting = next(c for c in dav.principal().calendars()
                       if str(c.url).rstrip("/").endswith("/meeting"))
        saved = meeting.save_event(event(f"hook-{username}@test", "Call Globex"))
        [created] = hooks.wait_for(1)
        etag_seen = requests.get(str(saved.url), auth=rep.auth, timeout=30).headers["ETag"]
        saved.data = event(f"hook-{username}@test", "Call Globex, rescheduled",
                           start="20261208T090000Z", end="20261208T100000Z")
        saved.save()
        updated = hooks.wait_for(2)[1]
        saved.delete()
        deleted = hooks.wait_for(3)[2]

    for request in (created, updated, deleted):
        # What a receiver does: verify, then trust. A forged body would raise here.
        Webhook(secret).verify(request.body, request.headers)
    data = created.payload["data"]
    assert created.payload["type"] == "entry.created"
    assert (data["uid"], data["title"], data["owner"], data["origin"], data["type"]) == (
        f"hook-{username}@test", "Call Globex", username, "calendar", "Meeting")
    assert data["etag"] == etag_seen  # the ETag the calendar client holds for it
    assert (data["start"], data["end"]) == ("2026-12-07T09:00:00Z", "2026-12-07T10:00:00Z")
    changed = updated.payload["data"]
    assert updated.payload["type"] == "entry.updated"
    assert (changed["id"], changed["title"], changed["start"], changed["origin"]) == (
        data["id"], "Call Globex, rescheduled", "2026-12-08T09:00:00Z", "calendar")
    assert changed["etag"] != data["etag"] and changed["revision"] > data["revision"]
    assert deleted.payload["type"] == "entry.deleted"
    assert deleted.payload["data"]["id"] == data["id"]
    assert deleted.payload["data"]["origin"] == "calendar"
    assert len({created.webhook_id, updated.webhook_id, deleted.webhook_id}) == 3
