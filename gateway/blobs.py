"""Content-addressed bytes: attachments and raw messages, stored once per SHA-256."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.models import Blob
from gateway.upsert import insert_or_nothing


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_blob(session: Session, data: bytes) -> str:
    """Store ``data`` unless the same bytes are stored already; returns its SHA-256."""
    digest = sha256_hex(data)
    # The look-up only spares sending large bytes again; the insert decides.
    if session.scalar(select(Blob.sha256).where(Blob.sha256 == digest)) is None:
        insert_or_nothing(session, Blob, {"sha256": digest, "size": len(data), "data": data})
    return digest


def get_blob(session: Session, digest: str) -> bytes:
    data = session.scalar(select(Blob.data).where(Blob.sha256 == digest))
    if data is None:
        raise NotFound(f"no stored content with SHA-256 {digest}")
    return bytes(data)
