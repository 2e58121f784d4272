"""VTIMEZONE definitions for IANA zones, built from the installed tz database.

Every TZID an object uses needs a VTIMEZONE (RFC 5545 3.6.5; Outlook shifts events by an
hour without one). The definition covers the given year onwards: transitions are read from
``zoneinfo`` and yearly repeating ones become one ``RRULE:FREQ=YEARLY;BYMONTH=..;BYDAY=..``
observance, so a never-ending series keeps correct offsets after the scanned years.
The output depends only on (zone, year, tzdata version), never on the clock.
"""

from __future__ import annotations

import calendar
import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.ical.contentlines import content_line
from gateway.ical.timing import format_utc, format_wall

# Scan transitions up to at least this year (the tz database announces rule changes a few
# years ahead); the last yearly rule found is then assumed to go on.
SCAN_UNTIL_YEAR = 2040
_MIN_SCAN_YEARS = 3
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True)
class _Transition:
    at: datetime  # UTC instant of the change
    offset_from: timedelta
    offset_to: timedelta
    name: str
    dst: timedelta  # the zone's DST offset after the change

    @property
    def local_start(self) -> datetime:
        # RFC 5545 3.6.5: DTSTART is the onset in the local time in force before it.
        return (self.at + self.offset_from).replace(tzinfo=None)

    @property
    def rule_key(self) -> tuple[object, ...]:
        """What a yearly rule repeats besides the day: kind, offsets, name, month, weekday, time."""
        local = self.local_start
        return (
            self.dst,
            self.offset_from,
            self.offset_to,
            self.name,
            local.month,
            local.weekday(),
            local.time(),
        )


@dataclass
class _Run:
    """Transitions in consecutive years on "the weekday on or after day X of the month".

    ``low``..``high`` are the first days X consistent with every transition so far; that
    covers n-th weekday, last weekday and tz rules like ``Fri>=23`` (Israel) or ``Sun>=2``
    (Chile) alike.
    """

    transitions: list[_Transition]
    low: int
    high: int

    @classmethod
    def start(cls, transition: _Transition) -> _Run:
        day = transition.local_start.day
        return cls([transition], max(1, day - 6), day)

    def accepts(self, transition: _Transition) -> bool:
        last = self.transitions[-1]
        day = transition.local_start.day
        return (
            transition.rule_key == last.rule_key
            and transition.local_start.year == last.local_start.year + 1
            and max(self.low, day - 6) <= min(self.high, day)
        )

    def add(self, transition: _Transition) -> None:
        day = transition.local_start.day
        self.transitions.append(transition)
        self.low, self.high = max(self.low, day - 6), min(self.high, day)

    def byday(self) -> str:
        """The RRULE day parts: ``BYDAY=2SU``, ``BYDAY=-1SU`` or a BYMONTHDAY window."""
        local = self.transitions[0].local_start
        weekday = _WEEKDAYS[local.weekday()]
        for ordinal, first_day in enumerate((1, 8, 15, 22), start=1):
            if self.low <= first_day <= self.high:
                return f"BYDAY={ordinal}{weekday}"
        if all(
            t.local_start.day + 7 > calendar.monthrange(t.local_start.year, local.month)[1]
            for t in self.transitions
        ):
            return f"BYDAY=-1{weekday}"
        days = ",".join(str(day) for day in range(self.low, min(self.low + 7, 32)))
        return f"BYMONTHDAY={days};BYDAY={weekday}"


def _state(zone: zoneinfo.ZoneInfo, instant: datetime) -> tuple[timedelta, str, timedelta]:
    local = instant.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    return offset, local.tzname() or _format_offset(offset), local.dst() or timedelta(0)


def _kind(dst: timedelta, negative_dst: bool) -> str:
    """STANDARD or DAYLIGHT. Zones with negative DST (Europe/Dublin's winter, Morocco's
    Ramadan) are labelled the way vzic and clients expect: the higher offset is daylight;
    dateutil misreads the zone otherwise."""
    if dst > timedelta(0) or (negative_dst and dst == timedelta(0)):
        return "DAYLIGHT"
    return "STANDARD"


