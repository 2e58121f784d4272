"""``/entries``: diary entries, with ETags and If-Match on every change.

The ETag ``"<id>-<revision>"`` changes with every change of the entry, from any side. If-Match
is compared in the write's own transaction and the write is the entry's compare-and-set
(``gateway.preconditions``), as for a CalDAV PUT: the API and a phone cannot overwrite each
other unseen. Entries the CRM side may not change answer 409 with the reason.
"""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.orm import Session

from gateway.conflicts import Clash, recorded
from gateway.diary_types import get_type
from gateway.entries import (
    EntryDraft,
    EntryEdit,
    TaskDraft,
    all_day_bounds,
    check_crm_writable,
    create_entry,
    delete_entry,
    get_entry,
    page_entries,
    update_entry,
)
from gateway.errors import Invalid, ReadOnly
from gateway.export import download_name, entry_ics
from gateway.ical import KEEP
from gateway.models import DiaryEntry
from gateway.preconditions import Precondition
from gateway.users import get_user
from gateway.web.api.fields import encode_cursor
from gateway.web.api.models import (
    ConflictOut,
    EntryCreate,
    EntryOut,
    EntryPatch,
    EntryQuery,
    ExportQuery,
    Page,
    ParticipantOut,
    TaskOut,
)
from gateway.web.api.routing import Call, Reply, entity_path, route

TAG = "entries"
ENTRY = f"/entries/{entity_path('entry_id')}"


def etag(entry: DiaryEntry) -> str:
    return f'"{entry.id}-{entry.revision}"'


def read_only_reason(entry: DiaryEntry) -> str | None:
    try:
        check_crm_writable(entry)
    except ReadOnly as exc:
        return str(exc)
    return None


def task_out(entry: DiaryEntry) -> TaskOut | None:
    if entry.type.kind != "task":
        return None
    return TaskOut(due=entry.due_utc, completed=entry.completed_utc, priority=entry.priority,
                   status=entry.status, percent_complete=entry.percent_complete)


def entry_out(entry: DiaryEntry, session: Session | None = None) -> EntryOut:
    """The entry; with ``session``, the overlaps recorded at its last write too."""
    task = task_out(entry)
    # A task's start/end columns are the range it occupies for time-range queries.
    start = entry.task_start_utc if task is not None else entry.start_utc
    return EntryOut(
        id=entry.id, uid=entry.uid, type=entry.type.name, title=entry.title,
        start=start, end=None if task is not None else entry.end_utc, tzid=entry.tzid,
        all_day=entry.all_day, task=task,
        rrule=entry.rrule, location=entry.location, description=entry.description,
        organizer=entry.organizer.username if entry.organizer else entry.organizer_email,
        origin="calendar" if entry.origin == "calendar" else "crm",
        participants=[
            ParticipantOut(email=p.email, name=p.name, partstat=p.partstat,
                           kind="user" if p.user_id else "contact" if p.contact_id
                           else "external")
            for p in entry.participants],
        revision=entry.revision, etag=etag(entry), read_only=read_only_reason(entry),
        conflicts=[conflict_out(c) for c in recorded(session, entry.id)]
        if session is not None else [],
    )


def conflict_out(clash: Clash) -> ConflictOut:
    return ConflictOut(user=clash.user, entry_id=clash.entry_id, title=clash.title,
                       calendar=clash.calendar, owner=clash.owner, start=clash.start,
                       end=clash.end)


def _answer(call: Call, entry: DiaryEntry, status: int | None = None) -> Reply:
    headers = {"ETag": etag(entry)}
    if status == 201:
        headers["Location"] = f"/api/v1/entries/{entry.id}"
    return Reply(entry_out(entry, call.session), status=status, headers=headers)


@route("GET", "/entries", summary="List live entries (optionally those one user organises)",
       tag=TAG, response=Page[EntryOut], query=EntryQuery)
def list_entries(call: Call) -> Page[EntryOut]:
    query: EntryQuery = call.query
    found = page_entries(call.session, owner=query.owner, limit=query.limit,
                         after=query.after)
    return Page[EntryOut](items=[entry_out(e) for e in found.items],
                          next_cursor=encode_cursor(found.next_after))


