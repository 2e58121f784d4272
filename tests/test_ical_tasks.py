"""Tasks (VTODO) in the pure iCalendar mapping: the RFC 4791 9.9 range, parse, render, patch.

The range a task is indexed under must select exactly the windows RFC 4791 9.9's table
says it overlaps, under the occurrence index's one overlap rule; Hypothesis checks it
against the table written out literally here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ical import (
    EventPatch,
    InvalidCalendarObject,
    RenderInput,
    TaskFields,
    parse_event,
    patch_event,
    render_event,
)
from gateway.ical.task_range import BEGINNING, TaskTimes, index_range

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
BASE = datetime(2026, 12, 1, tzinfo=UTC)


def rfc_4791_9_9(t: TaskTimes, start: datetime, end: datetime) -> bool:
    """RFC 4791 section 9.9, the VTODO table, row by row."""
    if t.dtstart is not None and t.duration is not None:
        return start <= t.dtstart + t.duration and (
            end > t.dtstart or end >= t.dtstart + t.duration)
    if t.dtstart is not None and t.due is not None:
        return (start < t.due or start <= t.dtstart) and (end > t.dtstart or end >= t.due)
    if t.dtstart is not None:
        return start <= t.dtstart and end > t.dtstart
    if t.due is not None:
        return start < t.due and end >= t.due
    if t.completed is not None and t.created is not None:
        return (start <= t.created or start <= t.completed) and (
            end >= t.created or end >= t.completed)
    if t.completed is not None:
        return start <= t.completed and end >= t.completed
    if t.created is not None:
        return end > t.created
    return True


def index_rule(span: tuple[datetime, datetime | None], start: datetime, end: datetime) -> bool:
    """gateway.calendars.items_in_range: what the occurrence index matches."""
    low, high = span
    if high is None:
        return low < end
    return low < end and (high > start or (high == low and low >= start))


# Whole seconds within a few minutes of BASE, so that edges coincide often.
moments = st.integers(0, 600).map(lambda s: BASE + timedelta(seconds=s))
optional = st.none() | moments


@st.composite
def task_times(draw: st.DrawFn) -> TaskTimes:
    dtstart = draw(optional)
    shape = draw(st.sampled_from(["due", "duration", "neither"]))
    due = duration = None
    if shape == "due":
        due = draw(optional)
        if dtstart is not None and due is not None and due < dtstart:
            dtstart, due = due, dtstart  # parsing refuses a DUE before DTSTART
    elif shape == "duration" and dtstart is not None:
        duration = timedelta(seconds=draw(st.integers(0, 300)))
    return TaskTimes(dtstart=dtstart, duration=duration, due=due,
                     completed=draw(optional), created=draw(optional))


@given(task_times(), moments, st.integers(0, 300))
def test_the_indexed_range_matches_exactly_the_windows_rfc_4791_says(
        times: TaskTimes, start: datetime, length: int) -> None:
    end = start + timedelta(seconds=length)
    assert index_rule(index_range(times), start, end) == rfc_4791_9_9(times, start, end)


def test_a_task_with_no_time_is_in_every_window() -> None:
    assert index_range(TaskTimes()) == (BEGINNING, None)


VTODO = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//T//EN\r\nBEGIN:VTODO\r\nUID:t@test\r\n"
         "DTSTAMP:20261201T090000Z\r\n{body}SUMMARY:Task\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")


@pytest.mark.parametrize(("body", "reason"), [
    ("DTSTART:20261202T100000Z\r\nDUE:20261202T090000Z\r\n", "DUE"),
    ("DUE:20261202T100000Z\r\nDURATION:PT1H\r\n", "both DUE and DURATION"),
    ("DURATION:PT1H\r\n", "needs a DTSTART"),
    ("RRULE:FREQ=DAILY\r\n", "recurring VTODO needs a DTSTART"),
    ("PRIORITY:12\r\n", "PRIORITY 12"),
    ("PERCENT-COMPLETE:101\r\n", "PERCENT-COMPLETE 101"),
])
def test_unusable_tasks_are_refused_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(InvalidCalendarObject, match=reason):
        parse_event(VTODO.format(body=body))


def test_events_and_tasks_in_one_object_are_refused() -> None:
    text = VTODO.format(body="").replace(
        "END:VCALENDAR", "BEGIN:VEVENT\r\nUID:t@test\r\nDTSTART:20261202T100000Z\r\n"
        "END:VEVENT\r\nEND:VCALENDAR")
    with pytest.raises(InvalidCalendarObject, match="events or tasks, not both"):
        parse_event(text)


def test_a_recurring_task_spans_its_instances() -> None:
    data = parse_event(VTODO.format(
        body="DTSTART:20261207T090000Z\r\nDUE:20261207T170000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n"))
    assert data.rrule == "FREQ=WEEKLY;COUNT=3"
    assert (data.span_start, data.span_end) == (datetime(2026, 12, 7, 9, tzinfo=UTC),
                                                datetime(2026, 12, 21, 17, tzinfo=UTC))


statuses = st.sampled_from([None, "NEEDS-ACTION", "IN-PROCESS", "COMPLETED", "CANCELLED"])
whole = st.integers(0, 10**6).map(lambda s: BASE + timedelta(seconds=s))


@given(st.none() | whole, st.none() | whole, st.none() | whole, st.none() | st.integers(0, 9),
       st.none() | st.integers(0, 100), statuses,
       st.sampled_from([None, "Europe/Berlin", "America/New_York"]),
       st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1,
               max_size=40).filter(str.strip))
def test_rendered_tasks_parse_back_to_their_fields(
        start: datetime | None, due: datetime | None, completed: datetime | None,
        priority: int | None, percent: int | None, status: str | None, tzid: str | None,
        title: str) -> None:
    if start is not None and due is not None and due < start:
        start, due = due, start
    task = TaskFields(dtstart=start, due=due, completed=completed, priority=priority,
                      percent_complete=percent, status=status)
    entry = RenderInput(uid="r@test", title=title, description=None, location=None,
                        start=NOW, end=NOW, tzid=tzid, all_day=False, rrule=None,
                        organizer=None, attendees=(), sequence=0, dtstamp=NOW, task=task)
    text = render_event(entry)
    assert render_event(entry) == text  # deterministic: the same row, the same bytes
    data = parse_event(text)
    assert data.component == "VTODO"
    assert data.title == title
    assert data.task == task


def test_a_crm_edit_of_a_task_patches_only_its_lines() -> None:
    text = VTODO.format(body="DUE:20261210T170000Z\r\nX-APPLE-SORT-ORDER:7\r\n"
                        "RELATED-TO:parent@test\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n"
                        "TRIGGER:-PT5M\r\nEND:VALARM\r\n")
    patched = patch_event(text, EventPatch(status="COMPLETED", completed=NOW,
                                           percent_complete=100), NOW)
    data = parse_event(patched)
    assert data.task is not None
    assert (data.task.status, data.task.completed, data.task.percent_complete) == (
        "COMPLETED", NOW, 100)
    assert data.task.due == datetime(2026, 12, 10, 17, tzinfo=UTC)
    for kept in ("X-APPLE-SORT-ORDER:7\r\n", "RELATED-TO:parent@test\r\n", "TRIGGER:-PT5M\r\n"):
        assert kept in patched
    again = patch_event(patched, EventPatch(status="NEEDS-ACTION", completed=None), NOW)
    assert "COMPLETED:" not in again
    assert parse_event(again).task == TaskFields(
        due=datetime(2026, 12, 10, 17, tzinfo=UTC), percent_complete=100,
        status="NEEDS-ACTION")


def test_task_fields_are_refused_for_events() -> None:
    event = VTODO.format(body="DTSTART:20261202T100000Z\r\n").replace("VTODO", "VEVENT")
    with pytest.raises(ValueError, match="fields of tasks"):
        patch_event(event, EventPatch(status="COMPLETED"), NOW)