def _transitions(zone: zoneinfo.ZoneInfo, first_year: int, last_year: int) -> list[_Transition]:
    """Every change of offset, name or DST flag from ``first_year`` through ``last_year``."""
    found: list[_Transition] = []
    day = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    state = _state(zone, day)
    while day < end:
        following = day + timedelta(days=1)
        next_state = _state(zone, following)
        if next_state != state:
            low, high = day, following
            while high - low > timedelta(seconds=1):  # bisect to the second
                middle = low + (high - low) / 2
                if _state(zone, middle) == state:
                    low = middle
                else:
                    high = middle
            high = high.replace(microsecond=0)
            found.append(_Transition(high, state[0], next_state[0], next_state[1], next_state[2]))
        day, state = following, next_state
    return found


def _format_offset(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}{minutes:02d}" + (f"{secs:02d}" if secs else "")


def _observance(run: _Run, open_ended: bool, negative_dst: bool) -> list[str]:
    """STANDARD/DAYLIGHT lines for a run of transitions that follow one yearly rule."""
    first = run.transitions[0]
    kind = _kind(first.dst, negative_dst)
    lines = [
        f"BEGIN:{kind}",
        content_line("DTSTART", format_wall(first.local_start)),
    ]
    if len(run.transitions) > 1 or open_ended:
        rule = f"FREQ=YEARLY;BYMONTH={first.local_start.month};{run.byday()}"
        if not open_ended:
            # A day past the last onset: RFC 5545 readers compare UNTIL in UTC, dateutil's
            # tzical compares it with local time; both then keep the last onset.
            rule += ";UNTIL=" + format_utc(run.transitions[-1].at + timedelta(days=1))
        lines.append(content_line("RRULE", rule))
    lines += [
        content_line("TZNAME", first.name),
        content_line("TZOFFSETFROM", _format_offset(first.offset_from)),
        content_line("TZOFFSETTO", _format_offset(first.offset_to)),
        f"END:{kind}",
    ]
    return lines


@functools.lru_cache(maxsize=512)
def vtimezone_lines(tzid: str, year: int) -> tuple[str, ...]:
    """Unfolded content lines of a VTIMEZONE for IANA zone ``tzid``, valid from ``year``.

    Raises ``ValueError`` when ``tzid`` is not a zone of the installed database.
    """
    try:
        zone = zoneinfo.ZoneInfo(tzid)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ValueError(f"unknown time zone {tzid!r}") from error
    first_year = year - 1  # one year of margin: instances are compared in UTC
    last_year = max(SCAN_UNTIL_YEAR, first_year + _MIN_SCAN_YEARS)
    transitions = _transitions(zone, first_year, last_year)

    offset, name, initial_dst = _state(zone, datetime(first_year, 1, 1, tzinfo=UTC))
    negative_dst = initial_dst < timedelta(0) or any(t.dst < timedelta(0) for t in transitions)

    lines = ["BEGIN:VTIMEZONE", content_line("TZID", tzid)]
    if not transitions or transitions[0].at.year > first_year:
        # No change early on: say which offset holds from the start of the covered years.
        kind = _kind(initial_dst, negative_dst)
        lines += [
            f"BEGIN:{kind}",
            f"DTSTART:{first_year:04d}0101T000000",
            content_line("TZNAME", name),
            content_line("TZOFFSETFROM", _format_offset(offset)),
            content_line("TZOFFSETTO", _format_offset(offset)),
            f"END:{kind}",
        ]

    # Group transitions into runs of the same yearly rule in consecutive years.
    runs: list[_Run] = []
    open_runs: dict[tuple[object, ...], _Run] = {}
    for transition in transitions:
        run = open_runs.get(transition.rule_key)
        if run is not None and run.accepts(transition):
            run.add(transition)
        else:
            run = open_runs[transition.rule_key] = _Run.start(transition)
            runs.append(run)
    for run in runs:
        # A rule still observed in the last scanned year is taken to continue.
        last = run.transitions[-1].local_start.year
        lines += _observance(run, len(run.transitions) > 1 and last >= last_year, negative_dst)
    return (*lines, "END:VTIMEZONE")
