"""Users, app passwords, BCC addresses, diary types, accounts and contacts over the API."""

from __future__ import annotations

from api_peers import Api, problem, unique
from caldav_peer import Gateway
from login_peers import propfind


def new_user(api: Api, **extra: object) -> dict[str, object]:
    name = unique("user")
    answer = api.post("/users", {"username": name, "email": f"{name}@acme.example", **extra})
    assert answer.status_code == 201, answer.text
    assert answer.headers["Location"] == f"/api/v1/users/{name}"
    created: dict[str, object] = answer.json()
    return created


def test_a_user_is_created_read_and_changed(api: Api) -> None:
    user = new_user(api, name="Ann Lee")
    assert user["email_sync"] is True and user["diary_sync"] is False
    got = api.get(f"/users/{user['username']}").json()
    assert got == user
    changed = api.patch(f"/users/{user['username']}", {"diary_sync": True, "name": "Ann"})
    assert changed.status_code == 200
    assert changed.json()["diary_sync"] is True and changed.json()["name"] == "Ann"


def test_diary_sync_eligibility_is_422_naming_the_rule(api: Api) -> None:
    user = new_user(api)
    path = f"/users/{user['username']}"
    refused = problem(api.patch(path, {"email_sync": False, "diary_sync": True}), 422,
                      "invalid")
    assert "diary sync needs email sync on" in refused["detail"]
    first = new_user(api)
    api.patch(f"/users/{first['username']}", {"diary_sync": True})
    api.patch(path, {"email": first["email"]})
    clash = problem(api.patch(path, {"diary_sync": True}), 422, "invalid")
    assert "diary-sync emails must be unique" in clash["detail"]
    assert api.get(path).json()["diary_sync"] is False  # nothing changed


def test_validation_errors_name_the_field(api: Api) -> None:
    bad = problem(api.post("/users", {"username": "Not Valid", "email": "a@b.example",
                                      "admin": "perhaps"}), 422, "validation")
    locations = [error["loc"] for error in bad["errors"]]
    assert ["body", "username"] in locations and ["body", "admin"] in locations
    missing = problem(api.post("/entries", {"title": "x"}), 422, "validation")
    assert ["body", "type"] in [error["loc"] for error in missing["errors"]]
    cursor = problem(api.get("/users?cursor=garbage!"), 422, "validation")
    assert cursor["errors"][0]["loc"] == ["query", "cursor"]
    problem(api.call("POST", "/users", data=b"{", headers={"Content-Type":
                                                           "application/json"}),
            400, "malformed-request")
    problem(api.call("POST", "/users", data=b"x=1", headers={"Content-Type": "text/plain"}),
            415, "unsupported-media-type")


def test_unknown_things_are_404(api: Api) -> None:
    problem(api.get("/users/nobody-at-all"), 404, "not-found")
    problem(api.get("/entries/999999"), 404, "not-found")
    problem(api.get("/contacts/2147483647"), 404, "not-found")
    problem(api.get("/nothing-here"), 404, "not-found")


def test_app_passwords_are_shown_once_listed_and_revoked(api_gateway: Gateway,
                                                         api: Api) -> None:
    user = new_user(api)
    name = user["username"]
    api.patch(f"/users/{name}", {"diary_sync": True})
    issued = api.post(f"/users/{name}/app-passwords", {"label": "phone"})
    assert issued.status_code == 201
    password = issued.json()["password"]
    calendar = f"{api_gateway.url}{name}/meeting/"
    assert propfind(calendar, (str(name), password)).status_code == 207
    [listed] = api.get(f"/users/{name}/app-passwords").json()["items"]
    assert listed["label"] == "phone" and "password" not in listed
    revoked = api.delete(f"/users/{name}/app-passwords/{listed['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert propfind(calendar, (str(name), password)).status_code == 401
    problem(api.delete(f"/users/{name}/app-passwords/999999"), 404, "not-found")


def test_the_bcc_address_is_read_and_rotated(api: Api) -> None:
    name = new_user(api)["username"]
    first = api.get(f"/users/{name}/bcc-address").json()["address"]
    assert first.startswith("log+") and api.get(f"/users/{name}/bcc-address").json()[
        "address"] == first
    rotated = api.post(f"/users/{name}/bcc-address/rotate").json()["address"]
    assert rotated != first
    assert api.get(f"/users/{name}/bcc-address").json()["address"] == rotated


def test_lists_page_with_a_cursor(api: Api) -> None:
    for _ in range(3):
        new_user(api)
    seen: list[int] = []
    cursor = None
    while True:
        path = "/users?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(path).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen)) and len(seen) >= 3
    problem(api.get("/users?limit=0"), 422, "validation")


def test_diary_types_are_created_renamed_and_unpublished(api: Api) -> None:
    name = unique("Demo ")
    created = api.post("/diary-types", {"name": name, "color": "#112233"})
    assert created.status_code == 201
    row = created.json()
    assert row["syncable"] is True and row["color"] == "#112233"
    path = f"/diary-types/{row['id']}"
    changed = api.patch(path, {"name": name + " renamed", "syncable": False}).json()
    assert changed["slug"] == row["slug"] and changed["syncable"] is False
    problem(api.post("/diary-types", {"name": name + " renamed"}), 409, "conflict")
    problem(api.post("/diary-types", {"name": "x", "color": "red"}), 422, "validation")
    ids = [t["id"] for t in api.get("/diary-types?limit=200").json()["items"]]
    assert row["id"] in ids


def test_accounts_with_domains_and_their_contacts(api: Api) -> None:
    domain = unique("globex") + ".example"
    account = api.post("/accounts", {"name": f"Globex {domain}", "domains": [domain.upper()]})
    assert account.status_code == 201
    assert account.json()["domains"] == [domain]
    account_id = account.json()["id"]
    assert api.get(f"/accounts/{account_id}").json() == account.json()
    problem(api.post("/accounts", {"name": "Other", "domains": [domain]}), 409, "conflict")
    problem(api.post("/accounts", {"name": "Bad", "domains": ["not a domain"]}), 422,
            "invalid")
    contact = api.post("/contacts", {"email": f"Hank@{domain}", "name": "Hank"})
    assert contact.status_code == 201
    assert contact.json()["emails"] == [f"hank@{domain}"]
    assert contact.json()["account_id"] == account_id
    assert contact.json()["account"] == f"Globex {domain}"
    problem(api.post("/contacts", {"email": f"hank@{domain}"}), 409, "conflict")
    listed = api.get(f"/contacts?account_id={account_id}").json()["items"]
    assert [c["id"] for c in listed] == [contact.json()["id"]]
    assert api.get(f"/contacts/{contact.json()['id']}").json() == contact.json()
    problem(api.get("/contacts?account_id=2147483646"), 404, "not-found")
