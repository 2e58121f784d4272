"""A user's busy time in a window: what free/busy, availability and conflicts are made of.

Busy time (issue 13) is every instance, overlapping [start, end), of
- the entries the user's type calendars show (the entries they own),
- the entries their invitations calendar shows, unless their PARTSTAT is DECLINED,
that are TRANSP:OPAQUE and not STATUS:CANCELLED (``DiaryEntry.busy``), plus the busy times
fetched from their linked calendars (``LinkedObject.busy_*``, events that stand for no entry).

Instances come from the occurrence index (:mod:`gateway.occurrence_index`): one indexed range
scan per calendar, so the cost is O(instances in the window). Series indexed only up to a
horizon before the window's end are expanded here, from the horizon on. Busy time is what the
user's calendars publish: a user whose diary sync is off has none from the diary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, union_all
from sqlalchemy.orm import Session

from gateway.ical import InvalidCalendarObject, bounded_occurrences
from gateway.models import (
    Calendar,
    DiaryEntry,
    EntryParticipant,
    LinkedAccount,
    LinkedCalendar,
    LinkedObject,
    Occurrence,
    PublishedItem,
)
from gateway.occurrence_index import LONG, MAX_INSTANCES

INVITATIONS = "invitations"
_MASTER = re.compile(r"BEGIN:VEVENT\r?\n(.*?)END:VEVENT", re.S)
_TRANSPARENT = re.compile(r"^TRANSP(;[^:\r\n]*)?:\s*TRANSPARENT\s*$", re.M | re.I)


@dataclass(frozen=True)
class BusySpan:
    """One busy instance: its time and what it is (``entry_id`` None: a linked busy time)."""

    start: datetime
    end: datetime
    entry_id: int | None
    title: str
    calendar: str  # the calendar's slug, or "linked" for a linked calendar's busy time
    owner_user_id: int | None


def is_busy_time(ical: str, status: str | None) -> bool:
    """Whether an entry's stored iCalendar makes it busy time: only a VEVENT (a task is not),
    TRANSP OPAQUE unless said otherwise (RFC 5545 3.8.2.7), and not cancelled."""
    if (status or "").upper() == "CANCELLED":
        return False
    master = _MASTER.search(ical)
    return master is not None and _TRANSPARENT.search(master.group(1)) is None


def busy_spans(session: Session, user_id: int, start: datetime, end: datetime,
               *, exclude_entry: int | None = None) -> list[BusySpan]:
    """The user's busy instances overlapping [start, end), sorted by start."""
    return busy_spans_of(session, [user_id], start, end, exclude_entry=exclude_entry)[user_id]


def busy_spans_of(session: Session, user_ids: Sequence[int], start: datetime, end: datetime,
                  *, exclude_entry: int | None = None) -> dict[int, list[BusySpan]]:
    """Each user's busy instances overlapping [start, end), sorted by start: the same few
    queries however many users are asked about."""
    found: dict[int, list[BusySpan]] = {user_id: [] for user_id in user_ids}
    if end <= start or not user_ids:
        return found
    users = list(found)
    diary = _indexed(session, users, start, end, exclude_entry)
    diary.extend(_past_horizon(session, users, start, end, exclude_entry))
    for user_id, span in _declined(session, diary):
        found[user_id].append(span)
    for user_id, span in _linked(session, list(found), start, end):
        found[user_id].append(span)
    for spans in found.values():
        spans.sort(key=lambda span: (span.start, span.end))
    return found


Found = list[tuple[int, BusySpan]]  # (whose busy time, the span)


def _live_and_busy(exclude_entry: int | None) -> list[object]:
    conditions: list[object] = [
        PublishedItem.deleted.is_(False), DiaryEntry.deleted_at.is_(None),
        DiaryEntry.busy.is_(True),
    ]
    if exclude_entry is not None:
        conditions.append(DiaryEntry.id != exclude_entry)
    return conditions


def _declined(session: Session, found: Found) -> Found:
    """``found`` without the invitations their user declined: one query over the hits' ids
    (not over every participation of the users)."""
    invited = {span.entry_id for _, span in found if span.calendar == INVITATIONS}
    if not invited:
        return found
    # "user_id + 0": found by the hits' entry ids; without statistics SQLite would scan all
    # of the users' participations by their user_id index instead.
    declined = {(entry_id, user_id) for entry_id, user_id in session.execute(
        select(EntryParticipant.entry_id, EntryParticipant.user_id)
        .where(EntryParticipant.entry_id.in_(list(invited)), EntryParticipant.user_id + 0 > 0,
               EntryParticipant.partstat == "DECLINED"))}
    return [(user_id, span) for user_id, span in found
            if span.calendar != INVITATIONS or (span.entry_id, user_id) not in declined]


