"""The API's request and response models (pydantic v2): they validate requests and, through
their JSON schemas, are the OpenAPI document's components. Field limits match the columns,
so a request the database would refuse is a 422 naming the field instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, StringConstraints

from gateway.web.api.fields import (
    Clean,
    Domain,
    Email,
    Label,
    LongText,
    Moment,
    Name,
    PageQuery,
    Query,
    Request,
    RequiredName,
    Short,
    Title,
    TypeName,
    Username,
)

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; "
                                                "null on the last page")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


# --- users ----------------------------------------------------------------------------------


class UserOut(BaseModel):
    id: int
    username: str
    email: str
    name: str
    admin: bool
    email_sync: bool
    diary_sync: bool
    notify_client_adds: bool = Field(
        description="the user gets a mail when an event made in their calendar app lands in "
                    "the CRM")
    working_hours: str | None = Field(
        None, description="e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin'; null: the configured "
        "default (availability.working_hours)")
    created_at: datetime


class UserCreate(Request):
    username: Username
    email: Email
    name: Name = ""
    admin: bool = False


class UserPatch(Request):
    email: Email | None = None
    name: Name | None = None
    email_sync: bool | None = None
    diary_sync: bool | None = None
    notify_client_adds: bool | None = None
    working_hours: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None, description="days, times and an IANA zone, e.g. 'Mon-Fri 09:00-17:00 "
        "Europe/Berlin'; an empty string goes back to the configured default")


class AppPasswordOut(BaseModel):
    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class AppPasswordCreate(Request):
    label: Label = ""


class AppPasswordIssued(BaseModel):
    id: int
    label: str
    password: str = Field(description="shown only in this answer")


class BccAddressOut(BaseModel):
    username: str
    address: str


# --- diary types, accounts, contacts --------------------------------------------------------


Kind = Literal["event", "task"]


class DiaryTypeOut(BaseModel):
    id: int
    name: str
    slug: str
    color: str
    syncable: bool
    kind: Kind = Field(description="task: the type's calendars are task lists (VTODO)")


Color = Annotated[str, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")]


class DiaryTypeCreate(Request):
    name: TypeName
    color: Color = "#3A87AD"
    syncable: bool = True
    kind: Kind = "event"


class DiaryTypePatch(Request):
    name: TypeName | None = None
    color: Color | None = None
    syncable: bool | None = None
    kind: Kind | None = Field(None, description="only while the type has no entries (else 409)")


class AccountOut(BaseModel):
    id: int
    name: str
    domains: list[str]
    created_at: datetime


class AccountCreate(Request):
    name: RequiredName
    domains: list[Domain] = Field(default_factory=list, max_length=50)


class ContactQuery(PageQuery):
    account_id: int | None = Field(None, ge=1, le=2**31 - 1)


class ContactOut(BaseModel):
    id: int
    name: str
    emails: list[str]
    account_id: int | None
    account: str | None = Field(description="the account's name")
    created_at: datetime


class ContactCreate(Request):
    email: Email
    name: Name = ""
    account_id: int | None = Field(None, ge=1, le=2**31 - 1,
                                   description="default: the account of the email's domain")


# --- entries --------------------------------------------------------------------------------


class EntryQuery(PageQuery):
    owner: Short | None = Field(None, description="username: entries this user organises")


class ExportQuery(Query):
    user: Short | None = Field(None, description="username of the person downloading: the "
                               "organiser is left out when it is them (Outlook refuses it)")


class FeedOut(BaseModel):
    username: str
    url: str = Field(description="the secret feed address (shown only in this answer)")


class ParticipantOut(BaseModel):
    email: str
    name: str | None
    partstat: str
    kind: Literal["user", "contact", "external"]


TaskStatus = Literal["NEEDS-ACTION", "IN-PROCESS", "COMPLETED", "CANCELLED"]


class TaskOut(BaseModel):
    due: datetime | None
    completed: datetime | None = Field(description="when it was completed")
    priority: int | None = Field(description="1 highest to 9 lowest, 0 none")
    status: str | None
    percent_complete: int | None


class ConflictOut(BaseModel):
    user: str = Field(description="whose busy time (username)")
    entry_id: int | None = Field(description="the other entry; null: busy time from a linked "
                                 "calendar")
    title: str
    calendar: str = Field(description="the calendar it is in (slug, or the linked calendar)")
    owner: str | None = Field(description="the other entry's owner (username)")
    start: datetime
    end: datetime


class EntryOut(BaseModel):
    id: int
    uid: str
    type: str
    title: str
    start: datetime | None = Field(description="a task's start, null when it has none")
    end: datetime | None = Field(description="null for tasks (see task.due)")
    tzid: str | None
    all_day: bool
    rrule: str | None
    location: str | None
    description: str | None
    organizer: str | None = Field(description="a username, or the email of an outside organiser")
    origin: Literal["crm", "calendar"]
    participants: list[ParticipantOut]
    revision: int
    etag: str
    read_only: str | None = Field(description="why the CRM side may not change it; null if it may")
    task: TaskOut | None = Field(description="the task's fields (entries of task types)")
    conflicts: list[ConflictOut] = Field(
        default_factory=list, description="busy time this entry overlapped when it was last "
        "written (its organiser's or a CRM attendee's); only in answers about one entry, "
        "empty in lists")


Priority = Annotated[int, Field(ge=0, le=9)]
Percent = Annotated[int, Field(ge=0, le=100)]


class RecordedConflictOut(BaseModel):
    id: int
    entry_id: int = Field(description="the entry that overlapped")
    source: Literal["crm", "calendar"] = Field(description="who wrote it: the CRM side (warn "
                                               "or force) or a calendar client")
    created_at: datetime
    conflict: ConflictOut


class ConflictQuery(PageQuery):
    user: Short | None = Field(None, description="username: only overlaps of their busy time")


class WindowQuery(Query):
    start: Moment
    end: Moment


class AvailabilityQuery(WindowQuery):
    users: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="comma-separated usernames")
    duration: int = Field(30, ge=1, le=24 * 60, description="minutes")


class SlotOut(BaseModel):
    start: datetime
    end: datetime


class AvailabilityOut(BaseModel):
    users: list[str]
    duration: int = Field(description="minutes")
    slots: list[SlotOut] = Field(description="windows at least `duration` long in which every "
                                 "user is inside working hours and not busy")


class BusyOut(BaseModel):
    user: str
    start: datetime
    end: datetime
    busy: list[SlotOut] = Field(description="merged busy periods, clipped to the window")


class EntryCreate(Request):
    type: TypeName
    title: Title
    start: Moment | None = Field(None, description="required for events; optional for tasks")
    end: Moment | None = Field(None, description="events (required): with all_day, the last "
                               "day (inclusive)")
    due: Moment | None = Field(None, description="tasks: the due date")
    priority: Priority | None = Field(None, description="tasks: 1 highest to 9 lowest, 0 none")
    status: TaskStatus | None = Field(None, description="tasks (default NEEDS-ACTION)")
    percent_complete: Percent | None = Field(None, description="tasks")
    organizer: Short | None = Field(None, description="username; required unless automation")
    attendees: list[Email] = Field(default_factory=list, max_length=100,
                                          description="usernames or emails")
    all_day: bool = False
    rrule: Annotated[str, StringConstraints(max_length=500,
                                            pattern=r"^FREQ=[A-Z]+(;[A-Z]+=[A-Za-z0-9,+-]+)*$")] \
        | None = None
    tzid: Short | None = None
    location: LongText | None = None
    description: LongText | None = None
    automation: bool = False
    force: bool = Field(False, description="book even if it overlaps busy time and the "
                        "organiser's conflicts setting is refuse")


class EntryPatch(Request):
    title: Title | None = None
    start: Moment | None = Field(None, description="events")
    end: Moment | None = Field(None, description="events")
    type: TypeName | None = Field(None, description="a type of the same kind")
    due: Moment | None = Field(None, description="tasks; null removes the due date")
    priority: Priority | None = Field(None, description="tasks; null removes it")
    status: TaskStatus | None = Field(None, description="tasks: COMPLETED records when")
    percent_complete: Percent | None = Field(None, description="tasks; null removes it")
    location: LongText | None = Field(None, description='"" removes it')
    description: LongText | None = Field(None, description='"" removes it')
    attendees: list[Email] | None = Field(
        None, max_length=100, description="usernames or emails: replaces the attendees "
        "(those who stay keep their answer; [] removes all)")
    force: bool = Field(False, description="as for a create")


# --- activities and the inbound queue -------------------------------------------------------


class ActivityQuery(PageQuery):
    user: Short | None = Field(None, description="username")
    contact_id: int | None = Field(None, ge=1, le=2**31 - 1)
    account_id: int | None = Field(None, ge=1, le=2**31 - 1)
    since: Moment | None = Field(None, description="sent at or after")
    until: Moment | None = Field(None, description="sent before")


class AttachmentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    inline: bool


class ActivityLinksOut(BaseModel):
    users: list[str]
    contacts: list[str]
    accounts: list[str]


class ActivityOut(BaseModel):
    id: int
    message_id: str | None
    direction: str
    source: str
    subject: str
    sent_at: datetime | None
    from_addr: str
    to_addrs: list[str]
    cc_addrs: list[str]
    text_body: str | None
    html_body: str | None
    attachments: list[AttachmentOut]
    links: ActivityLinksOut | None = Field(None, description="in single reads only")


class InboundQuery(PageQuery):
    status: Literal["queued", "done", "skipped", "failed"] | None = None


class InboundOut(BaseModel):
    id: int
    source: str
    status: str
    received_at: datetime
    mail_from: str
    rcpt_tos: list[str]
    size: int
    attempts: int
    next_attempt_at: datetime
    decision: str | None = Field(description="what was decided and why")
    last_error: str | None
    activity_id: int | None
    processed_at: datetime | None


FieldError.model_rebuild()
ProblemDetails.model_rebuild()


# --- sync profiles and health ---------------------------------------------------------------


class ProfileOut(BaseModel):
    records: Literal["all", "related"]
    direction: Literal["two_way", "crm_to_calendar", "calendar_to_crm"]
    sync_invitees: bool
    paused: bool
    invitations: Literal["never", "always", "after_first_sync"] = Field(
        description="iMIP mail to attendees on CRM-side changes; after_first_sync: not for "
                    "entries made before the user's first calendar sync")
    conflicts: Literal["allow", "warn", "refuse"] = Field(
        "allow", description="a CRM-side booking over busy time: allow (not checked), warn "
        "(made, overlaps listed), refuse (409 unless force)")
    user: str | None = Field(description="null: the global default")
    inherited: list[str] = Field(description="fields taken from the global default")
    rep_choices: list[RepChoosable] | None = Field(
        None, description="global default only: the settings reps may change themselves on "
        "My sync; null on a user's profile")


RepChoosable = Literal["records", "direction", "sync_invitees"]


class ProfilePatch(Request):
    records: Literal["all", "related"] | None = None
    direction: Literal["two_way", "crm_to_calendar", "calendar_to_crm"] | None = None
    sync_invitees: bool | None = None
    paused: bool | None = None
    invitations: Literal["never", "always", "after_first_sync"] | None = None
    conflicts: Literal["allow", "warn", "refuse"] | None = None
    rep_choices: list[RepChoosable] | None = Field(
        None, max_length=3, description="global default only: the settings reps may change "
        "themselves")


class QueueDepth(BaseModel):
    queued: int
    failed: int


class PollerState(BaseModel):
    accounts: int = Field(description="mailboxes being polled (not paused)")
    failing: int = Field(description="of those, how many failed their last poll")
    lag_seconds: float | None = Field(description="age of the oldest last success among "
                                                  "polled mailboxes; null if none polled")


class WebhookState(BaseModel):
    pending: int = Field(description="deliveries waiting for their next attempt")
    failed: int = Field(description="deliveries that gave up (replay them)")


class OutboundState(BaseModel):
    pending: int = Field(description="mail waiting for the smarthost")
    failed: int = Field(description="mail refused by the smarthost or out of retries")


class LinkedState(BaseModel):
    accounts: int = Field(description="linked calendar accounts being synced")
    failing: int = Field(description="of those, how many failed their last pass")
    lag_seconds: float | None = Field(description="age of the oldest last success among "
                                                  "them; null if none")


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    inbound_queue: QueueDepth
    poller: PollerState
    webhooks: WebhookState
    outbound_mail: OutboundState
    linked: LinkedState
    warnings: list[str] = Field(description="what deserves a look, in words")


# --- mail accounts --------------------------------------------------------------------------


class MailAccountSet(Request):
    provider: Literal["gmail", "outlook", "exchange", "yahoo", "icloud"] | None = Field(
        None, description="a preset of host, port and TLS; explicit values win")
    host: Annotated[str, StringConstraints(min_length=1, max_length=253), Clean] | None = None
    port: int | None = Field(None, ge=1, le=65535)
    tls: Literal["ssl", "starttls", "none"] | None = None
    login: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000), Clean] = \
        Field(description="stored encrypted; never returned")
    folders: list[Annotated[str, StringConstraints(min_length=1, max_length=255), Clean]] \
        | None = Field(None, max_length=20)


class FolderCursorOut(BaseModel):
    folder: str
    uidvalidity: int
    last_uid: int


class MailAccountOut(BaseModel):
    user: str
    host: str
    port: int
    tls: str
    login: str
    folders: list[str]
    state: Literal["active", "paused"]
    paused_reason: str | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    next_poll_at: datetime
    cursors: list[FolderCursorOut]


class ProbeStepOut(BaseModel):
    name: str
    status: Literal["ok", "failed", "skipped"]
    detail: str


class MailTestOut(BaseModel):
    ok: bool
    paused: bool = Field(description="the login was refused, so polling is paused")
    steps: list[ProbeStepOut]


# --- linked calendar accounts ---------------------------------------------------------------

CalendarName = Annotated[str, StringConstraints(min_length=1, max_length=200), Clean]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
AccountUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000), Clean]
AccountLogin = Annotated[str, StringConstraints(min_length=1, max_length=320), Clean]
LinkProvider = Literal["icloud", "fastmail", "nextcloud", "yahoo", "custom"]


class AccountProbe(Request):
    provider: LinkProvider = Field("custom", description="a preset of the CalDAV URL "
                                   "(iCloud, Fastmail, Yahoo); nextcloud and custom need url")
    url: AccountUrl | None = Field(None, description="the account's CalDAV URL (discovery "
                                   "follows /.well-known/caldav)")
    login: AccountLogin
    password: Secret = Field(description="the (app-specific) password; stored encrypted, "
                                         "never returned")


class LinkCreate(AccountProbe):
    target: CalendarName = Field("CRM", description="the calendar the diary is pushed to "
                                 "(display name or last path segment; made if missing)")
    sources: list[CalendarName] = Field(default_factory=list, max_length=20,
                                        description="calendars whose events are fetched")
    diary_type: TypeName | None = Field(None, description="type of fetched events (default: "
                                        "the first syncable)")


class RemoteCalendarOut(BaseModel):
    url: str
    name: str
    role: Literal["target", "source"] | None = Field(
        description="its part in the link; null: not linked (or not yet linked)")


class AccountTestOut(BaseModel):
    ok: bool
    url: str
    steps: list[ProbeStepOut]
    calendars: list[RemoteCalendarOut]


class LinkedCalendarOut(BaseModel):
    url: str
    name: str
    role: Literal["target", "source"]
    sync: Literal["sync-collection", "ctag", "not yet"]
    pushed: int
    fetched: int
    busy: int
    conflicts: int


class LinkedAccountOut(BaseModel):
    id: int
    url: str
    login: str
    provider: str
    principal: str | None
    home: str | None
    status: str
    direction: Literal["two_way", "crm_to_calendar", "calendar_to_crm"]
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int
    next_sync_at: datetime
    calendars: list[LinkedCalendarOut]


class LinkedAccountList(BaseModel):
    items: list[LinkedAccountOut]


class SyncPassOut(BaseModel):
    link: int
    error: str | None = Field(description="why the pass failed; null when it ran")
    pushed: int
    deleted: int
    fetched: int
    removed: int
    busy: int
    conflicts: list[str]
    refused: list[str]
    requests: int


class SyncPassList(BaseModel):
    items: list[SyncPassOut] = Field(description="one per link; a link another process is "
                                     "syncing right now is left out")


class UnlinkQuery(Query):
    remove_pushed: bool = Field(False, description="first delete from the account every "
                                "event the gateway put there (those changed there since stay)")


class UnlinkOut(BaseModel):
    link: int
    removed: list[str]
    kept: list[str]


class ResetOut(BaseModel):
    link: int
    forgotten: int


class DedupeBody(Request):
    dry_run: bool = Field(True, description="list what would be removed; remove nothing")


class DedupeOut(BaseModel):
    link: int
    dry_run: bool
    duplicates: list[str]
