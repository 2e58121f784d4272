"""Task types as a client sees them: a task list (VTODO) over CalDAV, with the CRM reflecting it.

A real ``serve --only http`` per backend and module; the ``caldav`` library creates,
completes and deletes tasks as task apps do, and the CRM rows follow each step. CRM-side
changes reach the client, VEVENT/VTODO land only where they belong (403
``supported-calendar-component`` otherwise), a recurring task is read-only on the CRM side,
and time-range queries on a task list follow RFC 4791 9.9.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import caldav
import pytest
import requests
from caldav_peer import Gateway, Rep, event, new_rep, start_gateway, stop_gateway
from sqlalchemy import select

from gateway.diary_types import create_type
from gateway.entries import EntryDraft, EntryEdit, TaskDraft, create_entry, update_entry
from gateway.errors import ReadOnly
from gateway.models import DiaryEntry, DiaryType

TODO = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VTODO\r
UID:{uid}\r
DTSTAMP:20261201T090000Z\r
{times}SUMMARY:{summary}\r
END:VTODO\r
END:VCALENDAR\r
"""


def todo(uid: str, summary: str = "Send the offer", times: str = "DUE:20261210T170000Z\r\n"
         ) -> str:
    return TODO.format(uid=uid, summary=summary, times=times)


@pytest.fixture(scope="module")
def gateway(module_database_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Gateway]:
    running = start_gateway(module_database_url, tmp_path_factory.mktemp("gateway"))
    with running.store.transaction() as session:
        for name, kind in (("Meeting", "event"), ("To do", "task")):
            if session.query(DiaryType).filter_by(name=name).first() is None:
                create_type(session, name, kind=kind)
    yield running
    stop_gateway(running)


@pytest.fixture
def rep(gateway: Gateway) -> Rep:
    return new_rep(gateway.store)


@pytest.fixture
def client(gateway: Gateway, rep: Rep) -> Iterator[caldav.DAVClient]:
    with caldav.DAVClient(url=gateway.url, username=rep.username,
                          password=rep.password) as opened:
        yield opened


def task_list(client: caldav.DAVClient) -> caldav.Calendar:
    found = {c.url.path.rstrip("/").rsplit("/", 1)[-1]: c for c in client.principal().calendars()}
    return found["to-do"]


QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


def in_range(gateway: Gateway, rep: Rep, start: datetime, end: datetime) -> set[str]:
    """The resource names a time-range calendar-query on the task list answers (the
    server's own answer: the caldav library filters search results again itself)."""
    stamp = "%Y%m%dT%H%M%SZ"
    answer = requests.request(
        "REPORT", f"{gateway.url}{rep.username}/to-do/", auth=rep.auth, timeout=10,
        headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        data=QUERY.format(start=start.strftime(stamp), end=end.strftime(stamp)).encode())
    assert answer.status_code == 207, answer.text
    hrefs = ElementTree.fromstring(answer.content).iter("{DAV:}href")
    return {(href.text or "").rsplit("/", 1)[-1].removesuffix(".ics") for href in hrefs}


def row(gateway: Gateway, uid: str) -> DiaryEntry | None:
    with gateway.store.reading() as session:
        entry = session.scalar(select(DiaryEntry).where(DiaryEntry.uid == uid,
                                                        DiaryEntry.deleted_at.is_(None)))
        if entry is not None:
            session.expunge(entry)
        return entry


def put(gateway: Gateway, rep: Rep, slug: str, name: str, body: str) -> requests.Response:
    return requests.put(f"{gateway.url}{rep.username}/{slug}/{name}", data=body.encode(),
                        auth=rep.auth, timeout=10,
                        headers={"Content-Type": "text/calendar; charset=utf-8"})


def test_the_task_list_advertises_vtodo_and_the_event_calendar_vevent(
        client: caldav.DAVClient) -> None:
    components = {c.url.path.rstrip("/").rsplit("/", 1)[-1]: c.get_supported_components()
                  for c in client.principal().calendars()}
    assert components["to-do"] == ["VTODO"]
    assert components["meeting"] == ["VEVENT"]


