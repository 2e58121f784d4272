"""Client writes against a model of the rules, on both backends (Hypothesis).

Random sequences of PUTs and DELETEs, with and without If-Match / If-None-Match, across two
type calendars of one user, must answer what RFC 4791 plus the gateway's move rule say, and
an event keeps its CRM entry (its id) however often it moves, is deleted and comes back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway import calendars
from gateway.client_writes import UidConflict, delete_event, put_event
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.errors import NotFound
from gateway.models import Calendar, DiaryEntry, PublishedItem
from gateway.preconditions import Precondition, PreconditionFailed
from gateway.users import UserChanges, create_user, get_user, update_user

SLUGS = ("meeting", "call")
HREFS = ("a.ics", "b.ics", "c.ics")
UIDS = ("one", "two")
_users = itertools.count()

TEXT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tests//EN\r\nBEGIN:VEVENT\r\n"
        "UID:{uid}\r\nDTSTAMP:20261201T090000Z\r\nDTSTART:20261207T090000Z\r\n"
        "DTEND:20261207T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@dataclass(frozen=True)
class Op:
    kind: str  # "put" or "delete"
    slug: str
    href: str
    uid: str
    summary: int
    precondition: str  # "none", "current", "stale", "absent" (If-None-Match: *)


ops = st.builds(
    Op, st.sampled_from(["put", "put", "delete"]), st.sampled_from(SLUGS),
    st.sampled_from(HREFS), st.sampled_from(UIDS), st.integers(0, 3),
    st.sampled_from(["none", "current", "stale", "absent"]))


class Model:
    """What a calendar shows, by (slug, href): the event's UID."""

    def __init__(self) -> None:
        self.shown: dict[tuple[str, str], str] = {}

    def where(self, uid: str) -> tuple[str, str] | None:
        return next((key for key, held in self.shown.items() if held == uid), None)

    def apply(self, op: Op) -> str:
        key = (op.slug, op.href)
        held = self.shown.get(key)
        if op.precondition in ("current", "stale") and held is None:
            return "412" if op.kind == "put" else "404"
        if op.kind == "delete":
            if held is None:
                return "404"
            if op.precondition == "stale":
                return "412"
            del self.shown[key]
            return "ok"
        if op.precondition == "stale" or (op.precondition == "absent" and held is not None):
            return "412"
        if held is not None and held != op.uid:
            return "409"
        if held is None:
            elsewhere = self.where(op.uid)
            if elsewhere is not None and elsewhere[0] == op.slug:
                return "409"
            if elsewhere is not None:
                del self.shown[elsewhere]  # a move
        self.shown[key] = op.uid
        return "ok"


@pytest.fixture
def typed(store: Store) -> Iterator[Store]:
    with store.transaction() as session:
        create_type(session, "Meeting")
        create_type(session, "Call")
    yield store


def current_etag(store: Store, username: str, slug: str, href: str) -> str | None:
    with store.reading() as session:
        return session.scalar(
            select(PublishedItem.etag).join(Calendar, Calendar.id == PublishedItem.calendar_id)
            .where(Calendar.slug == slug, PublishedItem.href == href,
                   PublishedItem.deleted.is_(False),
                   Calendar.user_id == get_user(session, username).id))


def run(store: Store, username: str, op: Op) -> str:
    etag = current_etag(store, username, op.slug, op.href)
    precondition = {
        "none": Precondition(),
        "current": Precondition(if_match=etag or '"gone"'),
        "stale": Precondition(if_match='"stale"'),
        "absent": Precondition(if_none_match="*"),
    }[op.precondition]
    if op.kind == "delete" and op.precondition == "absent":
        precondition = Precondition()
    try:
        with store.transaction() as session:
            user = get_user(session, username)
            view = calendars.user_calendar(session, user, op.slug)
            assert view is not None
            if op.kind == "put":
                text = TEXT.format(uid=op.uid, summary=f"Version {op.summary}")
                put_event(session, user, view, op.href, text, precondition=precondition)
            else:
                delete_event(session, user, view, op.href, precondition)
    except PreconditionFailed:
        return "412"
    except UidConflict:
        return "409"
    except NotFound:
        return "404"
    return "ok"


def shown(store: Store, username: str) -> dict[tuple[str, str], str]:
    with store.reading() as session:
        rows = session.execute(
            select(Calendar.slug, PublishedItem.href, PublishedItem.uid)
            .join(Calendar, Calendar.id == PublishedItem.calendar_id)
            .where(Calendar.user_id == get_user(session, username).id,
                   PublishedItem.deleted.is_(False)))
        return {(slug, href): uid for slug, href, uid in rows}


def entry_ids(store: Store, username: str) -> dict[str, set[int]]:
    with store.reading() as session:
        rows = session.execute(select(DiaryEntry.uid, DiaryEntry.id).where(
            DiaryEntry.owner_user_id == get_user(session, username).id))
        found: dict[str, set[int]] = {}
        for uid, entry_id in rows:
            found.setdefault(uid, set()).add(entry_id)
        return found


def test_client_writes_follow_the_rules_and_keep_each_uids_entry(typed: Store) -> None:
    # Hypothesis runs inside the test: the store fixture is made once for all examples
    # (each example has its own user).
    @settings(max_examples=30, deadline=None)
    @given(st.lists(ops, min_size=1, max_size=12))
    def check(sequence: list[Op]) -> None:
        username = f"model{next(_users)}"
        with typed.transaction() as session:
            user = create_user(session, username, f"{username}@acme.example")
            update_user(session, user, UserChanges(diary_sync=True))
        model = Model()
        for op in sequence:
            assert run(typed, username, op) == model.apply(op), op
            assert shown(typed, username) == model.shown
        # One entry per UID, ever: moves, deletes and re-creations all continue it.
        assert all(len(ids) == 1 for ids in entry_ids(typed, username).values())

    check()
