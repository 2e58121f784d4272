"""The CRM model: the store is the CRM's diary and activity record (docs/ARCHITECTURE.md).

Invariants live in the database: uniqueness of usernames, UIDs, contact emails and
Message-IDs is a constraint; immutability of activities and attachments is a trigger
(see the migrations).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from gateway.clock import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- people ---------------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Diary sync needs an email unique among diary-sync users, case-insensitively.
        Index(
            "uq_users_diary_sync_email",
            func.lower(text("email")),
            unique=True,
            sqlite_where=text("diary_sync"),
            postgresql_where=text("diary_sync"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    email_sync: Mapped[bool] = mapped_column(Boolean, default=True)
    diary_sync: Mapped[bool] = mapped_column(Boolean, default=False)
    # Secret sub-address token for BCC logging (log+<token>@domain).
    bcc_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Mail the rep when an event made in their calendar app lands in the CRM.
    notify_client_adds: Mapped[bool] = mapped_column(Boolean, default=True,
                                                     server_default=true())
    # The first time a calendar app signed in with one of the user's app passwords.
    calendar_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # {"days": [0..6 (Monday 0)], "start": "HH:MM", "end": "HH:MM", "tz": IANA}; NULL: the
    # configured default (gateway.working_hours).
    working_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    app_passwords: Mapped[list[AppPassword]] = relationship(back_populates="user")


class AppPassword(Base):
    """An app password: argon2 hash plus ``lookup``, the password's first group in clear.

    ``lookup`` finds the one live row a presented password can match before argon2 runs
    (unique among a user's live passwords); NULL on passwords issued before it existed, until
    their first successful login fills it in.
    """

    __tablename__ = "app_passwords"
    __table_args__ = (
        Index("uq_app_passwords_live_lookup", "user_id", "lookup", unique=True,
              sqlite_where=text("revoked_at IS NULL"),
              postgresql_where=text("revoked_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    lookup: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="app_passwords")


class SyncProfile(Base):
    """The global default (user_id NULL, exactly one) or a user's overrides (NULL = inherit)."""

    __tablename__ = "sync_profiles"
    __table_args__ = (
        Index("uq_sync_profiles_global", "is_global", unique=True,
              sqlite_where=text("is_global"), postgresql_where=text("is_global")),
        CheckConstraint("records IN ('all', 'related')", name="records"),
        CheckConstraint(
            "direction IN ('two_way', 'crm_to_calendar', 'calendar_to_crm')", name="direction"
        ),
        CheckConstraint("invitations IN ('never', 'always', 'after_first_sync')",
                        name="invitations"),
        CheckConstraint("conflicts IN ('allow', 'warn', 'refuse')", name="conflicts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    is_global: Mapped[bool] = mapped_column(Boolean, default=False)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    records: Mapped[str | None] = mapped_column(String(16))
    direction: Mapped[str | None] = mapped_column(String(32))
    sync_invitees: Mapped[bool | None] = mapped_column(Boolean)
    paused: Mapped[bool | None] = mapped_column(Boolean)
    # Whether the user's mail is logged ("calendar only" turns it off); apart from email_sync,
    # which diary-sync eligibility needs.
    log_email: Mapped[bool | None] = mapped_column(Boolean)
    invitations: Mapped[str | None] = mapped_column(String(20))
    # Global row only: the settings reps may change for themselves on "My sync".
    rep_choices: Mapped[list[str] | None] = mapped_column(JSON)
    # What a CRM-side booking over busy time does (gateway.conflicts).
    conflicts: Mapped[str | None] = mapped_column(String(8))


# --- companies and people outside the firm --------------------------------------------------


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    domains: Mapped[list[AccountDomain]] = relationship(
        back_populates="account", order_by="AccountDomain.domain"
    )


class AccountDomain(Base):
    __tablename__ = "account_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253), unique=True)  # lowercased

    account: Mapped[Account] = relationship(back_populates="domains")


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact", order_by="ContactEmail.id"
    )
    account: Mapped[Account | None] = relationship()


class ContactEmail(Base):
    __tablename__ = "contact_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lowercased

    contact: Mapped[Contact] = relationship(back_populates="emails")


# --- the diary ------------------------------------------------------------------------------


class DiaryType(Base):
    __tablename__ = "diary_types"
    __table_args__ = (CheckConstraint("kind IN ('event', 'task')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    color: Mapped[str] = mapped_column(String(9), default="#3A87AD")
    syncable: Mapped[bool] = mapped_column(Boolean, default=True)
    # "task": the type's calendars are VTODO lists (supported-calendar-component-set VTODO).
    kind: Mapped[str] = mapped_column(String(8), default="event", server_default="event")


class DiaryEntry(Base):
    __tablename__ = "diary_entries"
    __table_args__ = (
        CheckConstraint("origin IN ('crm', 'calendar')", name="origin"),
        Index("ix_diary_entries_organizer", "organizer_user_id", "deleted_at"),
        Index("ix_diary_entries_dedupe", "owner_user_id", "title", "start_utc", "end_utc"),
        Index("uq_diary_entries_owner_uid", "owner_user_id", "uid", unique=True,
              sqlite_where=text("deleted_at IS NULL"),
              postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique per owner among live entries (see __table_args__): two reps may each hold a
    # copy of the same outside invitation.
    uid: Mapped[str] = mapped_column(String(255), index=True)
    # The resource name clients know the entry by; kept as the client chose it.
    href: Mapped[str] = mapped_column(String(255))
    type_id: Mapped[int] = mapped_column(ForeignKey("diary_types.id"), index=True)
    # Whose type calendar holds the entry: the CRM organiser, or the user whose client PUT it
    # (the ORGANIZER may then be someone outside the CRM). NULL for automation entries.
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    organizer_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    organizer_email: Mapped[str | None] = mapped_column(String(320))
    organizer_name: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    tzid: Mapped[str | None] = mapped_column(String(64))
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    rrule: Mapped[str | None] = mapped_column(Text)
    # Whole span of the series (overrides included); NULL end = never ends.
    span_start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    span_end_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    has_overrides: Mapped[bool] = mapped_column(Boolean, default=False)
    # A task's (VTODO's) fields, NULL for events and when absent. For a task, start_utc and
    # end_utc are the range it occupies for time-range queries (RFC 4791 9.9), and
    # task_start_utc its DTSTART.
    task_start_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    priority: Mapped[int | None] = mapped_column(Integer)
    percent_complete: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(16), default="crm")
    automation: Mapped[bool] = mapped_column(Boolean, default=False)
    # False when the event is TRANSP:TRANSPARENT or STATUS:CANCELLED: it is not busy time.
    busy: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    ical: Mapped[str] = mapped_column(Text)  # what a client sent, verbatim, or the CRM rendering
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every change. Also the row's version: each UPDATE is a compare-and-set
    # (``WHERE revision = <as read>``), so of two writers that read the same revision only
    # the first commits; the ORM raises StaleDataError in the other.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __mapper_args__ = {"version_id_col": revision, "version_id_generator": False}

    type: Mapped[DiaryType] = relationship()
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_user_id])
    organizer: Mapped[User | None] = relationship(foreign_keys=[organizer_user_id])
    participants: Mapped[list[EntryParticipant]] = relationship(
        back_populates="entry", order_by="EntryParticipant.id", cascade="all, delete-orphan"
    )


class EntryParticipant(Base):
    __tablename__ = "entry_participants"
    __table_args__ = (UniqueConstraint("entry_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("diary_entries.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))  # lowercased
    name: Mapped[str | None] = mapped_column(String(200))  # CN as the client gave it
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    partstat: Mapped[str] = mapped_column(String(32), default="NEEDS-ACTION")

    entry: Mapped[DiaryEntry] = relationship(back_populates="participants")
    user: Mapped[User | None] = relationship()
    contact: Mapped[Contact | None] = relationship()


class Calendar(Base):
    """One published calendar of one user: a type calendar or the invitations calendar.

    ``revision`` is the calendar's change counter (getctag, sync tokens); ``epoch`` changes
    when its sync is reset so older tokens are refused.
    """

    __tablename__ = "calendars"
    __table_args__ = (UniqueConstraint("user_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(100))
    diary_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("diary_types.id", ondelete="CASCADE")
    )
    revision: Mapped[int] = mapped_column(Integer, default=0)
    epoch: Mapped[int] = mapped_column(Integer, default=1)
    # Cosmetic properties a client set with PROPPATCH (colour, order, default alarms).
    props: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublishedItem(Base):
    """What one calendar shows of one entry, or a tombstone once it stopped showing it."""

    __tablename__ = "published_items"
    __table_args__ = (
        UniqueConstraint("calendar_id", "entry_id"),
        UniqueConstraint("calendar_id", "href"),
        Index("ix_published_items_entry", "entry_id"),  # publication finds an entry's rows
        Index("ix_published_items_sync", "calendar_id", "revision"),
        Index("ix_published_items_range", "calendar_id", "deleted", "start_utc", "end_utc"),
        # Free/busy expands the few series indexed only up to a horizon itself.
        Index("ix_published_items_horizon", "calendar_id", "horizon_utc"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("diary_entries.id", ondelete="CASCADE"))
    href: Mapped[str] = mapped_column(String(255))
    uid: Mapped[str] = mapped_column(String(255))
    ical: Mapped[str] = mapped_column(Text, default="")
    etag: Mapped[str] = mapped_column(String(80), default="")
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)  # NULL: never ends
    # Occurrences are indexed up to here; a query reaching past it is answered inexactly
    # (Radicale expands the series itself). NULL: every occurrence is indexed.
    horizon_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Occurrence(Base):
    """One instance of a published item, for exact time-range queries in SQL.

    Instances up to ``LONG`` long are found by a range scan on ``start_utc`` alone; longer
    ones are flagged ``long`` and checked separately (there are few of them).
    """

    __tablename__ = "occurrences"
    __table_args__ = (
        Index("ix_occurrences_range", "calendar_id", "long", "start_utc"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("published_items.id", ondelete="CASCADE"), index=True
    )
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    long: Mapped[bool] = mapped_column(Boolean, default=False)


# --- email activities -----------------------------------------------------------------------


class Blob(Base):
    """Content-addressed bytes (attachments, raw messages), deduplicated by SHA-256."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Activity(Base):
    """A logged email. Immutable: triggers refuse UPDATE and DELETE."""

    __tablename__ = "activities"
    __table_args__ = (
        CheckConstraint("direction IN ('sent', 'received')", name="direction"),
        CheckConstraint("source IN ('bcc', 'imap')", name="source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Normalised Message-ID ("mid:...") or a fingerprint ("fp:...") when there is none.
    message_key: Mapped[str] = mapped_column(String(512), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(512))
    direction: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text, default="")
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    notes: Mapped[str | None] = mapped_column(Text)  # e.g. why parsing stopped early
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")
    links: Mapped[list[ActivityLink]] = relationship(order_by="ActivityLink.id")


class ActivityLink(Base):
    """Who an activity concerns. Links are only ever added (a second arrival adds its user)."""

    __tablename__ = "activity_links"
    __table_args__ = (
        # NULLs are distinct in a UNIQUE constraint, hence one partial index per target kind.
        *(
            Index(f"uq_activity_links_{column}", "activity_id", column, unique=True,
                  sqlite_where=text(f"{column} IS NOT NULL"),
                  postgresql_where=text(f"{column} IS NOT NULL"))
            for column in ("user_id", "contact_id", "account_id")
        ),
        CheckConstraint(
            "CASE WHEN user_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN contact_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN account_id IS NULL THEN 0 ELSE 1 END = 1",
            name="one_target",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Attachment(Base):
    """An attachment of an activity. Immutable: triggers refuse UPDATE and DELETE."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id"), index=True)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(255))


# --- intake ---------------------------------------------------------------------------------


class InboundMessage(Base):
    """The durable inbound queue: raw bytes committed before the SMTP 250."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'done', 'skipped', 'failed')", name="status"
        ),
        Index("ix_inbound_messages_due", "status", "next_attempt_at"),
        # A rep's last decisions ("My sync"): one index range, newest first.
        Index("ix_inbound_messages_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16), default="bcc")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    peer: Mapped[str | None] = mapped_column(String(100))
    mail_from: Mapped[str] = mapped_column(String(320), default="")
    rcpt_tos: Mapped[list[str]] = mapped_column(JSON, default=list)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # attributed sender
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decision: Mapped[str | None] = mapped_column(Text)  # what happened and why
    last_error: Mapped[str | None] = mapped_column(Text)
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MailAccount(Base):
    """A rep's mailbox polled over IMAP. The secret is encrypted with the configured key."""

    __tablename__ = "mail_accounts"
    __table_args__ = (CheckConstraint("tls IN ('ssl', 'starttls', 'none')", name="tls"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    tls: Mapped[str] = mapped_column(String(16))
    login: Mapped[str] = mapped_column(String(320))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    folders: Mapped[list[str]] = mapped_column(JSON, default=list)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MailFolderCursor(Base):
    __tablename__ = "mail_folder_cursors"
    __table_args__ = (UniqueConstraint("mail_account_id", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_account_id: Mapped[int] = mapped_column(
        ForeignKey("mail_accounts.id", ondelete="CASCADE")
    )
    folder: Mapped[str] = mapped_column(String(255))
    # IMAP UIDs and UIDVALIDITY are unsigned 32-bit: too large for a signed INTEGER.
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- the installation -----------------------------------------------------------------------


class KeyFingerprint(Base):
    """A fingerprint of a configured key (e.g. ``security.secret_key``) that every process on
    this database must share; the key itself is never stored."""

    __tablename__ = "key_fingerprints"

    option: Mapped[str] = mapped_column(String(100), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- webhooks -------------------------------------------------------------------------------


class WebhookEndpoint(Base):
    """A URL the CRM application receives events at; the signing secret is encrypted with the
    configured key and shown only once, when the endpoint is made."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)  # types or "group.*" patterns
    description: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    """One event of the outbox, written in the transaction of the change it reports. The id is
    the Standard Webhooks ``webhook-id``, the same on every attempt and replay."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event owed to one endpoint, leased to one deliverer at a time."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookAttempt(Base):
    """One try at a delivery: the HTTP status, or why there was none."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


# --- outbound mail ---------------------------------------------------------------------------


class OutboundMail(Base):
    """One message owed to one recipient, written in the transaction of the change that
    causes it, as the exact bytes to send: every attempt sends the same Message-ID. A lease
    (``lease_owner`` until ``lease_until``) marks it being sent by one process."""

    __tablename__ = "outbound_mails"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        CheckConstraint("kind IN ('notification', 'request', 'cancel')", name="kind"),
        Index("ix_outbound_mails_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True)
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("diary_entries.id", ondelete="SET NULL"), index=True)
    sender: Mapped[str] = mapped_column(String(320))  # the envelope's MAIL FROM
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by 'outbound retry': the retry window starts again from here.
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboundAttempt(Base):
    """One try at sending a mail: the smarthost's reply code and text, or why there was none."""

    __tablename__ = "outbound_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_id: Mapped[int] = mapped_column(
        ForeignKey("outbound_mails.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    code: Mapped[int | None] = mapped_column(Integer)
    reply: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


# --- the JSON API ---------------------------------------------------------------------------


class ApiToken(Base):
    """A bearer token of the JSON API: SHA-256 of the secret, found by its clear ``lookup``."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("scope IN ('admin', 'read')", name="scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiIdempotency(Base):
    """The first answer to a POST with an ``Idempotency-Key``, written with what it created."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of method, path and body
    status: Mapped[int] = mapped_column(Integer)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Keyset pages of the API: each list is an index range scan from the cursor on.
Index("ix_diary_entries_owner_page", DiaryEntry.owner_user_id, DiaryEntry.id)
# A PUT looks for the owner's deleted entry of a UID (the partial unique index holds only live
# ones): without this, that lookup scans every entry of the owner.
Index("ix_diary_entries_owner_uid_any", DiaryEntry.owner_user_id, DiaryEntry.uid)
Index("ix_activity_links_user_page", ActivityLink.user_id, ActivityLink.activity_id)
Index("ix_activity_links_contact_page", ActivityLink.contact_id, ActivityLink.activity_id)
Index("ix_activity_links_account_page", ActivityLink.account_id, ActivityLink.activity_id)
Index("ix_inbound_messages_status_page", InboundMessage.status, InboundMessage.id)
Index("ix_contacts_account_page", Contact.account_id, Contact.id)


# --- linked calendars: reps' own CalDAV accounts the gateway syncs as a client ---------------


class LinkedAccount(Base):
    """A rep's own CalDAV account. The password is encrypted with the configured key; the
    lease columns say which process syncs it now (compare-and-set, like mail accounts)."""

    __tablename__ = "linked_accounts"
    __table_args__ = (
        UniqueConstraint("user_id", "url", "login"),
        CheckConstraint("status IN ('active', 'paused')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    login: Mapped[str] = mapped_column(String(320))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    provider: Mapped[str] = mapped_column(String(20), default="custom")
    principal_url: Mapped[str | None] = mapped_column(String(2000))
    home_url: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Per gateway calendar id: [epoch, revision] of its published rows already pushed.
    push_cursors: Mapped[dict[str, list[int]]] = mapped_column(JSON, default=dict)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_sync_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkedCalendar(Base):
    """One calendar of a linked account: the ``target`` the diary is pushed to, or a
    ``source`` whose events are fetched (into ``diary_type_id``)."""

    __tablename__ = "linked_calendars"
    __table_args__ = (
        UniqueConstraint("account_id", "url"),
        CheckConstraint("role IN ('target', 'source')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("linked_accounts.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    name: Mapped[str] = mapped_column(String(255), default="")
    role: Mapped[str] = mapped_column(String(10))
    diary_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("diary_types.id", ondelete="SET NULL")
    )
    sync_token: Mapped[str | None] = mapped_column(Text)
    ctag: Mapped[str | None] = mapped_column(Text)


class LinkedObject(Base):
    """One event in a linked calendar the gateway knows: its href and ETag there, the entry
    it stands for, and what of that entry was last pushed or fetched (``entry_revision``).

    ``busy_*`` hold the time of a fetched event that only counts as busy time; ``conflict_*``
    keep the side that lost the last conflicting edit, so it is never lost silently."""

    __tablename__ = "linked_objects"
    __table_args__ = (UniqueConstraint("calendar_id", "href"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(
        ForeignKey("linked_calendars.id", ondelete="CASCADE")
    )
    href: Mapped[str] = mapped_column(String(2000))
    etag: Mapped[str | None] = mapped_column(String(255))
    uid: Mapped[str] = mapped_column(String(255), default="")
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("diary_entries.id", ondelete="SET NULL"), index=True
    )
    pushed: Mapped[bool] = mapped_column(Boolean, default=False)  # the gateway created it
    entry_revision: Mapped[int | None] = mapped_column(Integer)
    shown_etag: Mapped[str | None] = mapped_column(String(80))  # the gateway's own view's
    busy_start_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    busy_end_utc: Mapped[datetime | None] = mapped_column(UTCDateTime)
    conflict_ical: Mapped[str | None] = mapped_column(Text)
    conflict_note: Mapped[str | None] = mapped_column(Text)
    conflict_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- web sign-in for people -----------------------------------------------------------------


class WebLogin(Base):
    """A person's web password (argon2; never a CalDAV login) and session version: a session
    cookie names the version it was issued under, and bumping it ends every such session."""

    __tablename__ = "web_logins"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebInvitation(Base):
    """A one-time link to set a web password: SHA-256 of the token, an expiry, used once."""

    __tablename__ = "web_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- calendar feeds and replies to invitations ----------------------------------------------


class FeedToken(Base):
    """A rep's secret feed URL (``/feeds/<token>.ics``): SHA-256 of the token, found by its
    clear ``lookup``. One per user; making a new one replaces it, revoking deletes it."""

    __tablename__ = "feed_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InvitationReply(Base):
    """An attendee's iMIP REPLY that arrived with a logged mail, and what it did: the
    participant's new PARTSTAT (``applied``) or why nothing changed (``ignored``)."""

    __tablename__ = "invitation_replies"
    __table_args__ = (
        CheckConstraint("outcome IN ('applied', 'ignored')", name="outcome"),
        UniqueConstraint("message_key", "uid", "attendee"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_key: Mapped[str] = mapped_column(String(512), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)  # whose mail it came in
    uid: Mapped[str] = mapped_column(String(255))
    attendee: Mapped[str] = mapped_column(String(320))
    partstat: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("diary_entries.id", ondelete="SET NULL"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- availability and conflicts -------------------------------------------------------------


class FreeBusyToken(Base):
    """A rep's secret free/busy URL (``/freebusy/t/<token>.ifb``), stored as feed tokens are:
    SHA-256 of the token found by its clear ``lookup``; one per user, revoking deletes it."""

    __tablename__ = "freebusy_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EntryConflict(Base):
    """Busy time of ``user_id`` that ``entry_id`` overlapped when it was last written: another
    entry of theirs, or a busy time fetched from a linked calendar (``other_entry_id`` NULL).
    Rewritten with every write of the entry; ``source`` says which side wrote it."""

    __tablename__ = "entry_conflicts"
    __table_args__ = (
        CheckConstraint("source IN ('crm', 'calendar')", name="source"),
        Index("ix_entry_conflicts_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("diary_entries.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    other_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("diary_entries.id", ondelete="CASCADE"))
    other_title: Mapped[str] = mapped_column(Text, default="")
    other_calendar: Mapped[str] = mapped_column(String(255), default="")
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
