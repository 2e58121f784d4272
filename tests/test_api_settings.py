"""Sync profiles (global and per user, with what is inherited), reps' mailboxes with the
connectivity test, and the health resource, over the API."""

from __future__ import annotations

from api_peers import Api, problem
from caldav_peer import Gateway, free_port, new_rep
from login_peers import propfind

from gateway.models import InboundMessage


def test_a_users_profile_inherits_the_global_default_until_it_overrides(
        api_gateway: Gateway, api: Api) -> None:
    rep = new_rep(api_gateway.store)
    path = f"/users/{rep.username}/sync-profile"
    mine = api.get(path).json()
    assert mine["user"] == rep.username
    assert mine["inherited"] == ["records", "direction", "sync_invitees", "paused",
                                 "invitations", "conflicts"]
    changed = api.patch(path, {"paused": True}).json()
    assert changed["paused"] is True and "paused" not in changed["inherited"]
    # Paused: the rep's calendar refuses writes but still reads.
    assert propfind(f"{api_gateway.url}{rep.username}/meeting/", rep.auth).status_code == 207
    default = api.get("/sync-profile").json()
    assert default["user"] is None and default["inherited"] == []
    flipped = "related" if default["records"] == "all" else "all"
    try:
        assert api.patch("/sync-profile", {"records": flipped}).json()["records"] == flipped
        assert api.get(path).json()["records"] == flipped  # inherited
    finally:
        api.patch("/sync-profile", {"records": default["records"]})
    problem(api.patch(path, {"direction": "sideways"}), 422, "validation")
    problem(api.get("/users/nobody-here/sync-profile"), 404, "not-found")


def test_the_global_profile_says_which_settings_reps_may_change(
        api_gateway: Gateway, api: Api) -> None:
    rep = new_rep(api_gateway.store)
    assert api.get("/sync-profile").json()["rep_choices"] == []
    try:
        changed = api.patch("/sync-profile", {"rep_choices": ["sync_invitees", "records"]})
        assert changed.json()["rep_choices"] == ["records", "sync_invitees"]
        assert api.get(f"/users/{rep.username}/sync-profile").json()["rep_choices"] is None
        assert "global default" in problem(api.patch(
            f"/users/{rep.username}/sync-profile", {"rep_choices": ["records"]}), 422,
            "invalid")["detail"]
        problem(api.patch("/sync-profile", {"rep_choices": ["paused"]}), 422, "validation")
    finally:
        api.patch("/sync-profile", {"rep_choices": []})
    assert api.get("/sync-profile").json()["rep_choices"] == []


def test_a_mailbox_is_set_from_a_preset_tested_paused_resumed_removed(
        api_gateway: Gateway, api: Api) -> None:
    rep = new_rep(api_gateway.store)
    path = f"/users/{rep.username}/mail-account"
    problem(api.get(path), 404, "not-found")
    created = api.call("PUT", path, json={"provider": "gmail", "login": rep.email,
                                          "password": "s3cret-pass"})
    assert created.status_code == 201, created.text
    account = created.json()
    assert (account["host"], account["port"], account["tls"]) == ("imap.gmail.com", 993, "ssl")
    assert "s3cret-pass" not in created.text and "password" not in account
    closed = free_port()  # nothing listens here: the test names the step that failed
    moved = api.call("PUT", path, json={"host": "127.0.0.1", "port": closed, "tls": "none",
                                        "login": rep.email, "password": "s3cret-pass"})
    assert moved.status_code == 200 and moved.json()["port"] == closed
    tested = api.post(f"{path}/test")
    assert tested.status_code == 200, tested.text
    result = tested.json()
    assert result["ok"] is False and result["paused"] is False
    failed = [step for step in result["steps"] if step["status"] == "failed"]
    assert failed and failed[0]["detail"]
    assert result["steps"][0]["status"] == "ok"  # the name resolved; the connection did not
    assert api.post(f"{path}/pause").json()["state"] == "paused"
    assert api.post(f"{path}/resume").json()["state"] == "active"
    problem(api.call("PUT", path, json={"host": "-bad host-", "login": rep.email,
                                        "password": "x"}), 422, "invalid")
    problem(api.call("PUT", path, json={"login": rep.email}), 422, "validation")
    assert api.delete(path).status_code == 204
    problem(api.get(path), 404, "not-found")
    problem(api.post(f"{path}/test"), 404, "not-found")


def test_health_says_what_healthz_says_plus_queue_and_poller(api_gateway: Gateway,
                                                             reader: Api) -> None:
    health = reader.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert set(body["inbound_queue"]) == {"queued", "failed"}
    assert body["poller"]["accounts"] >= 0
    assert set(body["webhooks"]) == {"pending", "failed"}
    assert set(body["linked"]) == {"accounts", "failing", "lag_seconds"}
    assert set(body["outbound_mail"]) == {"pending", "failed"}
    failed = body["inbound_queue"]["failed"]
    with api_gateway.store.transaction() as session:
        session.add(InboundMessage(mail_from="x@crm.example", rcpt_tos=[], raw=b"x", size=1,
                                   status="failed", last_error="no such user"))
    body = reader.get("/health").json()
    assert body["inbound_queue"]["failed"] == failed + 1
    assert f"inbound mail: {failed + 1} failed (retry it in the console)" in body["warnings"]


def test_invitations_and_the_notification_switch_over_the_api(
        api_gateway: Gateway, api: Api) -> None:
    rep = new_rep(api_gateway.store)
    path = f"/users/{rep.username}/sync-profile"
    assert api.get(path).json()["invitations"] == "never"
    changed = api.patch(path, {"invitations": "after_first_sync"}).json()
    assert changed["invitations"] == "after_first_sync"
    assert "invitations" not in changed["inherited"]
    problem(api.patch(path, {"invitations": "sometimes"}), 422, "validation")
    assert api.get(path).json()["invitations"] == "after_first_sync"
    user = f"/users/{rep.username}"
    assert api.get(user).json()["notify_client_adds"] is True
    assert api.patch(user, {"notify_client_adds": False}).json()["notify_client_adds"] is False
    assert api.get(user).json()["notify_client_adds"] is False
