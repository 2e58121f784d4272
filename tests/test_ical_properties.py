"""Property tests: a CRM-side patch keeps every line it does not change, byte for byte, and
parse_event refuses bad text only with InvalidCalendarObject."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ical import EventPatch, InvalidCalendarObject, parse_event, patch_event
from gateway.ical.contentlines import LogicalLine, logical_lines

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
# Client objects a CRM-side edit can patch: valid, and with a master VEVENT.
PATCHABLE = [
    "apple_all_day.ics", "apple_timed_alarm.ics", "caldavsynchronizer_windows_tz.ics",
    "davx5_weekly_with_overrides.ics", "outlook_birthday_yearly.ics", "outlook_customized_tz.ics",
    "outlook_display_name_tz.ics", "outlook_pacific_trailing_space.ics",
    "thunderbird_invitation_snoozed.ics", "thunderbird_weekly_forever.ics",
]
NOW = datetime(2024, 6, 20, 9, 15, 30, tzinfo=UTC)
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# What a text edit may rewrite in the master VEVENT: the edited properties, the richer copies
# that would shadow them, and the change stamps.
REWRITTEN = {
    "SUMMARY", "DESCRIPTION", "LOCATION", "X-ALT-DESC", "X-APPLE-STRUCTURED-LOCATION",
    "SEQUENCE", "LAST-MODIFIED", "DTSTAMP",
}

text_value = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120,
)
edits = st.builds(
    EventPatch,
    title=st.one_of(st.just(EventPatch().title), text_value),
    description=st.one_of(st.just(EventPatch().description), st.none(), text_value),
    location=st.one_of(st.just(EventPatch().location), st.none(), text_value),
)


def master_own(lines: list[LogicalLine]) -> set[int]:
    """Indexes of the master VEVENT's own properties (not its VALARMs', not overrides')."""
    own: set[int] = set()
    stack: list[str] = []
    current: list[int] = []
    for index, line in enumerate(lines):
        if line.name == "BEGIN":
            stack.append(line.value.strip().upper())
            if stack == ["VCALENDAR", "VEVENT"]:
                current = []
        elif line.name == "END":
            if stack == ["VCALENDAR", "VEVENT"] and not any(
                    lines[i].name == "RECURRENCE-ID" for i in current):
                own.update(current)
            if stack:
                stack.pop()
        elif stack == ["VCALENDAR", "VEVENT"]:
            current.append(index)
    return own


@PROPERTY
@given(st.sampled_from(PATCHABLE), edits)
def test_patch_keeps_every_byte_of_every_line_it_does_not_change(name: str,
                                                                 edit: EventPatch) -> None:
    before = (FIXTURES / name).read_bytes().decode("utf-8")
    after = patch_event(before, edit, NOW)
    old = logical_lines(before)
    own = master_own(old)
    kept = [line.raw for index, line in enumerate(old)
            if not (index in own and line.name in REWRITTEN)]
    new = logical_lines(after)
    new_own = master_own(new)
    unchanged = [line.raw for index, line in enumerate(new)
                 if not (index in new_own and line.name in REWRITTEN)]
    assert unchanged == kept  # same raw bytes, folds and line endings, same order
    data = parse_event(after)
    assert data.sequence == parse_event(before).sequence + 1


@PROPERTY
@given(st.text(max_size=2000))
def test_parse_event_refuses_arbitrary_text_only_as_invalid(text: str) -> None:
    try:
        parse_event(text)
    except InvalidCalendarObject as refused:
        assert refused.reason and "\n" not in refused.reason


SYNTAX = ["\r\n", "\n", " ", ":", ";", "=", ",", "BEGIN:VEVENT\r\n", "END:VEVENT\r\n",
          "RRULE:FREQ=", "DTSTART;TZID=", "VALUE=DATE:", "\\", '"', "\x00"]


@st.composite
def mutated_object(draw: st.DrawFn) -> str:
    text = list((FIXTURES / draw(st.sampled_from(PATCHABLE))).read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "truncate", "duplicate"]))
        if action == "insert":
            text[position:position] = list(draw(st.sampled_from(SYNTAX) | st.text(max_size=8)))
        elif action == "delete":
            del text[position:position + draw(st.integers(1, 40))]
        elif action == "truncate":
            del text[position:]
        else:
            text[position:position] = text[max(0, position - 60):position]
    return "".join(text)


@PROPERTY
@given(mutated_object())
def test_parse_event_refuses_mutated_client_objects_only_as_invalid(text: str) -> None:
    try:
        parse_event(text)
    except InvalidCalendarObject as refused:
        assert refused.reason and "\n" not in refused.reason


def _doubled(text: str, prefix: str) -> str:
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(prefix))
    return "".join(lines[:at + 1] + lines[at:])


@pytest.mark.parametrize(("prefix", "reason"), [
    ("DTSTART;", "more than one DTSTART"), ("DTEND", "more than one DTEND"),
    ("UID", "more than one UID"), ("TZID:", "not an iCalendar object"),
])
def test_properties_that_occur_once_refuse_a_second_copy(prefix: str, reason: str) -> None:
    # Found by the CalDAV fuzz: these crashed the parser instead of refusing the object.
    text = _doubled((FIXTURES / "outlook_customized_tz.ics").read_text(encoding="utf-8"), prefix)
    with pytest.raises(InvalidCalendarObject, match=reason):
        parse_event(text)


def test_a_nul_character_is_refused() -> None:
    # PostgreSQL text cannot hold NUL: storing it was a 500 there (found by the fuzz).
    text = (FIXTURES / "apple_all_day.ics").read_text(encoding="utf-8")
    with pytest.raises(InvalidCalendarObject, match="NUL"):
        parse_event(text.replace("SUMMARY:", "SUMMARY:\x00"))
