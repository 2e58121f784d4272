"""API tokens: bearer credentials of the JSON API, never of CalDAV.

A token is ``cgw_<lookup>_<secret>``; only the SHA-256 of the whole token is stored, with the
clear ``lookup`` to find its row in one indexed query. The token has ~190 bits of randomness,
so a fast hash is enough (argon2 guards guessable passwords, not random keys). Scope ``admin``
may do everything, ``read`` only reads. A revoked token is refused on its next request: every
request reads the row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.errors import Conflict, Invalid, NotFound
from gateway.models import ApiToken

ADMIN = "admin"
READ = "read"
SCOPES = (ADMIN, READ)
PREFIX = "cgw_"
_SHAPE = re.compile(r"cgw_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})")
_NAME_LIMIT = 100
# last_used_at is a hint for the admin, not an audit log: write it at most once a minute.
USE_RECORD_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    id: int
    name: str
    scope: str
    token: str  # shown once


@dataclass(frozen=True)
class Bearer:
    """Who a request's token is: enough to authorise it, nothing secret."""

    id: int
    name: str
    scope: str
    use_due: bool = False  # last_used_at is older than USE_RECORD_INTERVAL

    @property
    def may_write(self) -> bool:
        return self.scope == ADMIN


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise Invalid(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return scope


def create_token(session: Session, name: str, scope: str = ADMIN) -> IssuedToken:
    name = name.strip()
    if not name or len(name) > _NAME_LIMIT or name.isdigit():
        raise Invalid("a token name has 1 to 100 characters and is not only digits")
    check_scope(scope)
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"an API token named {name!r} already exists")
    lookup = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    token = f"{PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    row = ApiToken(name=name, scope=scope, lookup=lookup, secret_sha256=_digest(token))
    session.add(row)
    session.flush()  # the unique constraints decide a race between two issuers
    return IssuedToken(row.id, name, scope, token)


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def find_token(session: Session, id_or_name: str) -> ApiToken:
    """A token by its id (digits) or its name."""
    query = select(ApiToken)
    if id_or_name.isdigit():
        query = query.where(ApiToken.id == int(id_or_name))
    else:
        query = query.where(ApiToken.name == id_or_name)
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"no API token {id_or_name!r}")
    return row


def revoke_token(session: Session, id_or_name: str) -> ApiToken:
    row = find_token(session, id_or_name)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def authenticate(session: Session, token: str, now: datetime | None = None) -> Bearer | None:
    """The live token ``token`` is, or None. Reads only: ``use_due`` says whether to
    ``record_use`` (at most once a minute, so reads do not all become writes)."""
    shape = _SHAPE.fullmatch(token)
    if shape is None:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.lookup == shape.group(1)))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_sha256, _digest(token)):
        return None
    now = now or utcnow()
    due = row.last_used_at is None or now - row.last_used_at >= USE_RECORD_INTERVAL
    return Bearer(row.id, row.name, row.scope, use_due=due)


def record_use(session: Session, token_id: int, now: datetime | None = None) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id)
                    .values(last_used_at=now or utcnow()))
