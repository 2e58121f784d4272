"""The core's decisions for linked calendars, and its leases, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.db import Store
from gateway.errors import Invalid
from gateway.linked_calendars import (
    LeaseLost,
    RemoteCalendar,
    backoff_delay,
    choose_calendar,
    create_link,
    hold,
    lease_links,
    record_failure,
    record_success,
    resolve_url,
)
from gateway.linked_state import CALENDAR, CRM, RemoteObject, duplicates, remote_stamp, resolve
from gateway.models import DiaryType, LinkedAccount
from gateway.secrets import SecretBox
from gateway.users import UserChanges, create_user, update_user

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(("direction", "crm", "remote", "writable", "newer", "expected"), [
    ("two_way", True, False, True, False, (CRM, False)),
    ("two_way", False, False, True, False, (None, False)),
    ("two_way", False, True, True, False, (CALENDAR, False)),
    ("two_way", True, True, True, True, (CALENDAR, True)),
    ("two_way", True, True, True, False, (CRM, True)),
    ("two_way", False, True, False, True, (CRM, True)),  # read-only in the CRM: kept
    ("calendar_to_crm", True, True, True, False, (CALENDAR, True)),
    ("calendar_to_crm", False, True, True, False, (CALENDAR, False)),
    ("crm_to_calendar", True, True, True, True, (CRM, True)),
    ("crm_to_calendar", False, True, True, True, (CRM, True)),
])
def test_resolution_follows_the_direction_and_never_drops_a_side_silently(
    direction: str, crm: bool, remote: bool, writable: bool, newer: bool,
    expected: tuple[str | None, bool],
) -> None:
    verdict = resolve(direction, crm_changed=crm, remote_changed=remote,
                      calendar_writable=writable, remote_newer=newer)
    assert (verdict.winner, verdict.conflict) == expected


def test_remote_stamp_prefers_last_modified_and_unfolds() -> None:
    text = "BEGIN:VEVENT\r\nDTSTAMP:20260101T100000Z\r\nLAST-MODIFIED:2026\r\n 0102T110000Z\r\n"
    assert remote_stamp(text) == datetime(2026, 1, 2, 11, tzinfo=UTC)
    assert remote_stamp("DTSTAMP:20260101T100000Z\n") == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert remote_stamp("SUMMARY:no stamp\n") is None


def test_duplicates_keep_the_known_one_by_uid_or_by_title_and_time() -> None:
    start, end = NOW, NOW + timedelta(hours=1)
    objects = [
        RemoteObject("/c/a.ics", "1", "u1", "Call", start, end),
        RemoteObject("/c/b.ics", "2", "u1", "Call", start, end),
        RemoteObject("/c/c.ics", "3", "u2", "Call", start, end),
        RemoteObject("/c/d.ics", "4", "u3", "Lunch", start, end),
    ]
    assert [o.href for o in duplicates(objects, {"/c/b.ics"})] == ["/c/a.ics", "/c/c.ics"]
    assert [o.href for o in duplicates(objects, set())] == ["/c/b.ics", "/c/c.ics"]
    assert duplicates(objects[3:], set()) == []


def test_calendars_are_named_by_display_name_or_last_segment() -> None:
    calendars = [RemoteCalendar("https://h/dav/cal/home/", "Home"),
                 RemoteCalendar("https://h/dav/cal/Work%20Stuff/", "")]
    assert choose_calendar(calendars, "home") == calendars[0]
    assert choose_calendar(calendars, "work stuff") == calendars[1]
    assert choose_calendar(calendars, "other") is None


def test_provider_urls_and_bad_urls() -> None:
    assert resolve_url("icloud", None) == "https://caldav.icloud.com/"
    assert resolve_url("fastmail", None) == "https://caldav.fastmail.com/dav/"
    assert resolve_url("custom", "https://cloud.example/remote.php/dav") == \
        "https://cloud.example/remote.php/dav/"
    with pytest.raises(Invalid, match="a URL is required"):
        resolve_url("nextcloud", None)
    with pytest.raises(Invalid, match="not an http"):
        resolve_url("custom", "ftp://example.com/")


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, 600).total_seconds() for n in (1, 2, 3, 4, 5)] == \
        [60, 120, 240, 480, 600]


def _link(store: Store) -> int:
    with store.transaction() as session:
        session.add(DiaryType(name="Meeting", slug="meeting", syncable=True))
        user = create_user(session, "leaserep", "leaserep@acme.example")
        update_user(session, user, UserChanges(diary_sync=True))
        meeting = session.scalar(select(DiaryType).where(DiaryType.slug == "meeting"))
        assert meeting is not None
        link = create_link(
            session, user, url="http://127.0.0.1:1/", login="rep", password="pw",
            provider="custom", box=SecretBox("k"), principal_url=None, home_url=None,
            target=RemoteCalendar("http://127.0.0.1:1/rep/crm/", "CRM"), sources=[],
            source_type=meeting)
        return link.id


def test_one_link_is_leased_to_one_owner_at_a_time(store: Store) -> None:
    link_id = _link(store)
    now = datetime.now(UTC) + timedelta(seconds=1)  # a new link is due at once
    assert lease_links(store, "a", now, limit=5) == [link_id]
    assert lease_links(store, "b", now, limit=5) == []  # held
    with store.transaction() as session, pytest.raises(LeaseLost):
        hold(session, link_id, "b", now)
    # Expired: another owner takes it, and the first one's writes now fail.
    later = now + timedelta(minutes=10)
    assert lease_links(store, "b", later, limit=5) == [link_id]
    with store.transaction() as session, pytest.raises(LeaseLost):
        hold(session, link_id, "a", later)
    record_failure(store, link_id, "a", later, "ignored: not the holder", cap_seconds=3600)
    record_failure(store, link_id, "b", later, "ConnectionError: down", cap_seconds=3600)
    with store.reading() as session:
        link = session.get(LinkedAccount, link_id)
        assert link is not None
        assert (link.failures, link.last_error, link.lease_owner) == \
            (1, "ConnectionError: down", None)
        assert link.next_sync_at == later + timedelta(seconds=60)
    assert lease_links(store, "c", later, limit=5) == []  # backing off
    assert lease_links(store, "c", later, limit=5, due_only=False) == [link_id]
    record_success(store, link_id, "c", later, next_sync_at=later + timedelta(seconds=300))
    with store.reading() as session:
        link = session.get(LinkedAccount, link_id)
        assert link is not None and (link.failures, link.lease_owner) == (0, None)
