"""A CRM-side edit applied to a stored calendar object, in place.

docs/ARCHITECTURE.md: a CRM edit patches the stored iCalendar rather than regenerating it, so
what the client put there (VALARMs with X-WR-ALARMUID/ACKNOWLEDGED, X-MOZ-LASTACK,
X-APPLE-*, overrides, unknown properties) survives. The patch is textual: only the content
lines of the master VEVENT that change are rewritten; every other byte is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from gateway.ical.contentlines import (
    LogicalLine,
    content_line,
    escape_text,
    fold,
    line_ending,
    logical_lines,
)
from gateway.ical.model import KEEP, EventData, EventPatch, Keep, PatchRefused
from gateway.ical.parse import event_data
from gateway.ical.render import attendee_line, timing_lines
from gateway.ical.structure import CalendarObject, load_object, values
from gateway.ical.timezones import output_tzid
from gateway.ical.timing import format_utc, utc_instant
from gateway.ical.vtimezone import vtimezone_lines

_TZID_PARAM = re.compile(r';TZID=("[^"]*"|[^;:]*)', re.IGNORECASE)
# Properties that restate another in a richer form; stale copies would win in the client.
_SHADOWS = {
    "DESCRIPTION": ("X-ALT-DESC",),  # Outlook shows the HTML copy
    "LOCATION": ("X-APPLE-STRUCTURED-LOCATION",),  # Apple shows the map pin's title
}


@dataclass
class _Block:
    """Where a component sits in the logical lines: BEGIN index, END index."""

    begin: int
    end: int


def _blocks(lines: list[LogicalLine], name: str, depth: int) -> list[_Block]:
    """Components called ``name`` at nesting ``depth`` (VCALENDAR is depth 1)."""
    found: list[_Block] = []
    stack: list[tuple[str, int]] = []
    for index, line in enumerate(lines):
        if line.name == "BEGIN":
            stack.append((line.value.strip().upper(), index))
        elif line.name == "END" and stack:
            component, begin = stack.pop()
            if component == name and len(stack) + 1 == depth:
                found.append(_Block(begin, index))
    return found


def own_lines(lines: list[LogicalLine], block: _Block) -> list[int]:
    """Indexes of the block's own properties (not those of nested VALARMs)."""
    own: list[int] = []
    depth = 0
    for index in range(block.begin + 1, block.end):
        name = lines[index].name
        if name == "BEGIN":
            depth += 1
        elif name == "END":
            depth -= 1
        elif depth == 0:
            own.append(index)
    return own


def master_block(lines: list[LogicalLine]) -> _Block:
    for block in _blocks(lines, "VEVENT", depth=2):
        if all(lines[i].name != "RECURRENCE-ID" for i in own_lines(lines, block)):
            return block
    raise PatchRefused("the object has no master VEVENT")  # load_object saw one; defensive


def _timing_changes(
    calendar_object: CalendarObject, current: EventData, changes: EventPatch
) -> tuple[list[str], str | None]:
    """New DTSTART/DTEND lines and the TZID they use."""
    master = calendar_object.master
    assert master is not None
    if (
        current.rrule
        or values(master.event, "RDATE")
        or values(master.event, "EXDATE")
        or calendar_object.overrides
    ):
        raise PatchRefused(
            "moving a recurring series would detach its exceptions and overrides"
        )
    start = current.start if isinstance(changes.start, Keep) else utc_instant(changes.start)
    if isinstance(changes.end, Keep):
        end = start + (current.end - current.start)  # a move keeps the length
    else:
        end = utc_instant(changes.end)
    if end < start:
        raise PatchRefused("the end is before the start")
    all_day = current.all_day if isinstance(changes.all_day, Keep) else changes.all_day
    tzid = current.tzid if isinstance(changes.tzid, Keep) else changes.tzid
    try:
        tzid = output_tzid(tzid)
    except ValueError as error:
        raise PatchRefused(str(error)) from error
    if all_day:
        tzid = None
    return timing_lines(start, end, tzid, all_day), tzid