def test_caldav_creates_completes_and_deletes_a_task_and_the_crm_follows(
        gateway: Gateway, rep: Rep, client: caldav.DAVClient) -> None:
    tasks = task_list(client)
    due = datetime(2026, 12, 10, 17, tzinfo=UTC)
    made = tasks.save_todo(summary="Send the offer to ACME", due=due, priority=2,
                           uid="offer@tasks")
    entry = row(gateway, "offer@tasks")
    assert entry is not None
    assert (entry.title, entry.due_utc, entry.priority, entry.status) == (
        "Send the offer to ACME", due, 2, "NEEDS-ACTION")
    assert entry.origin == "calendar" and entry.completed_utc is None
    assert [t.icalendar_component["UID"] for t in tasks.todos()] == ["offer@tasks"]

    done_at = datetime(2026, 12, 9, 15, 30, tzinfo=UTC)
    made.complete(completion_timestamp=done_at)
    entry = row(gateway, "offer@tasks")
    assert entry is not None
    assert (entry.status, entry.completed_utc) == ("COMPLETED", done_at)
    assert tasks.todos() == []  # completed tasks are hidden by default
    assert len(tasks.todos(include_completed=True)) == 1

    made.delete()
    assert row(gateway, "offer@tasks") is None
    assert tasks.todos(include_completed=True) == []


def test_the_clients_bytes_are_kept_and_crm_changes_reach_the_client(
        gateway: Gateway, rep: Rep, client: caldav.DAVClient) -> None:
    body = todo("kept@tasks", times="DUE:20261210T170000Z\r\nRELATED-TO:parent@tasks\r\n"
                "X-APPLE-SORT-ORDER:42\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n"
                "DESCRIPTION:Offer\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n")
    assert put(gateway, rep, "to-do", "kept.ics", body).status_code == 201
    served = requests.get(f"{gateway.url}{rep.username}/to-do/kept.ics", auth=rep.auth,
                          timeout=10)
    assert served.text == body
    etag = served.headers["ETag"]

    entry = row(gateway, "kept@tasks")
    assert entry is not None
    with gateway.store.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, entry.id),
                     EntryEdit(status="IN-PROCESS", percent_complete=40, priority=1))
    tasks = task_list(client)
    (seen,) = tasks.todos()
    component = seen.icalendar_component
    assert (str(component["STATUS"]), int(component["PERCENT-COMPLETE"]),
            int(component["PRIORITY"])) == ("IN-PROCESS", 40, 1)
    text = seen.data
    for kept in ("RELATED-TO:parent@tasks", "X-APPLE-SORT-ORDER:42", "TRIGGER:-PT15M"):
        assert kept in text
    again = requests.get(f"{gateway.url}{rep.username}/to-do/kept.ics", auth=rep.auth,
                         timeout=10)
    assert again.headers["ETag"] != etag
    # Reading does not write: the same bytes and ETag on every read.
    assert requests.get(f"{gateway.url}{rep.username}/to-do/kept.ics", auth=rep.auth,
                        timeout=10).headers["ETag"] == again.headers["ETag"]


def test_a_crm_made_task_shows_in_the_client_rendered_the_same_each_time(
        gateway: Gateway, rep: Rep, client: caldav.DAVClient) -> None:
    due = datetime(2026, 12, 11, 9, tzinfo=UTC)
    with gateway.store.transaction() as session:
        entry = create_entry(session, EntryDraft(
            type_name="To do", title="Call Globex back", start=None, end=None,
            organizer=rep.username, task=TaskDraft(due=due, priority=3)))
        uid, href = entry.uid, entry.href
    (seen,) = task_list(client).todos()
    component = seen.icalendar_component
    assert str(component["UID"]) == uid
    assert component["DUE"].dt == due
    assert (str(component["STATUS"]), int(component["PRIORITY"])) == ("NEEDS-ACTION", 3)
    first = requests.get(f"{gateway.url}{rep.username}/to-do/{href}", auth=rep.auth, timeout=10)
    second = requests.get(f"{gateway.url}{rep.username}/to-do/{href}", auth=rep.auth, timeout=10)
    assert (first.text, first.headers["ETag"]) == (second.text, second.headers["ETag"])

    with gateway.store.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, entry.id),
                     EntryEdit(status="COMPLETED"))
    (seen,) = task_list(client).todos(include_completed=True)
    component = seen.icalendar_component
    assert str(component["STATUS"]) == "COMPLETED"
    assert int(component["PERCENT-COMPLETE"]) == 100
    assert "COMPLETED" in component