@route("POST", "/entries", summary="Create an entry (published to the calendars at once; 409 "
       "conflict-refused if it overlaps busy time and the organiser refuses conflicts)",
       tag=TAG, response=EntryOut, status=201, body=EntryCreate,
       request_headers=("Idempotency-Key",), response_headers=("ETag", "Location"))
def create_entry_(call: Call) -> Reply:
    body: EntryCreate = call.body
    start = body.start.astimezone(UTC) if body.start else None
    end = body.end.astimezone(UTC) if body.end else None
    task: TaskDraft | None = None
    if get_type(call.session, body.type).kind == "task":
        if end is not None or body.all_day:
            raise Invalid(f"{body.type} is a task type: give due (and start), not end")
        task = TaskDraft(start=start, due=body.due.astimezone(UTC) if body.due else None,
                         priority=body.priority, status=body.status,
                         percent_complete=body.percent_complete)
    elif _task_fields_in(body, body.model_fields_set):
        raise Invalid(f"{body.type} is an event type: due, priority, status and "
                      "percent_complete are for task types")
    elif body.all_day and start is not None and end is not None:
        start, end = all_day_bounds(start, end)
    draft = EntryDraft(
        type_name=body.type, title=body.title, start=start, end=end,
        organizer=body.organizer, attendees=tuple(body.attendees), all_day=body.all_day,
        rrule=body.rrule, tzid=body.tzid, location=body.location,
        description=body.description, automation=body.automation, task=task,
    )
    return _answer(call, create_entry(call.session, draft, origin="api", force=body.force), 201)


@route("GET", ENTRY, summary="Get an entry", tag=TAG, response=EntryOut,
       response_headers=("ETag",))
def get_entry_(call: Call) -> Reply:
    return _answer(call, get_entry(call.session, call.params["entry_id"]))


def _task_fields_in(body: EntryCreate | EntryPatch, given: set[str]) -> bool:
    return bool(given & {"due", "priority", "status", "percent_complete"})


def _writable(call: Call) -> DiaryEntry:
    entry = get_entry(call.session, call.params["entry_id"])
    Precondition(if_match=call.headers.get("If-Match")).check(etag(entry))
    return entry


@route("PATCH", ENTRY, summary="Change an entry (412 if If-Match is stale, 409 if read-only)",
       tag=TAG, response=EntryOut, body=EntryPatch, request_headers=("If-Match",),
       response_headers=("ETag",))
def update_entry_(call: Call) -> Reply:
    body: EntryPatch = call.body
    entry = _writable(call)
    given = body.model_fields_set
    edit = EntryEdit(
        title=body.title,
        start=body.start.astimezone(UTC) if body.start else None,
        end=body.end.astimezone(UTC) if body.end else None,
        type_name=body.type, location=body.location, description=body.description,
        attendees=None if body.attendees is None else tuple(body.attendees),
        due=(body.due.astimezone(UTC) if body.due else None) if "due" in given else KEEP,
        priority=body.priority if "priority" in given else KEEP,
        status=body.status if body.status is not None else KEEP,
        percent_complete=body.percent_complete if "percent_complete" in given else KEEP,
    )
    return _answer(call, update_entry(call.session, entry, edit, origin="api",
                                      force=body.force))


@route("DELETE", ENTRY, summary="Delete an entry (a tombstone: it leaves every calendar)",
       tag=TAG, response=None, status=204, request_headers=("If-Match",))
def delete_entry_(call: Call) -> Reply:
    delete_entry(call.session, _writable(call), origin="api")
    return Reply(status=204)


@route("GET", f"{ENTRY}/ics", summary="Download a non-recurring entry of a syncable type as "
       "an .ics file (409 with the reason otherwise)", tag=TAG, response=None,
       media_type="text/calendar", query=ExportQuery,
       response_headers=("Content-Disposition",))
def get_entry_ics(call: Call) -> Reply:
    query: ExportQuery = call.query
    entry = get_entry(call.session, call.params["entry_id"])
    # An API token is no person's: the CRM application names who downloads, if anyone.
    downloader = get_user(call.session, query.user).id if query.user else None
    text = entry_ics(entry, downloader)
    return Reply(raw=text.encode(), media_type="text/calendar; charset=utf-8",
                 headers={"Content-Disposition":
                          f'attachment; filename="{download_name(entry)}"'})
