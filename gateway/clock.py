"""The one clock of the gateway: aware UTC datetimes, so naive and aware never mix."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def seconds_since(now: datetime, moment: datetime | str | None) -> float | None:
    """Age of ``moment`` (an aggregate's result: SQLite hands back naive text), never negative."""
    if moment is None:
        return None
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        moment = datetime.fromisoformat(str(moment)).replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())
