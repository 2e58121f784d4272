"""Deterministic generator of one calendar's events for the CalDAV benchmark.

Every event is a complete VCALENDAR object (CRLF line endings, lines folded at 75 octets) whose
href is ``<uid>.ics``.  The mix, drawn from a seeded ``random.Random``:

- ~5 % weekly recurring events with an IANA TZID and its VTIMEZONE; about a third of those have an
  EXDATE and another third a RECURRENCE-ID override stored in the same resource;
- 10 % all-day events (``VALUE=DATE``);
- the remaining timed single events, 70 % in UTC and 30 % with a TZID;
- independently of the kind: 20 % with an ORGANIZER and ATTENDEEs, 30 % with a VALARM.

Constant density: start times are spread uniformly over ``count / EVENTS_PER_WEEK`` weeks (10
events per week: 1,000 events span ~2 years, 10,000 ~19 years, 100,000 ~190 years), so a
calendar grows by covering more time, the way a diary does, and a query for one week returns
about the same number of items (~15-20) at every size.  Every recurring series is bounded
(COUNT or UNTIL of 4 to 26 weeks), so the number of series overlapping a week is constant too.
That makes "the week query at 100k costs at most 2x what it costs at 1k" a test of O(what it
returns).  The span starts ``min(weeks / 2, MAX_PAST_WEEKS)`` weeks before ``ANCHOR`` (so never
before 1986, well after the 1970 onset of the VTIMEZONEs below) and runs on into the future.

The benchmark's query windows (``WEEK`` and ``MONTH``) lie around the anchor, and ``MONTH``
contains ``WEEK``.  Mutating requests (``modified_event``, ``new_event``) use dates far from both
windows, so they never change what the time-range queries return.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

# Monday; the US switches to daylight saving time inside the benchmark week (2025-03-09).
ANCHOR = datetime(2025, 3, 3, tzinfo=UTC)
EVENTS_PER_WEEK = 10  # constant density: the calendar spans count / EVENTS_PER_WEEK weeks
MAX_PAST_WEEKS = 2000  # at most ~38 years before ANCHOR; the rest of the span lies after it
SERIES_WEEKS = (4, 26)  # every weekly series has this many weeks (COUNT or UNTIL)
WEEK = (ANCHOR, ANCHOR + timedelta(days=7))
MONTH = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
# Fixed, so that the same seed always yields the same bytes (and hence the same ETags).
DTSTAMP = "20250101T000000Z"
PRODID = "-//crm-gateway//bench calgen//EN"

# Client-style VTIMEZONEs (RRULE-based, as Thunderbird and Apple send them); current rules.
VTIMEZONES: dict[str, tuple[str, ...]] = {
    "Europe/Berlin": (
        "BEGIN:VTIMEZONE", "TZID:Europe/Berlin",
        "BEGIN:DAYLIGHT", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "TZNAME:CEST",
        "DTSTART:19700329T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT",
        "BEGIN:STANDARD", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "TZNAME:CET",
        "DTSTART:19701025T030000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD",
        "END:VTIMEZONE",
    ),
    "Europe/London": (
        "BEGIN:VTIMEZONE", "TZID:Europe/London",
        "BEGIN:DAYLIGHT", "TZOFFSETFROM:+0000", "TZOFFSETTO:+0100", "TZNAME:BST",
        "DTSTART:19700329T010000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT",
        "BEGIN:STANDARD", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0000", "TZNAME:GMT",
        "DTSTART:19701025T020000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD",
        "END:VTIMEZONE",
    ),
    "America/New_York": (
        "BEGIN:VTIMEZONE", "TZID:America/New_York",
        "BEGIN:DAYLIGHT", "TZOFFSETFROM:-0500", "TZOFFSETTO:-0400", "TZNAME:EDT",
        "DTSTART:19700308T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU", "END:DAYLIGHT",
        "BEGIN:STANDARD", "TZOFFSETFROM:-0400", "TZOFFSETTO:-0500", "TZNAME:EST",
        "DTSTART:19701101T020000", "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU", "END:STANDARD",
        "END:VTIMEZONE",
    ),
    "Asia/Tokyo": (
        "BEGIN:VTIMEZONE", "TZID:Asia/Tokyo",
        "BEGIN:STANDARD", "TZOFFSETFROM:+0900", "TZOFFSETTO:+0900", "TZNAME:JST",
        "DTSTART:19700101T000000", "END:STANDARD",
        "END:VTIMEZONE",
    ),
    "Australia/Sydney": (
        "BEGIN:VTIMEZONE", "TZID:Australia/Sydney",
        "BEGIN:STANDARD", "TZOFFSETFROM:+1100", "TZOFFSETTO:+1000", "TZNAME:AEST",
        "DTSTART:19700405T030000", "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU", "END:STANDARD",
        "BEGIN:DAYLIGHT", "TZOFFSETFROM:+1000", "TZOFFSETTO:+1100", "TZNAME:AEDT",
        "DTSTART:19701004T020000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU", "END:DAYLIGHT",
        "END:VTIMEZONE",
    ),
}
TZIDS = tuple(VTIMEZONES)

_SUBJECTS = (
    "Call", "Meeting", "Demo", "Follow-up", "Contract review", "Site visit", "Quarterly review",
    "Onboarding", "Renewal", "Support escalation", "Lunch", "Workshop", "Kick-off", "Training",
)
_COMPANIES = (
    "Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
    "Tyrell", "Cyberdyne", "Soylent", "Vandelay Industries", "Wonka", "Duff", "Oscorp",
)
_PEOPLE = (
    "Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
    "Donald Knuth", "Frances Allen", "Ken Thompson", "Margaret Hamilton", "Niklaus Wirth",
)
_PLACES = ("Head office", "Client site", "Room 1.12", "Video call", "Café Central", "Warehouse")


@dataclass(frozen=True)
class CalEvent:
    """One calendar object resource: what a client would PUT at ``href``."""

    uid: str
    href: str
    text: str  # the full VCALENDAR, CRLF line endings
    kind: str  # "recurring", "allday" or "timed"


def fold(line: str) -> str:
    """Fold one content line at 75 octets (RFC 5545 3.1), continuation lines start with a space."""
    data = line.encode()
    if len(data) <= 75:
        return line
    parts: list[str] = []
    start, limit = 0, 75
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # never split a UTF-8 sequence
            end -= 1
        parts.append(data[start:end].decode())
        start, limit = end, 74  # the leading space counts
    return "\r\n ".join(parts)


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _local(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S")


def _day(value: date) -> str:
    return value.strftime("%Y%m%d")


def _vcalendar(vevents: list[list[str]], tzid: str | None) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    if tzid is not None:
        lines.extend(VTIMEZONES[tzid])
    for vevent in vevents:
        lines.extend(vevent)
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)


def _attendees(rng: random.Random) -> list[str]:
    people = rng.sample(_PEOPLE, rng.randint(2, 4))
    mail = [p.lower().replace(" ", ".") + "@example.com" for p in people]
    lines = [f"ORGANIZER;CN={people[0]}:mailto:{mail[0]}"]
    for person, address in zip(people[1:], mail[1:], strict=True):
        partstat = rng.choice(("NEEDS-ACTION", "ACCEPTED", "TENTATIVE", "DECLINED"))
        lines.append(f"ATTENDEE;CN={person};CUTYPE=INDIVIDUAL;PARTSTAT={partstat};"
                     f"ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:{address}")
    return lines


def _valarm(rng: random.Random, allday: bool) -> list[str]:
    trigger = "-PT15H" if allday else rng.choice(("-PT5M", "-PT15M", "-PT30M", "-PT1H", "-P1D"))
    return ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder", f"TRIGGER:{trigger}",
            "END:VALARM"]


def _common(rng: random.Random, uid: str, summary: str, i: int) -> list[str]:
    lines = [f"UID:{uid}", f"DTSTAMP:{DTSTAMP}", "CREATED:20240101T090000Z",
             "LAST-MODIFIED:20240101T090000Z", "SEQUENCE:0", f"SUMMARY:{_escape(summary)}"]
    if rng.random() < 0.5:
        lines.append(f"LOCATION:{_escape(rng.choice(_PLACES))}")
    if rng.random() < 0.4:
        text = (f"CRM diary entry #{i}. Agenda: {rng.choice(_SUBJECTS).lower()}, pricing, next "
                f"steps; notes from the last call with {rng.choice(_PEOPLE)}.\nBring the "
                "signed offer and the updated project plan.")
        lines.append(f"DESCRIPTION:{_escape(text)}")
    return lines


@dataclass(frozen=True)
class Span:
    """The days on which events of one calendar start: ``days`` days from ``first``."""

    first: date
    days: int


def span_for(count: int) -> Span:
    """The span of a calendar of ``count`` events at EVENTS_PER_WEEK (see the module doc)."""
    weeks = max(1, math.ceil(count / EVENTS_PER_WEEK))
    past = min(weeks // 2, MAX_PAST_WEEKS)
    return Span(ANCHOR.date() - timedelta(weeks=past), weeks * 7)


def _start_local(rng: random.Random, span: Span) -> datetime:
    """A naive local start in business hours within ``span``, on a 15-minute grid."""
    day = span.first + timedelta(days=rng.randrange(span.days))
    return datetime(day.year, day.month, day.day, rng.randint(7, 18), rng.choice((0, 15, 30, 45)))


def _recurring(rng: random.Random, span: Span, uid: str, summary: str, i: int
               ) -> tuple[list[list[str]], str]:
    tzid = rng.choice(TZIDS)
    start = _start_local(rng, span)
    length = timedelta(minutes=rng.choice((30, 45, 60, 90)))
    master = ["BEGIN:VEVENT", *_common(rng, uid, summary, i),
              f"DTSTART;TZID={tzid}:{_local(start)}", f"DTEND;TZID={tzid}:{_local(start + length)}"]
    # Always bounded (constant density, see the module doc): half COUNT, half UNTIL.
    count = rng.randint(*SERIES_WEEKS)
    if rng.random() < 0.5:
        master.append(f"RRULE:FREQ=WEEKLY;COUNT={count}")
    else:
        until = start + timedelta(weeks=count - 1, hours=23)
        master.append(f"RRULE:FREQ=WEEKLY;UNTIL={_utc(until.replace(tzinfo=UTC))}")
    extra = rng.random()
    vevents = [master]
    # Occurrence 1..count-1 (never the first): an EXDATE, or an override one hour later.
    nth = start + timedelta(weeks=rng.randint(1, max(1, count - 1)))
    if extra < 1 / 3:
        master.append(f"EXDATE;TZID={tzid}:{_local(nth)}")
    elif extra < 2 / 3:
        moved = nth + timedelta(hours=1)
        vevents.append([
            "BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{DTSTAMP}", f"RECURRENCE-ID;TZID={tzid}:"
            f"{_local(nth)}", "SEQUENCE:1", f"SUMMARY:{_escape(summary)} (moved)",
            f"DTSTART;TZID={tzid}:{_local(moved)}", f"DTEND;TZID={tzid}:{_local(moved + length)}",
            "END:VEVENT",
        ])
    return vevents, tzid


def _event(rng: random.Random, span: Span, i: int) -> CalEvent:
    uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    summary = f"{rng.choice(_SUBJECTS)} \N{EN DASH} {rng.choice(_COMPANIES)}"
    roll = rng.random()
    tzid: str | None = None
    if roll < 0.05:
        kind = "recurring"
        vevents, tzid = _recurring(rng, span, uid, summary, i)
    elif roll < 0.15:
        kind = "allday"
        day = _start_local(rng, span).date()
        vevents = [["BEGIN:VEVENT", *_common(rng, uid, summary, i),
                    f"DTSTART;VALUE=DATE:{_day(day)}",
                    f"DTEND;VALUE=DATE:{_day(day + timedelta(days=rng.choice((1, 1, 1, 2, 3))))}",
                    "TRANSP:TRANSPARENT"]]
    else:
        kind = "timed"
        start = _start_local(rng, span)
        end = start + timedelta(minutes=rng.choice((15, 30, 30, 60, 60, 90, 120)))
        vevent = ["BEGIN:VEVENT", *_common(rng, uid, summary, i)]
        if rng.random() < 0.3:
            tzid = rng.choice(TZIDS)
            vevent += [f"DTSTART;TZID={tzid}:{_local(start)}", f"DTEND;TZID={tzid}:{_local(end)}"]
        else:  # read the local time as UTC: still business-hours-ish and simpler
            vevent += [f"DTSTART:{_utc(start.replace(tzinfo=UTC))}",
                       f"DTEND:{_utc(end.replace(tzinfo=UTC))}"]
        vevents = [vevent]
    master = vevents[0]
    if rng.random() < 0.2:
        master.extend(_attendees(rng))
    if rng.random() < 0.3:
        master.extend(_valarm(rng, kind == "allday"))
    master.append("END:VEVENT")
    return CalEvent(uid=uid, href=f"{uid}.ics", text=_vcalendar(vevents, tzid), kind=kind)


def generate(count: int, seed: int = 1) -> list[CalEvent]:
    """``count`` events; the same (count, seed) always gives the same list, byte for byte.

    The span grows with ``count`` (constant density), so a smaller count is NOT a prefix of a
    larger one: the same draws land on other dates.
    """
    rng = random.Random(seed)
    span = span_for(count)
    events = [_event(rng, span, i) for i in range(count)]
    if len({e.uid for e in events}) != count:  # 128 random bits: a repeat means a broken generator
        raise RuntimeError("duplicate UID generated")
    return events


def modified_event(event: CalEvent, revision: int) -> CalEvent:
    """``event`` (a single timed one) with a new SUMMARY and SEQUENCE: a client-side edit."""
    if event.kind != "timed":
        raise ValueError("modified_event expects a timed single event")
    out: list[str] = []
    replaced = False
    for line in event.text.split("\r\n"):
        if replaced and line.startswith(" "):
            continue  # continuation of the SUMMARY being replaced
        replaced = line.startswith("SUMMARY:")
        if replaced:
            line = fold(f"SUMMARY:Edited in bench, revision {revision}")
        elif line.startswith("SEQUENCE:"):
            line = f"SEQUENCE:{revision}"
        out.append(line)
    return CalEvent(uid=event.uid, href=event.href, text="\r\n".join(out), kind=event.kind)


def editable_events(events: list[CalEvent], count: int) -> list[CalEvent]:
    """Timed single events that start outside MONTH (and thus outside WEEK), first ``count``."""
    low, high = MONTH[0] - timedelta(days=7), MONTH[1] + timedelta(days=7)
    found: list[CalEvent] = []
    for event in events:
        if event.kind != "timed":
            continue
        start = _dtstart(event.text)
        if start is not None and not low <= start < high:
            found.append(event)
            if len(found) == count:
                break
    return found


def _dtstart(text: str) -> datetime | None:
    for line in text.split("\r\n"):
        if line.startswith("DTSTART"):
            value = line.rsplit(":", 1)[1]
            return datetime.strptime(value[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return None


def new_events(seed: int, count: int) -> Iterator[CalEvent]:
    """Fresh events for the PUT-create request, three years after ANCHOR (outside every window)."""
    rng = random.Random(f"new-{seed}")
    for i in range(count):
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        start = ANCHOR + timedelta(days=3 * 365 + i, hours=9)
        vevent = ["BEGIN:VEVENT", *_common(rng, uid, f"New entry {i}", i),
                  f"DTSTART:{_utc(start)}", f"DTEND:{_utc(start + timedelta(hours=1))}",
                  "END:VEVENT"]
        yield CalEvent(uid=uid, href=f"{uid}.ics", text=_vcalendar([vevent], None), kind="timed")