def _indexed(session: Session, user_ids: list[int], start: datetime, end: datetime,
             exclude_entry: int | None) -> Found:
    # Short instances by a range scan from (start - LONG), long ones by their own small scan:
    # each one range of ix_occurrences_range per calendar of the users, in one round trip.
    def part(long: bool) -> Select[datetime, datetime, int, str, int, str, int | None]:
        low = Occurrence.start_utc >= start - LONG if not long else \
            Occurrence.start_utc.is_not(None)
        return (select(Occurrence.start_utc, Occurrence.end_utc, Calendar.user_id,
                       Calendar.slug, DiaryEntry.id, DiaryEntry.title,
                       DiaryEntry.owner_user_id)
                .join(Calendar, Calendar.id == Occurrence.calendar_id)
                .join(PublishedItem, PublishedItem.id == Occurrence.item_id)
                .join(DiaryEntry, DiaryEntry.id == PublishedItem.entry_id)
                .where(Calendar.user_id.in_(user_ids), Occurrence.long.is_(long),
                       low, Occurrence.start_utc < end, Occurrence.end_utc > start,
                       *_live_and_busy(exclude_entry)))  # type: ignore[arg-type]

    rows = session.execute(union_all(part(False), part(True))).all()
    return [(user_id, BusySpan(s, e, entry_id, title, slug, owner))
            for s, e, user_id, slug, entry_id, title, owner in rows]


def _past_horizon(session: Session, user_ids: list[int], start: datetime, end: datetime,
                  exclude_entry: int | None) -> Found:
    """Instances after the horizon of series the index holds only up to one."""
    rows = session.execute(
        select(Calendar.user_id, Calendar.slug, PublishedItem.horizon_utc, DiaryEntry)
        .join(Calendar, Calendar.id == PublishedItem.calendar_id)
        .join(DiaryEntry, DiaryEntry.id == PublishedItem.entry_id)
        .where(Calendar.user_id.in_(user_ids),
               PublishedItem.horizon_utc.is_not(None), PublishedItem.horizon_utc < end,
               *_live_and_busy(exclude_entry))  # type: ignore[arg-type]
    ).all()
    found: Found = []
    for user_id, slug, horizon, entry in rows:
        assert horizon is not None
        try:
            spans = bounded_occurrences(entry.ical, max(start, horizon), end,
                                        MAX_INSTANCES).spans
        except InvalidCalendarObject:
            continue  # logged when it was indexed; it has no instances to count
        found.extend((user_id, BusySpan(s, e, entry.id, entry.title, slug,
                                        entry.owner_user_id))
                     for s, e in spans if s >= horizon and e > start)
    return found


def _linked(session: Session, user_ids: list[int], start: datetime, end: datetime) -> Found:
    # "coalesce(entry_id, 0) = 0" for "no entry": found from the users' linked calendars by
    # each calendar's index, not by scanning every object without an entry.
    rows = session.execute(
        select(LinkedObject.busy_start_utc, LinkedObject.busy_end_utc, LinkedAccount.user_id,
               LinkedCalendar.name)
        .join(LinkedCalendar, LinkedCalendar.id == LinkedObject.calendar_id)
        .join(LinkedAccount, LinkedAccount.id == LinkedCalendar.account_id)
        .where(LinkedAccount.user_id.in_(user_ids),
               func.coalesce(LinkedObject.entry_id, 0) == 0,
               LinkedObject.busy_start_utc < end, LinkedObject.busy_end_utc > start)
    ).all()
    return [(user_id, BusySpan(s, e, None, "busy", name or "linked", user_id))
            for s, e, user_id, name in rows if s is not None and e is not None]


def merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, non-overlapping intervals covering the same time (touching ones joined)."""
    result: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


def busy_periods(session: Session, user_id: int, start: datetime,
                 end: datetime) -> list[tuple[datetime, datetime]]:
    """The user's busy time in [start, end) as merged periods, clipped to the window."""
    return busy_periods_of(session, [user_id], start, end)[user_id]


def busy_periods_of(session: Session, user_ids: Sequence[int], start: datetime,
                    end: datetime) -> dict[int, list[tuple[datetime, datetime]]]:
    """:func:`busy_periods` of several users at once."""
    return {user_id: merged([(max(span.start, start), min(span.end, end))
                             for span in spans if span.end > span.start])
            for user_id, spans in busy_spans_of(session, user_ids, start, end).items()}