@pytest.mark.parametrize(("slug", "body", "holds"), [
    ("meeting", todo("wrong-todo@tasks"), "events (VEVENT)"),
    ("to-do", event("wrong-event@tasks"), "tasks (VTODO)"),
])
def test_a_vtodo_in_an_event_calendar_and_a_vevent_in_a_task_list_are_refused(
        gateway: Gateway, rep: Rep, slug: str, body: str, holds: str) -> None:
    answer = put(gateway, rep, slug, "wrong.ics", body)
    assert answer.status_code == 403
    assert "supported-calendar-component" in answer.text
    assert holds in answer.text
    assert row(gateway, "wrong-todo@tasks") is None
    assert row(gateway, "wrong-event@tasks") is None


def test_a_vtodo_cannot_replace_an_event_in_place(gateway: Gateway, rep: Rep) -> None:
    assert put(gateway, rep, "meeting", "swap.ics", event("swap@tasks", "Kept")).status_code \
        == 201
    answer = put(gateway, rep, "meeting", "swap.ics", todo("swap@tasks", "Replaced"))
    assert answer.status_code == 403
    entry = row(gateway, "swap@tasks")
    assert entry is not None and entry.title == "Kept"


def test_a_recurring_task_is_read_only_on_the_crm_side(gateway: Gateway, rep: Rep) -> None:
    body = todo("weekly@tasks", "Weekly report",
                times="DTSTART:20261207T090000Z\r\nDUE:20261207T170000Z\r\n"
                      "RRULE:FREQ=WEEKLY;COUNT=4\r\n")
    assert put(gateway, rep, "to-do", "weekly.ics", body).status_code == 201
    entry = row(gateway, "weekly@tasks")
    assert entry is not None and entry.rrule == "FREQ=WEEKLY;COUNT=4"
    with gateway.store.transaction() as session, pytest.raises(ReadOnly, match="recurring"):
        update_entry(session, session.get_one(DiaryEntry, entry.id),
                     EntryEdit(status="COMPLETED"))
    after = row(gateway, "weekly@tasks")
    assert after is not None and after.revision == entry.revision
    # Its instances are indexed: the third week's window finds it, a week after the last not.
    assert in_range(gateway, rep, datetime(2026, 12, 21, tzinfo=UTC),
                    datetime(2026, 12, 22, tzinfo=UTC)) == {"weekly"}
    assert in_range(gateway, rep, datetime(2026, 12, 22, tzinfo=UTC),
                    datetime(2026, 12, 28, tzinfo=UTC)) == set()
    assert in_range(gateway, rep, datetime(2027, 1, 4, tzinfo=UTC),
                    datetime(2027, 1, 5, tzinfo=UTC)) == set()


def test_time_range_queries_on_a_task_list_follow_rfc_4791_9_9(
        gateway: Gateway, rep: Rep) -> None:
    bodies = {
        "due": "DUE:20261215T120000Z\r\n",
        "start": "DTSTART:20261216T090000Z\r\n",
        "span": "DTSTART:20261217T090000Z\r\nDURATION:PT2H\r\n",
        "done": "COMPLETED:20261218T100000Z\r\n",
        "undated": "",
    }
    for name, times in bodies.items():
        assert put(gateway, rep, "to-do", f"{name}.ics",
                   todo(f"{name}-{rep.username}@tasks", name, times)).status_code == 201

    def found(start: datetime, end: datetime) -> set[str]:
        return in_range(gateway, rep, start, end)

    day = timedelta(days=1)
    assert found(datetime(2026, 12, 15, tzinfo=UTC), datetime(2026, 12, 15, 12, tzinfo=UTC)) \
        == {"due", "undated"}  # start < DUE and end >= DUE
    assert found(datetime(2026, 12, 15, 12, tzinfo=UTC), datetime(2026, 12, 16, tzinfo=UTC)) \
        == {"undated"}
    assert found(datetime(2026, 12, 16, 9, tzinfo=UTC), datetime(2026, 12, 16, 10, tzinfo=UTC)) \
        == {"start", "undated"}
    assert found(datetime(2026, 12, 17, 11, tzinfo=UTC), datetime(2026, 12, 17, 12, tzinfo=UTC)) \
        == {"span", "undated"}  # start <= DTSTART+DURATION
    assert found(datetime(2026, 12, 18, tzinfo=UTC), datetime(2026, 12, 18, tzinfo=UTC) + day) \
        == {"done", "undated"}
    assert found(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)) \
        == {"undated"}


