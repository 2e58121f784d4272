"""``/api/v1/webhooks``: endpoints added through the API receive signed events.

A real ``serve --only http`` answers the API, a second process (``serve --only webhooks``)
delivers to a receiver on loopback, which verifies each signature with ``standardwebhooks``.
SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from pathlib import Path

from api_peers import Api, problem
from caldav_peer import Gateway, new_rep
from standardwebhooks import Webhook
from webhook_peers import deliverers, receiver


def test_an_endpoint_added_through_the_api_gets_entry_created_with_origin_api(
    api_gateway: Gateway, api: Api, reader: Api, module_database_url: str, tmp_path: Path
) -> None:
    rep = new_rep(api_gateway.store)
    with receiver() as hooks, deliverers(module_database_url, tmp_path):
        added = api.post("/webhooks", {"url": hooks.url, "events": ["entry.*"]})
        assert added.status_code == 201, added.text
        endpoint = added.json()
        assert endpoint["secret"].startswith("whsec_")
        assert added.headers["Location"] == f"/api/v1/webhooks/{endpoint['id']}"
        # The secret is in that answer only.
        shown = api.get(f"/webhooks/{endpoint['id']}").json()
        assert "secret" not in shown and shown["events"] == ["entry.*"]
        assert endpoint["id"] in [item["id"] for item in api.get("/webhooks").json()["items"]]

        made = api.post("/entries", {
            "type": "Meeting", "title": "Call Initech", "organizer": rep.username,
            "start": "2026-12-07T09:00:00Z", "end": "2026-12-07T10:00:00Z"})
        assert made.status_code == 201, made.text
        [request] = hooks.wait_for(1)
        Webhook(endpoint["secret"]).verify(request.body, request.headers)
        data = request.payload["data"]
        assert request.payload["type"] == "entry.created"
        assert (data["id"], data["title"], data["origin"]) == (
            made.json()["id"], "Call Initech", "api")
        # The API's ETag names the entry's revision; the payload's etag is the calendar's.
        assert made.headers["ETag"] == f'"{data["id"]}-{data["revision"]}"'

        # The receiver has the request before the deliverer records the answer: wait for it.
        deadline = time.monotonic() + 30
        while True:
            page = api.get("/webhooks/deliveries",
                           params={"endpoint_id": endpoint["id"]}).json()
            [delivery] = page["items"]
            if delivery["status"] != "pending" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (delivery["status"], delivery["event_id"]) == ("delivered", request.webhook_id)
        detail = api.get(f"/webhooks/deliveries/{delivery['id']}").json()
        assert detail["payload"]["data"]["id"] == data["id"]
        assert [attempt["status_code"] for attempt in detail["attempts_made"]] == [204]

        again = api.post(f"/webhooks/deliveries/{delivery['id']}/replay")
        assert again.status_code == 201, again.text
        replayed = hooks.wait_for(2)[1]
        assert replayed.webhook_id == request.webhook_id  # receivers drop it as a duplicate

    # A read token sees endpoints but may not add, replay or remove one.
    assert reader.get("/webhooks").status_code == 200
    problem(reader.post("/webhooks", {"url": hooks.url, "events": ["*"]}), 403, "forbidden")
    assert api.delete(f"/webhooks/{endpoint['id']}").status_code == 204
    problem(api.get(f"/webhooks/{endpoint['id']}"), 404, "not-found")


def test_webhook_mistakes_are_422_naming_the_field_and_add_nothing(api: Api) -> None:
    before = api.get("/webhooks").json()["items"]
    unknown = problem(api.post("/webhooks", {"url": "http://127.0.0.1:9/", "events": ["entry.x"]}),
                      422, "invalid")
    assert "entry.x" in unknown["detail"]
    missing = problem(api.post("/webhooks", {"url": "http://127.0.0.1:9/"}), 422, "validation")
    assert any(error["loc"][-1] == "events" for error in missing["errors"])
    problem(api.post("/webhooks", {"url": "ftp://example.com/", "events": ["*"]}), 422, "invalid")
    assert api.get("/webhooks").json()["items"] == before
