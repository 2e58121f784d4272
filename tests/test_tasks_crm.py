"""Task types on the CRM side: the CLI and the JSON API (a real ``serve``), both backends.

A type's kind is chosen when it is made and changes only while the type has no entries;
task entries take due, priority, status and percent complete; event fields are refused for
tasks and task fields for events, with the reason and nothing stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from api_peers import Api, problem, unique
from sqlalchemy import func, select

from gateway.db import Store
from gateway.models import DiaryEntry

Run = Callable[..., tuple[int, str, str]]


def seed(cli: Run) -> None:
    for argv in (("users", "add", "ann", "--email", "ann@acme.example"),
                 ("diary-types", "add", "To do", "--kind", "task"),
                 ("diary-types", "add", "Meeting")):
        code, _, err = cli(*argv)
        assert code == 0, err


def test_the_cli_makes_task_types_and_tasks(cli: Run, store: Store) -> None:
    seed(cli)
    code, out, _ = cli("--json", "diary-types", "list")
    assert code == 0
    assert {t["name"]: t["kind"] for t in json.loads(out)} == {"To do": "task",
                                                               "Meeting": "event"}
    assert "task" in cli("diary-types", "list")[1].splitlines()[1]
    code, out, err = cli("--json", "entries", "add", "--type", "To do", "--title", "Send offer",
                         "--due", "2026-12-10T17:00Z", "--priority", "2", "--organizer", "ann")
    assert code == 0, err
    made = json.loads(out)
    assert (made["start"], made["end"]) == (None, None)
    assert made["task"] == {"start": None, "due": "2026-12-10T17:00:00Z", "completed": None,
                            "priority": 2, "status": "NEEDS-ACTION", "percent_complete": None}
    code, out, err = cli("--json", "entries", "set", str(made["id"]), "--status", "completed")
    assert code == 0, err
    task = json.loads(out)["task"]
    assert (task["status"], task["percent_complete"]) == ("COMPLETED", 100)
    assert task["completed"] is not None
    code, out, err = cli("entries", "list")
    assert "[COMPLETED]" in out


def test_cli_mistakes_with_tasks_print_one_line_and_exit_2(cli: Run, store: Store) -> None:
    seed(cli)
    assert cli("entries", "add", "--type", "To do", "--title", "x", "--due", "2026-12-10",
               "--organizer", "ann")[0] == 0
    for argv, message in (
        (("diary-types", "set", "To do", "--kind", "event"), "has 1 entries"),
        (("entries", "add", "--type", "Meeting", "--title", "x", "--start", "2026-12-10T09:00",
          "--end", "2026-12-10T10:00", "--due", "2026-12-11", "--organizer", "ann"),
         "for task types"),
        (("entries", "add", "--type", "To do", "--title", "x", "--end", "2026-12-10",
          "--organizer", "ann"), "give --due"),
        (("entries", "add", "--type", "To do", "--title", "x", "--status", "DONE",
          "--organizer", "ann"), "not a task status"),
        (("entries", "add", "--type", "To do", "--title", "x", "--priority", "12",
          "--organizer", "ann"), "priority"),
        (("diary-types", "add", "Other", "--kind", "journal"), "invalid choice"),
    ):
        with store.reading() as session:
            before = session.scalar(select(func.count(DiaryEntry.id)))
        code, out, err = cli(*argv)
        assert code == 2, (argv, out, err)
        assert (message in err and err.count("\n") == 1) or "invalid choice" in err, err
        with store.reading() as session:
            assert session.scalar(select(func.count(DiaryEntry.id))) == before
    # An empty type may change its kind.
    assert cli("diary-types", "set", "Meeting", "--kind", "task")[0] == 0


def test_the_api_makes_a_task_type_and_tasks(api: Api) -> None:
    name = unique("Tasks")
    made = api.post("/diary-types", json={"name": name, "kind": "task"})
    assert made.status_code == 201, made.text
    assert made.json()["kind"] == "task"
    assert api.get(f"/diary-types/{made.json()['id']}").json()["kind"] == "task"
    user = unique("u")
    assert api.post("/users", json={"username": user, "email": f"{user}@acme.example"}
                    ).status_code == 201
    task = api.post("/entries", json={"type": name, "title": "Call back", "organizer": user,
                                      "due": "2026-12-10T17:00:00Z", "priority": 1})
    assert task.status_code == 201, task.text
    body = task.json()
    assert (body["start"], body["end"]) == (None, None)
    assert body["task"] == {"due": "2026-12-10T17:00:00Z", "completed": None, "priority": 1,
                            "status": "NEEDS-ACTION", "percent_complete": None}
    download = api.get(f"/entries/{body['id']}/ics")
    assert download.status_code == 200, download.text
    assert "BEGIN:VTODO" in download.text and "BEGIN:VEVENT" not in download.text
    assert "DUE:20261210T170000Z" in download.text
    changed = api.patch(f"/entries/{body['id']}", json={"status": "COMPLETED", "due": None,
                                                        "description": "Hank said yes"},
                        headers={"If-Match": task.headers["ETag"]})
    assert changed.status_code == 200, changed.text
    done = changed.json()["task"]
    assert (done["status"], done["percent_complete"], done["due"]) == ("COMPLETED", 100, None)
    assert done["completed"] is not None
    assert changed.json()["description"] == "Hank said yes"

    refused = api.patch(f"/diary-types/{made.json()['id']}", json={"kind": "event"})
    assert "has 1 entries" in problem(refused, 409, "conflict")["detail"]
    assert api.get(f"/diary-types/{made.json()['id']}").json()["kind"] == "task"


def test_the_api_refuses_event_fields_for_tasks_and_task_fields_for_events(api: Api) -> None:
    tasks, events = unique("Tasks"), unique("Events")
    assert api.post("/diary-types", json={"name": tasks, "kind": "task"}).status_code == 201
    assert api.post("/diary-types", json={"name": events}).status_code == 201
    user = unique("u")
    api.post("/users", json={"username": user, "email": f"{user}@acme.example"})
    for sent, reason in (
        ({"type": tasks, "end": "2026-12-10T10:00:00Z"}, "not end"),
        ({"type": events, "start": "2026-12-10T09:00:00Z", "end": "2026-12-10T10:00:00Z",
          "due": "2026-12-11T00:00:00Z"}, "for task types"),
        ({"type": events}, "needs a start and an end"),
    ):
        answer = api.post("/entries", json={"title": "x", "organizer": user, **sent})
        assert reason in problem(answer, 422, "invalid")["detail"]
    assert problem(api.post("/entries", json={"type": tasks, "title": "x", "organizer": user,
                                               "status": "DONE"}), 422, "validation")
    assert api.get("/entries", params={"owner": user}).json()["items"] == []