def test_a_task_does_not_move_into_an_event_calendar(gateway: Gateway, rep: Rep) -> None:
    assert put(gateway, rep, "to-do", "mover.ics", todo("mover@tasks")).status_code == 201
    moved = requests.request(
        "MOVE", f"{gateway.url}{rep.username}/to-do/mover.ics", auth=rep.auth, timeout=10,
        headers={"Destination": f"{gateway.url}{rep.username}/meeting/mover.ics"})
    assert moved.status_code == 403
    assert "supported-calendar-component" in moved.text
    # Nor by its UID (Thunderbird moves by PUT then DELETE): a 409 naming the task.
    answer = put(gateway, rep, "meeting", "mover.ics", event("mover@tasks"))
    assert answer.status_code == 409
    assert "no-uid-conflict" in answer.text and "to-do/mover.ics" in answer.text
    entry = row(gateway, "mover@tasks")
    assert entry is not None and entry.href == "mover.ics"
    with gateway.store.reading() as session:
        assert session.get_one(DiaryEntry, entry.id).type.kind == "task"


def test_sync_collection_on_a_task_list_reports_crm_changes(
        gateway: Gateway, rep: Rep, client: caldav.DAVClient) -> None:
    assert put(gateway, rep, "to-do", "synced.ics", todo("synced@tasks")).status_code == 201
    tasks = task_list(client)
    first = tasks.objects_by_sync_token(load_objects=True)
    assert [str(o.icalendar_component["UID"]) for o in first] == ["synced@tasks"]
    entry = row(gateway, "synced@tasks")
    assert entry is not None
    with gateway.store.transaction() as session:
        update_entry(session, session.get_one(DiaryEntry, entry.id), EntryEdit(priority=4))
    changed = tasks.objects_by_sync_token(sync_token=first.sync_token, load_objects=True)
    assert [int(o.icalendar_component["PRIORITY"]) for o in changed] == [4]
    unchanged = tasks.objects_by_sync_token(sync_token=changed.sync_token)
    assert list(unchanged) == []


OPEN_TASKS = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">
    <C:prop-filter name="COMPLETED"><C:is-not-defined/></C:prop-filter>
    <C:prop-filter name="STATUS">
      <C:text-match negate-condition="yes">CANCELLED</C:text-match>
    </C:prop-filter>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


def test_the_open_tasks_query_task_apps_send_leaves_done_ones_out(
        gateway: Gateway, rep: Rep) -> None:
    # Apple Reminders and tasks.org ask for tasks without COMPLETED and not CANCELLED.
    for name, times in (("open", "STATUS:NEEDS-ACTION\r\n"),
                        ("done", "STATUS:COMPLETED\r\nCOMPLETED:20261202T100000Z\r\n"),
                        ("dropped", "STATUS:CANCELLED\r\n")):
        assert put(gateway, rep, "to-do", f"{name}.ics",
                   todo(f"{name}-{rep.username}@tasks", name, times)).status_code == 201
    answer = requests.request(
        "REPORT", f"{gateway.url}{rep.username}/to-do/", auth=rep.auth, timeout=10,
        headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        data=OPEN_TASKS.encode())
    assert answer.status_code == 207, answer.text
    hrefs = {(h.text or "").rsplit("/", 1)[-1]
             for h in ElementTree.fromstring(answer.content).iter("{DAV:}href")}
    assert hrefs == {"open.ics"}
