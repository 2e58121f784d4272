"""Every process on one database uses the same ``security.secret_key``.

The database keeps a fingerprint of the key (an HMAC of a fixed text under it; the key
itself is never stored). The first process records its key's fingerprint, and only if that
key opens the mailbox and webhook secrets already stored; every later one must match it or
refuses to start. Two first starts racing are decided by the table's primary key.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.db import Store
from gateway.errors import DomainError
from gateway.models import KeyFingerprint, MailAccount, WebhookEndpoint
from gateway.secrets import SecretBox, SecretError

OPTION = "security.secret_key"
_MESSAGE = b"crm-gateway key fingerprint v1"


class KeyMismatch(DomainError):
    """This process's key is not the one the database was set up with."""


def fingerprint(secret_key: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), _MESSAGE, hashlib.sha256).hexdigest()


def check_key(store: Store, secret_key: str) -> None:
    """Record the key's fingerprint on first use; raise `KeyMismatch` if it differs."""
    mine = fingerprint(secret_key)
    for _ in range(2):  # a second pass only after losing the race to record first
        with store.reading() as session:
            stored = session.get(KeyFingerprint, OPTION)
            if stored is not None:
                if not hmac.compare_digest(stored.fingerprint, mine):
                    raise KeyMismatch(_differs(stored))
                return
        _opens_stored_secrets(store, secret_key)
        try:
            with store.transaction() as session:
                session.add(KeyFingerprint(option=OPTION, fingerprint=mine))
            return
        except IntegrityError:
            continue
    raise KeyMismatch(f"{OPTION}: cannot record its fingerprint")  # pragma: no cover


def record_key(store: Store, secret_key: str) -> bool:
    """Make this key the installation's key (after a deliberate change of it); returns
    whether the recorded fingerprint changed."""
    mine = fingerprint(secret_key)
    with store.transaction() as session:
        stored = session.get(KeyFingerprint, OPTION, with_for_update=True)
        if stored is None:
            session.add(KeyFingerprint(option=OPTION, fingerprint=mine))
            return True
        if stored.fingerprint == mine:
            return False
        stored.fingerprint = mine
        return True


def _opens_stored_secrets(store: Store, secret_key: str) -> None:
    with store.reading() as session:
        samples = (
            ("mailbox passwords",
             session.scalar(select(MailAccount.secret).order_by(MailAccount.id).limit(1))),
            ("webhook secrets",
             session.scalar(select(WebhookEndpoint.secret).order_by(WebhookEndpoint.id)
                            .limit(1))),
        )
    for what, sample in samples:
        if sample is None:
            continue
        try:
            SecretBox(secret_key).decrypt(sample)
        except SecretError:
            raise KeyMismatch(
                f"{OPTION} does not open the {what} stored in this database: give "
                "this process the key the others use (or run 'crm-gateway db record-key' "
                "after a deliberate change of it)"
            ) from None


def _differs(stored: KeyFingerprint) -> str:
    when = stored.recorded_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{OPTION} differs from the key this database was set up with (recorded {when}): "
        "give every process the same security.secret_key (or CRM_GATEWAY_SECURITY_SECRET_KEY)"
    )
