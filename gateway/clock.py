"""The one clock of the gateway: aware UTC datetimes, so naive and aware never mix."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
