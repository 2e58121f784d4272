"""The decisions of the SMTP edge, as plain blocking functions run off the event loop.

``check_rcpt`` answers RCPT TO. ``admit`` takes a whole message: it works out whose mail it
is (secret addresses name their user; the shared address needs an authenticated CRM sender),
and commits the raw bytes to the inbound queue before the caller may answer 250 (a copy
proven by DKIM alone without the fields its signature does not cover: see `signed_view`).
Nothing is parsed beyond the top-level header block here: the real work happens later, from
the queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bcc_ingest.smtp.sender_auth import DnsFunction, IpNetwork, dkim_signed_fields, in_networks
from bcc_ingest.smtp.signed_view import repeated_fields, signed_view
from gateway.bcc_addresses import (
    SHARED,
    USER,
    RecipientCheck,
    check_recipient,
    check_sender,
)
from gateway.db import Store
from gateway.inbound_queue import durable_transaction, enqueue
from gateway.mail.headers import parse_headers

log = logging.getLogger(__name__)

DKIM = "dkim"
TRUSTED_NETWORKS = "trusted_networks"


@dataclass(frozen=True)
class IntakeSettings:
    logging_address: str
    sender_auth: frozenset[str]  # DKIM and/or TRUSTED_NETWORKS
    trusted_networks: tuple[IpNetwork, ...]
    dkim_dns: DnsFunction | None  # None: real DNS


@dataclass(frozen=True)
class Delivery:
    """What one SMTP transaction carried.

    ``recipients``: the RCPT-time verdict on each of ``rcpt_tos``, a user id for a secret
    address or None for the shared one; None when not known yet (``admit`` then checks).
    """

    peer_host: str | None
    peer: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    recipients: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class Admission:
    queued: tuple[int, ...]  # inbound row ids; empty: refused
    note: str | None  # why it was refused, or why the shared copy was not attributed
    left_out: tuple[str, ...] = ()  # fields of the shared copy its DKIM signature did not cover


@dataclass(frozen=True)
class _Proof:
    """Whether the shared copy's sender is proven, and the bytes that may be logged."""

    refusal: str | None
    raw: bytes = b""
    left_out: tuple[str, ...] = ()


def check_rcpt(store: Store, settings: IntakeSettings, address: str) -> RecipientCheck:
    with store.reading() as session:
        return check_recipient(session, address, settings.logging_address)


def _recipients(store: Store, settings: IntakeSettings, delivery: Delivery
                ) -> tuple[int | None, ...]:
    if delivery.recipients is not None:
        return delivery.recipients
    with store.reading() as session:
        checks = [check_recipient(session, rcpt, settings.logging_address)
                  for rcpt in delivery.rcpt_tos]
    return tuple(c.user_id if c.kind == USER else None for c in checks
                 if c.kind in (USER, SHARED))


def admit(store: Store, settings: IntakeSettings, delivery: Delivery) -> Admission:
    """Queue the message for every user it is attributed to, or refuse it.

    A secret address's user gets the message as it came; a user the shared address is
    attributed to by DKIM gets it without the fields the signature does not cover.
    """
    recipients = _recipients(store, settings, delivery)
    users = list(dict.fromkeys(r for r in recipients if r is not None))
    shared: list[int] = []
    proof = _Proof(None)
    note = None
    if None in recipients:  # the shared address: whose mail is it, and is that proven?
        sender = parse_headers(delivery.raw).sender
        header_from = sender.email if sender is not None else ""
        with store.reading() as session:
            verdict = check_sender(session, delivery.mail_from, header_from)
        # Authentication runs outside any transaction: DKIM may wait on DNS.
        if verdict.refusal is None:
            proof = _prove(settings, delivery, header_from)
        note = verdict.refusal or proof.refusal
        if note is None:
            shared = [user_id for user_id in verdict.user_ids if user_id not in users]
    if not users and not shared:
        return Admission((), note or "no recipient names a user")
    with durable_transaction(store) as session:
        ids: list[int] = []
        for raw, user_ids in ((delivery.raw, users), (proof.raw, shared)):
            if user_ids:
                ids += enqueue(
                    session, raw=raw, user_ids=user_ids, peer=delivery.peer,
                    mail_from=delivery.mail_from, rcpt_tos=delivery.rcpt_tos,
                )
    return Admission(tuple(ids), note, proof.left_out if shared else ())


def _prove(settings: IntakeSettings, delivery: Delivery, header_from: str) -> _Proof:
    """Proof by one configured means that the sender is who From names, or why there is none."""
    if TRUSTED_NETWORKS in settings.sender_auth and in_networks(
        delivery.peer_host, settings.trusted_networks
    ):
        return _Proof(None, delivery.raw)
    from_domain = header_from.rpartition("@")[2]
    if DKIM in settings.sender_auth and from_domain:
        repeated = repeated_fields(delivery.raw)
        if repeated:
            # RFC 6376 section 8.15: the signature may cover one instance, the parser reads
            # another.
            return _Proof(f"not authenticated by DKIM: {', '.join(repeated)} "
                          "occurs more than once")
        signed = dkim_signed_fields(delivery.raw, from_domain, settings.dkim_dns)
        if signed is not None:
            raw, removed = signed_view(delivery.raw, signed)
            return _Proof(None, raw, tuple(removed))
    means = " or ".join(sorted(settings.sender_auth)) or "none configured"
    return _Proof(f"sender not authenticated (means: {means})")
