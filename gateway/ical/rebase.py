"""A series made cheap for someone else to expand over one window.

Some REPORTs (``C:expand``, ``free-busy-query``) make the CalDAV library expand series itself:
dateutil walks every instance from DTSTART to the window, so a dense never-ending rule asked
about a far-future week costs seconds. :func:`for_window` hands it an equivalent object instead:
the master's DTSTART moved to the first instance of the rule's period that holds the window
(:func:`gateway.ical.search.skip_to`; every BY part dateutil derived from the old DTSTART
written out, UNTIL kept), so the expansion costs what the window holds. A series with more
instances in the window than :data:`~gateway.ical.budget.REPORT_UNITS` pays for is not handed
over at all. Only the master's DTSTART, DTEND and RRULE lines change; every other byte stays.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dateutil.rrule import rrule

from gateway.ical.budget import REPORT_UNITS, Budget
from gateway.ical.contentlines import LogicalLine, fold, line_ending, logical_lines
from gateway.ical.patch import master_block, own_lines
from gateway.ical.recurrence import rule_texts
from gateway.ical.rules import Rule, build_rule
from gateway.ical.search import metered, skip_to
from gateway.ical.structure import Part, load_object
from gateway.ical.timing import format_date, format_utc, format_wall

_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Rule parts read from dateutil's rule as it runs (derived from DTSTART or given).
_EXPLICIT = (("BYMONTH", "_bymonth"), ("BYWEEKNO", "_byweekno"), ("BYYEARDAY", "_byyearday"),
             ("BYHOUR", "_byhour"), ("BYMINUTE", "_byminute"), ("BYSECOND", "_bysecond"),
             ("BYSETPOS", "_bysetpos"))
_KEPT = frozenset({"FREQ", "INTERVAL", "WKST", "UNTIL"})


def for_window(text: str, start: datetime, end: datetime) -> str | None:
    """``text``, or an equivalent object whose expansion over [start, end) is cheap; None
    when the series has more instances there than a REPORT may expand for one object.

    Raises InvalidCalendarObject for an object that cannot be read.
    """
    if "RRULE" not in text.upper():
        return text  # a single event or RDATEs: what the object lists
    calendar_object = load_object(text)
    master = calendar_object.master
    if master is None:
        return text
    rules = [build_rule(rule, master.timing.start) for rule in rule_texts(master)]
    if not rules:
        return text
    # An instance that began before the window may still be on inside it.
    after = start - master.timing.length - timedelta(hours=1)
    movable = (len(rules) == 1 and rules[0].count is None
               and not any(part.this_and_future for part in calendar_object.overrides))
    budget = Budget(REPORT_UNITS)
    for rule in rules:
        for _ in rule.starts(end, budget, after if movable else None):
            pass
    if budget.exhausted:
        return None
    if not movable:
        return text
    rule = rules[0]
    moved = skip_to(rule.base, after)
    if moved is rule.base:
        return text
    stop = end if rule.until is None else min(end, rule.until)
    first = next(metered(moved, stop, Budget(REPORT_UNITS)), None)
    return _rewritten(text, master, rule, moved, first)


def _rewritten(text: str, master: Part, rule: Rule, moved: rrule,
               first: datetime | None) -> str:
    """The text with the master starting at ``first`` (None: the rule has no instance left
    in the window, so it is dropped and the master keeps only its own instance)."""
    newline = line_ending(text)
    lines = logical_lines(text)
    output = [line.raw for line in lines]
    start = master.timing.start
    for index in own_lines(lines, master_block(lines)):
        line = lines[index]
        if line.name == "RRULE":
            output[index] = "" if first is None else fold(f"RRULE:{_rule_text(rule, moved)}",
                                                          newline)
        elif first is None:
            continue
        elif line.name == "DTSTART":
            output[index] = fold(f"{line.head}:{_value(line, first, start.is_date)}", newline)
        elif line.name == "DTEND":
            output[index] = fold(_end_line(line, first, master), newline)
    return "".join(output)


def _value(line: LogicalLine, moment: datetime, is_date: bool) -> str:
    """``moment`` (in the zone the line's value is written in) in the line's own form."""
    if is_date:
        return format_date(moment.date())
    if line.value.strip().upper().endswith("Z"):
        return format_utc(moment)
    return format_wall(moment.replace(tzinfo=None))


def _end_line(line: LogicalLine, first: datetime, master: Part) -> str:
    """DTEND keeping the exact length DTSTART..DTEND had (what an expansion uses)."""
    length = master.timing.length
    if master.timing.start.is_date:
        return f"{line.head}:{format_date(first.date() + timedelta(days=length.days))}"
    if master.timing.start.zone is None and not line.value.strip().upper().endswith("Z"):
        return f"{line.head}:{format_wall(first.replace(tzinfo=None) + length)}"  # floating
    return f"DTEND:{format_utc(first + length)}"


def _rule_text(rule: Rule, moved: rrule) -> str:
    """The RRULE of ``moved``: the original's FREQ, INTERVAL, WKST and UNTIL, and every BY
    part as the rule runs, so nothing is derived from the new DTSTART."""
    kept = [part for part in rule.text.strip().removeprefix("RRULE:").split(";")
            if part.partition("=")[0].strip().upper() in _KEPT]
    parts = list(kept)
    for name, attribute in _EXPLICIT:
        found = getattr(moved, attribute)
        if found:
            parts.append(f"{name}={','.join(str(value) for value in sorted(found))}")
    month_days = [*(moved._bymonthday or ()), *(moved._bynmonthday or ())]  # type: ignore[attr-defined]
    if month_days:
        parts.append(f"BYMONTHDAY={','.join(str(day) for day in sorted(month_days))}")
    days = [_DAYS[day] for day in sorted(moved._byweekday or ())]  # type: ignore[attr-defined]
    days += [f"{n}{_DAYS[day]}" for day, n in sorted(moved._bynweekday or ())]  # type: ignore[attr-defined]
    if days:
        parts.append(f"BYDAY={','.join(days)}")
    return ";".join(parts)
