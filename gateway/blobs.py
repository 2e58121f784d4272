"""Content-addressed bytes: attachments and raw messages, stored once per SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.models import Blob
from gateway.upsert import insert_many_or_nothing

_IN_CHUNK = 2000  # digests per IN (...) list, well inside SQLite's parameter limit


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_blobs(session: Session, items: Sequence[bytes]) -> list[str]:
    """Store each of ``items`` unless the same bytes are stored already, in a few statements;
    returns their SHA-256s."""
    if not items:
        return []
    digests = [sha256_hex(data) for data in items]
    unique = dict(zip(digests, items, strict=True))
    # The look-up only spares sending large bytes again; the insert decides.
    wanted, stored = list(unique), set[str]()
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start:start + _IN_CHUNK]
        stored.update(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(chunk))))
    insert_many_or_nothing(session, Blob, [
        {"sha256": digest, "size": len(data), "data": data}
        for digest, data in unique.items() if digest not in stored
    ])
    return digests


def get_blob(session: Session, digest: str) -> bytes:
    data = session.scalar(select(Blob.data).where(Blob.sha256 == digest))
    if data is None:
        raise NotFound(f"no stored content with SHA-256 {digest}")
    return bytes(data)
