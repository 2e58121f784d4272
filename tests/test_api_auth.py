"""Who may use the API: bearer tokens with scopes, revocation, and the wall between API
tokens and CalDAV app passwords; idempotent POSTs; the ``api-tokens`` commands."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from api_peers import Api, problem, unique
from caldav_peer import Gateway, new_rep
from login_peers import propfind, run_cli


def test_no_token_is_401_with_a_challenge(api: Api) -> None:
    answer = requests.get(api.base + "/users", timeout=30)
    problem(answer, 401, "unauthenticated")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_who_asks_is_checked_before_what_they_send(api: Api, reader: Api) -> None:
    bad = {"username": "Not Valid"}
    problem(requests.post(api.base + "/users", json=bad, timeout=30), 401, "unauthenticated")
    problem(reader.post("/users", bad), 403, "forbidden")
    problem(api.post("/users", bad), 422, "validation")


def test_a_wrong_token_and_an_app_password_are_401(api_gateway: Gateway, api: Api) -> None:
    problem(api.get("/users", token="cgw_aaaaaaaaaaaa_" + "b" * 43), 401, "unauthenticated")
    rep = new_rep(api_gateway.store)
    problem(api.get("/users", token=rep.password), 401, "unauthenticated")
    basic = requests.get(api.base + "/users", auth=rep.auth, timeout=30)
    problem(basic, 401, "unauthenticated")


def test_an_api_token_never_opens_caldav(api_gateway: Gateway, api: Api) -> None:
    rep = new_rep(api_gateway.store)
    calendar = f"{api_gateway.url}{rep.username}/meeting/"
    assert propfind(calendar, rep.auth).status_code == 207
    assert propfind(calendar, (rep.username, api.token)).status_code == 401
    bearer = requests.request("PROPFIND", calendar, timeout=30, data=b"",
                              headers={"Authorization": f"Bearer {api.token}", "Depth": "0"})
    assert bearer.status_code == 401


def test_a_read_token_reads_but_may_not_write(api: Api, reader: Api) -> None:
    assert reader.get("/users").status_code == 200
    name = unique("reader")
    refused = reader.post("/users", {"username": name, "email": f"{name}@acme.example"})
    problem(refused, 403, "forbidden")
    problem(api.get(f"/users/{name}"), 404, "not-found")  # nothing was written
    problem(reader.patch("/diary-types/1", {"color": "#000000"}), 403, "forbidden")
    problem(reader.delete("/entries/1"), 403, "forbidden")


def test_a_revoked_token_is_refused_on_its_next_request(
        api_gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    name = unique("ci")
    url = api_gateway.store.url
    created = run_cli(url, tmp_path, monkeypatch, capsys, "api-tokens", "create", "--name",
                      name, "--scope", "read")
    assert isinstance(created, dict) and created["scope"] == "read"
    token = Api(api_gateway.url + "api/v1", created["token"])
    assert token.get("/users").status_code == 200
    listed = run_cli(url, tmp_path, monkeypatch, capsys, "api-tokens", "list")
    assert isinstance(listed, list)
    [row] = [row for row in listed if row["name"] == name]
    assert row["last_used"] is not None and row["revoked"] is None
    assert "token" not in row
    run_cli(url, tmp_path, monkeypatch, capsys, "api-tokens", "revoke", name)
    problem(token.get("/users"), 401, "unauthenticated")


def test_api_tokens_cli_mistakes_are_one_line_and_exit_2(
        cli: object, database_url: str) -> None:
    assert callable(cli)
    code, out, err = cli("api-tokens", "revoke", "nobody")
    assert code == 2 and err.strip() == "crm-gateway: no API token 'nobody'"
    code, out, err = cli("api-tokens", "create", "--name", "ci")
    assert code == 0 and "cgw_" in out and "shown only this once" in out
    code, out, err = cli("api-tokens", "create", "--name", "ci")
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1


def test_an_idempotent_retry_returns_the_first_answer_and_creates_nothing(api: Api) -> None:
    name = unique("idem")
    body = {"name": f"Initech {name}", "domains": [f"{name}.example"]}
    key = {"Idempotency-Key": name}
    first = api.post("/accounts", body, headers=key)
    assert first.status_code == 201
    again = api.post("/accounts", body, headers=key)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    # Without the key the same body is a second attempt: the name is taken.
    problem(api.post("/accounts", body), 409, "conflict")
    changed = api.post("/accounts", {**body, "name": "Other"}, headers=key)
    problem(changed, 422, "idempotency-key-reused")


def test_concurrent_retries_with_one_key_create_one_thing(api: Api) -> None:
    name = unique("race")
    body = {"username": name, "email": f"{name}@acme.example"}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(
            lambda _: api.post("/users", body, headers={"Idempotency-Key": name}), range(6)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
