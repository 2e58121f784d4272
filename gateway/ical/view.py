"""What another user's read-only calendar shows of an entry.

A client that dismisses an alarm in a calendar it may not write still tries to upload the
event (docs/CALDAV_CLIENTS.md), so read-only views leave out the organiser's VALARMs, and may
leave out the attendee list. The work is textual: dropped content lines go, every other
byte stays, so the result is cheap and the same input always gives the same output.
"""

from __future__ import annotations

from gateway.ical.contentlines import logical_lines


def view_for(text: str, *, drop_alarms: bool, drop_attendees: bool) -> str:
    """``text`` without VALARM components and/or ATTENDEE properties.

    Returns ``text`` itself (the identical string) when nothing is to be dropped.
    """
    if not drop_alarms and not drop_attendees:
        return text
    kept: list[str] = []
    alarm_depth = 0
    dropped = False
    for line in logical_lines(text):
        name = line.name
        if drop_alarms and name in ("BEGIN", "END") and line.value.strip().upper() == "VALARM":
            alarm_depth = alarm_depth + 1 if name == "BEGIN" else max(0, alarm_depth - 1)
            dropped = True
            continue
        if alarm_depth > 0 or (drop_attendees and name == "ATTENDEE"):
            dropped = True
            continue
        kept.append(line.raw)
    return "".join(kept) if dropped else text
