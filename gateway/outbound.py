"""The outbound mail outbox: mail the gateway means to send, written with the change causing it.

``enqueue`` adds one row per recipient in the caller's transaction, holding the exact message
to send (its Message-ID fixed then): a rolled-back change sends nothing, a committed one is
never lost, and every attempt sends the same bytes. The "outbound" role of ``serve``
(``delivery.outbound``) sends what is due through the smarthost; ``gateway.outbound_leases``
hands mail out and records each attempt. With no smarthost configured (``outbound.smtp_url``
empty or ``outbound.enabled`` false) the process has no settings and nothing is queued.

The settings travel with the store's write sessions (``session.info``): every entry point
that opens a store from the configuration (the CLI, ``serve``, the storage plugin) attaches
them, so the services decide from the session they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.config import Config, ConfigError, public_base_url
from gateway.db import Store
from gateway.errors import Invalid, NotFound
from gateway.models import OutboundAttempt, OutboundMail

PENDING, SENT, FAILED = "pending", "sent", "failed"
STATUSES = (PENDING, SENT, FAILED)
NOTIFICATION, REQUEST, CANCEL = "notification", "request", "cancel"
KINDS = (NOTIFICATION, REQUEST, CANCEL)
MAX_PAGE = 500
_INFO_KEY = "outbound.settings"


@dataclass(frozen=True)
class OutboundSettings:
    """What the core needs to write mail: who it is from, and where people read entries."""

    from_address: str
    send_as_organizer: bool = False
    public_url: str = ""  # where people reach the pages (config.public_base_url)

    @property
    def domain(self) -> str:
        return self.from_address.rpartition("@")[2]


def settings_from(config: Config) -> OutboundSettings | None:
    """The settings when the gateway sends mail, else None; a smarthost without a
    from_address is a ConfigError."""
    if not config.get("outbound", "enabled") or not config.get("outbound", "smtp_url"):
        return None
    sender = config.get("outbound", "from_address")
    if not sender:
        raise ConfigError("outbound.from_address: needed when outbound.smtp_url is set "
                          "(the address the gateway's mail comes from)")
    return OutboundSettings(sender, bool(config.get("outbound", "send_as_organizer")),
                            public_base_url(config))


def attach(store: Store, settings: OutboundSettings | None) -> None:
    """Let the store's write sessions carry ``settings`` (None: send nothing)."""
    info = dict(store.sessions.kw.get("info") or {})
    if settings is None:
        info.pop(_INFO_KEY, None)
    else:
        info[_INFO_KEY] = settings
    store.sessions.configure(info=info)


def attach_config(store: Store, config: Config) -> None:
    attach(store, settings_from(config))


def store_settings(store: Store) -> OutboundSettings | None:
    """The settings attached to ``store``, or None when it sends no mail."""
    found = (store.sessions.kw.get("info") or {}).get(_INFO_KEY)
    return found if isinstance(found, OutboundSettings) else None


def settings_of(session: Session) -> OutboundSettings | None:
    """The settings of this session's store, or None when no mail is sent."""
    found = session.info.get(_INFO_KEY)
    return found if isinstance(found, OutboundSettings) else None


def address_of(message: EmailMessage, header: str) -> str:
    return parseaddr(str(message[header] or ""))[1].lower()


def enqueue(session: Session, kind: str, message: EmailMessage, *, user_id: int | None,
            entry_id: int | None, settings: OutboundSettings) -> int:
    """Queue ``message`` (one recipient in To, a Message-ID set) in the caller's transaction;
    returns the row's id."""
    assert kind in KINDS, kind
    recipient = address_of(message, "To")
    assert recipient and message["Message-ID"], "a queued mail needs To and Message-ID"
    now = utcnow()
    result = session.execute(insert(OutboundMail).values(
        message_id=str(message["Message-ID"]).strip("<> "), kind=kind, user_id=user_id,
        entry_id=entry_id, sender=settings.from_address, recipient=recipient,
        subject=str(message["Subject"] or ""), message=message.as_string(policy=SMTP),
        status=PENDING, attempts=0, next_attempt_at=now, created_at=now,
    ).returning(OutboundMail.id))
    return int(result.scalar_one())


# --- what was sent, and sending again -----------------------------------------------------------


def list_mails(session: Session, *, status: str | None = None, limit: int = 100,
               cursor: int | None = None) -> list[OutboundMail]:
    """Mail newest first, at most ``limit`` (capped at 500); ``cursor`` is the id of the last
    mail of the previous page."""
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    query = (select(OutboundMail).order_by(OutboundMail.id.desc())
             .limit(max(1, min(limit, MAX_PAGE))))
    if status is not None:
        query = query.where(OutboundMail.status == status)
    if cursor is not None:
        query = query.where(OutboundMail.id < cursor)
    return list(session.scalars(query))


def get_mail(session: Session, mail_id: int) -> tuple[OutboundMail, list[OutboundAttempt]]:
    mail = session.get(OutboundMail, mail_id)
    if mail is None:
        raise NotFound(f"no outbound mail {mail_id}")
    attempts = list(session.scalars(select(OutboundAttempt)
                                    .where(OutboundAttempt.mail_id == mail_id)
                                    .order_by(OutboundAttempt.id)))
    return mail, attempts


def retry(session: Session, mail_id: int) -> OutboundMail:
    """Make a failed (or waiting) mail due now, with a fresh retry window; a sent one is
    refused: it is never sent twice on purpose."""
    mail = session.get(OutboundMail, mail_id, with_for_update=True)
    if mail is None:
        raise NotFound(f"no outbound mail {mail_id}")
    if mail.status == SENT:
        raise Invalid(f"outbound mail {mail_id} was sent at {iso(mail.sent_at)}; "
                      "it is not sent again")
    now = utcnow()
    mail.status = PENDING
    mail.next_attempt_at = now
    mail.retried_at = now
    session.flush()
    return mail


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def shown_status(mail: OutboundMail, now: datetime | None = None) -> str:
    """``sending`` while a sender holds the lease of a pending mail, else the stored status."""
    now = now or utcnow()
    if mail.status == PENDING and mail.lease_until is not None and mail.lease_until > now:
        return "sending"
    return mail.status


def describe_mail(mail: OutboundMail) -> dict[str, Any]:
    """A mail as plain values, without its body."""
    return {
        "id": mail.id, "message_id": mail.message_id, "kind": mail.kind,
        "status": shown_status(mail), "recipient": mail.recipient, "sender": mail.sender,
        "subject": mail.subject, "entry_id": mail.entry_id, "attempts": mail.attempts,
        "next_attempt_at": iso(mail.next_attempt_at) if mail.status == PENDING else None,
        "last_code": mail.last_code, "last_reply": mail.last_reply,
        "sent_at": iso(mail.sent_at), "created_at": iso(mail.created_at),
    }


def describe_attempt(attempt: OutboundAttempt) -> dict[str, Any]:
    return {"at": iso(attempt.attempted_at), "code": attempt.code, "reply": attempt.reply,
            "duration_ms": attempt.duration_ms}