def _new_properties(
    calendar_object: CalendarObject, current: EventData, changes: EventPatch, now: datetime
) -> tuple[dict[str, list[str]], str | None]:
    """Property name -> its new unfolded lines ([] removes it), and a TZID to define."""
    updates: dict[str, list[str]] = {}
    if not isinstance(changes.title, Keep):
        title = changes.title
        updates["SUMMARY"] = [content_line("SUMMARY", escape_text(title))] if title else []
    for name, value in (("DESCRIPTION", changes.description), ("LOCATION", changes.location)):
        if isinstance(value, Keep):
            continue
        updates[name] = [] if value is None else [content_line(name, escape_text(value))]
        for shadow in _SHADOWS[name]:
            updates[shadow] = []
    if not isinstance(changes.attendees, Keep):
        updates["ATTENDEE"] = [attendee_line(attendee) for attendee in changes.attendees]
    tzid = None
    if changes.changes_timing():
        (dtstart, dtend), tzid = _timing_changes(calendar_object, current, changes)
        updates.update({"DTSTART": [dtstart], "DTEND": [dtend], "DURATION": []})
    stamp = format_utc(now)
    updates["SEQUENCE"] = [content_line("SEQUENCE", str(current.sequence + 1))]
    updates["LAST-MODIFIED"] = [content_line("LAST-MODIFIED", stamp)]
    updates["DTSTAMP"] = [content_line("DTSTAMP", stamp)]
    return updates, tzid


def _apply(lines: list[LogicalLine], updates: dict[str, list[str]], newline: str) -> list[str]:
    """The physical text of every logical line, with the master's properties updated."""
    block = master_block(lines)
    own = set(own_lines(lines, block))
    output = [line.raw for line in lines]
    placed: set[str] = set()
    for index in sorted(own):
        name = lines[index].name
        if name in updates:
            output[index] = "" if name in placed else "".join(
                fold(text, newline) for text in updates[name]
            )
            placed.add(name)
    # Missing properties go after the VEVENT's own properties, before any VALARM.
    nested = [i for i in range(block.begin + 1, block.end) if i not in own]
    anchor = nested[0] if nested else block.end
    added = "".join(
        fold(text, newline)
        for name, texts in updates.items()
        if name not in placed
        for text in texts
    )
    output[anchor] = added + output[anchor]
    return output


def _zone_blocks(lines: list[LogicalLine]) -> dict[str, _Block]:
    zones: dict[str, _Block] = {}
    for block in _blocks(lines, "VTIMEZONE", depth=2):
        for index in own_lines(lines, block):
            if lines[index].name == "TZID":
                zones[lines[index].value.strip()] = block
    return zones


def _fix_zones(text: str, old_tzids: set[str], new_tzid: str | None, year: int) -> str:
    """Add the VTIMEZONE a new TZID needs; drop the ones the patch left unused."""
    lines = logical_lines(text)
    newline = line_ending(text)
    used = {
        match.group(1).strip('"').strip()
        for line in lines
        for match in _TZID_PARAM.finditer(line.head)
    }
    zones = _zone_blocks(lines)
    output = [line.raw for line in lines]
    for tzid in old_tzids - used:
        block = zones.get(tzid.strip())
        if block is not None:
            for index in range(block.begin, block.end + 1):
                output[index] = ""
    if new_tzid is not None and new_tzid not in zones:
        first_event = _blocks(lines, "VEVENT", depth=2)[0].begin
        definition = "".join(fold(text, newline) for text in vtimezone_lines(new_tzid, year))
        output[first_event] = definition + output[first_event]
    return "".join(output)


def patch_event(text: str, changes: EventPatch, now: datetime) -> str:
    """Apply a CRM-side edit to the master VEVENT of a stored object.

    Changes the given fields in place, sets SEQUENCE to one more than before and
    LAST-MODIFIED/DTSTAMP to ``now`` (aware); everything else is kept byte for byte.
    Raises InvalidCalendarObject if ``text`` is not a valid object, and PatchRefused for
    an override-only object, a new time for a recurring series, an end before the start,
    or an unknown time zone.
    """
    now = utc_instant(now)
    calendar_object = load_object(text)
    if calendar_object.master is None:
        raise PatchRefused("the object only holds overrides of someone else's series")
    current = event_data(calendar_object)
    updates, new_tzid = _new_properties(calendar_object, current, changes, now)
    old_tzids = {
        str(tzid)
        for name in ("DTSTART", "DTEND")
        for value in values(calendar_object.master.event, name)
        if (tzid := value.params.get("TZID"))
    }
    lines = logical_lines(text)
    patched = "".join(_apply(lines, updates, line_ending(text)))
    if not changes.changes_timing():
        return patched
    start = current.start if changes.start is KEEP else changes.start
    assert isinstance(start, datetime)
    return _fix_zones(patched, old_tzids, new_tzid, utc_instant(start).year)
