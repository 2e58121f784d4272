"""BCC logging addresses, their secret tokens, and whose mail they log (docs/ARCHITECTURE.md).

Two kinds of address are accepted: the shared ``smtp.logging_address`` (``log@domain``) and each
user's secret sub-address ``log+<token>@domain``. Mail to a secret address is the token
holder's. Mail to the shared address is attributed only to a sender that is a CRM user with
email sync on in both the envelope and the From header, and to one user only; proving that
the message really comes from them (DKIM, trusted relay) is the SMTP edge's part.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import User

SHARED = "shared"  # the shared logging address
USER = "user"  # a user's secret address, user_id says whose
UNKNOWN = "unknown"  # not ours: refused at RCPT, never relayed
SYNC_OFF = "sync_off"  # a user's secret address, but their email sync is off


@dataclass(frozen=True)
class RecipientCheck:
    kind: str
    user_id: int | None = None


@dataclass(frozen=True)
class SenderCheck:
    """The one user the sender is, or why there is none.

    An address several users share is the diary-sync user's; with none of them, nobody's.
    """

    user_ids: tuple[int, ...]
    refusal: str | None  # for the server's log only: never sent to the client


def _split(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    return local, domain


def new_bcc_token() -> str:
    # 16 hex digits (64 bits): unguessable, and survives a local part being case-folded.
    return secrets.token_hex(8)


def user_address(user: User, logging_address: str) -> str:
    """The user's secret logging address (``log+<token>@domain``)."""
    local, domain = _split(logging_address)
    return f"{local}+{user.bcc_token}@{domain}"


def bcc_address(session: Session, user: User, logging_address: str, *, rotate: bool) -> str:
    """The user's secret address; ``rotate`` (or a user without a token yet) issues a new one,
    after which the old address is refused."""
    if rotate or not user.bcc_token:
        user.bcc_token = new_bcc_token()
        session.flush()
    return user_address(user, logging_address)


def check_recipient(session: Session, address: str, logging_address: str) -> RecipientCheck:
    local, domain = _split(address)
    base, base_domain = _split(logging_address)
    if not local or domain != base_domain:
        return RecipientCheck(UNKNOWN)
    if local == base:
        return RecipientCheck(SHARED)
    token = local.removeprefix(base + "+")
    if token == local or not token:
        return RecipientCheck(UNKNOWN)
    user = session.scalar(select(User).where(User.bcc_token == token))
    if user is None:
        return RecipientCheck(UNKNOWN)
    if not user.email_sync:
        return RecipientCheck(SYNC_OFF, user.id)
    return RecipientCheck(USER, user.id)


def check_sender(session: Session, mail_from: str, header_from: str | None) -> SenderCheck:
    """Who mail to the shared address is from, judged by envelope sender and From header."""
    envelope = mail_from.strip().strip("<>").lower()
    header = (header_from or "").lower()
    if not envelope or not header:
        return SenderCheck((), "no envelope sender or no From header")
    if envelope != header:
        return SenderCheck((), "envelope sender and From header differ")
    users = list(session.scalars(
        select(User).where(func.lower(User.email) == envelope).order_by(User.id)
    ))
    if not users:
        return SenderCheck((), "sender is not a CRM user")
    enabled = [user for user in users if user.email_sync]
    if not enabled:
        return SenderCheck((), "email sync is off for the sender")
    if len(enabled) > 1:
        # At most one diary-sync user has an address (a partial unique index): the address
        # is theirs. Otherwise nothing says whose mail it is, and logging it for all is wrong.
        enabled = [user for user in enabled if user.diary_sync] or enabled
    if len(enabled) > 1:
        names = ", ".join(user.username for user in enabled)
        return SenderCheck((), f"the sender's address belongs to {len(enabled)} users with "
                               f"email sync ({names}) and none has diary sync: each must log "
                               "through their secret address")
    return SenderCheck((enabled[0].id,), None)
