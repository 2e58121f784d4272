"""A series handed to Radicale for one window expands to the same instances there.

Radicale expands with vobject's rule set (DTSTART included as an instance); the rebased object
must give exactly the original's instances inside the window, whatever the rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import vobject
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ical.rebase import for_window

ZONE = """BEGIN:VTIMEZONE\r
TZID:Europe/Berlin\r
BEGIN:STANDARD\r
DTSTART:19701025T030000\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:19700329T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
END:DAYLIGHT\r
END:VTIMEZONE\r
"""


def event(rule: str, start: str, end: str, extra: str = "") -> str:
    zone = ZONE if "TZID" in start else ""
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tests//EN\r\n{zone}BEGIN:VEVENT\r\n"
            f"UID:r@test\r\nDTSTAMP:20261201T090000Z\r\nDTSTART{start}\r\nDTEND{end}\r\n"
            f"RRULE:{rule}\r\n{extra}SUMMARY:Series\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def instances(text: str, start: datetime, end: datetime) -> list[datetime]:
    """What Radicale's expansion finds: vobject's rule set, DTSTART included."""
    master = vobject.readOne(text).vevent
    naive = _naive(master)
    low, high = (start.replace(tzinfo=None), end.replace(tzinfo=None)) if naive else (start, end)
    rules = master.getrruleset(addRDate=True)
    if rules is None:  # no RRULE left: the master's own instance
        moment = master.dtstart.value
        moment = moment if isinstance(moment, datetime) else datetime.combine(moment, time())
        found = [moment] if low <= moment <= high else []
    else:
        found = rules.between(low, high, inc=True)
    return [moment if naive else moment.astimezone(UTC) for moment in found]


def _naive(master: vobject.base.Component) -> bool:
    """All-day and floating series expand in naive wall time."""
    value = master.dtstart.value
    return not isinstance(value, datetime) or value.tzinfo is None


def duration(text: str) -> timedelta:
    master = vobject.readOne(text).vevent
    return master.dtend.value - master.dtstart.value


FORMS = {
    "utc": (":20240115T093000Z", ":20240115T101500Z"),
    "zoned": (";TZID=Europe/Berlin:20240115T093000", ";TZID=Europe/Berlin:20240115T101500"),
    "floating": (":20240115T093000", ":20240115T101500"),
    "all-day": (";VALUE=DATE:20240115", ";VALUE=DATE:20240116"),
}
RULES = st.one_of(
    st.builds(lambda i, m: f"FREQ=HOURLY;INTERVAL={i};BYMINUTE={m}",
              st.integers(1, 7), st.sampled_from(["0", "0,30", "5,10,15"])),
    st.builds(lambda i, d: f"FREQ=DAILY;INTERVAL={i}{d}", st.integers(1, 5),
              st.sampled_from(["", ";BYDAY=MO,WE,FR", ";BYHOUR=8,17"])),
    st.builds(lambda i, d: f"FREQ=WEEKLY;INTERVAL={i}{d}", st.integers(1, 4),
              st.sampled_from(["", ";BYDAY=TU,TH", ";BYDAY=SU;WKST=SU"])),
    st.builds(lambda i, d: f"FREQ=MONTHLY;INTERVAL={i}{d}", st.integers(1, 5),
              st.sampled_from(["", ";BYDAY=1MO", ";BYDAY=-1FR", ";BYMONTHDAY=1,15",
                               ";BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"])),
    st.builds(lambda i, d: f"FREQ=YEARLY;INTERVAL={i}{d}", st.integers(1, 3),
              st.sampled_from(["", ";BYMONTH=3;BYDAY=2SU", ";BYYEARDAY=100", ";BYWEEKNO=20"])),
)


@settings(max_examples=100, deadline=None)
@given(rule=RULES, form=st.sampled_from(sorted(FORMS)),
       days=st.integers(30, 12_000), span=st.sampled_from([1, 7, 31]))
def test_a_rebased_series_has_the_same_instances_in_its_window(
    rule: str, form: str, days: int, span: int
) -> None:
    if form == "all-day" and rule.startswith("FREQ=HOURLY"):
        return  # an hourly rule on a date has no time to repeat
    text = event(rule, *FORMS[form])
    start = datetime(2024, 1, 15, tzinfo=UTC) + timedelta(days=days, hours=days % 24)
    end = start + timedelta(days=span)
    rebased = for_window(text, start, end)
    if rebased is None:
        return  # more instances than a REPORT expands for one object: left out
    low = start - duration(text)
    assert instances(rebased, low, end) == instances(text, low, end)
    assert duration(rebased) == duration(text)


def test_the_object_keeps_every_other_byte() -> None:
    text = event("FREQ=WEEKLY", *FORMS["zoned"], extra="X-KEEP;A=1:yes\r\n")
    rebased = for_window(text, datetime(2090, 1, 2, tzinfo=UTC), datetime(2090, 1, 9, tzinfo=UTC))
    assert rebased is not None and rebased != text
    changed = set(text.splitlines()) ^ set(rebased.splitlines())
    assert {line.split(":")[0].split(";")[0] for line in changed} == {"DTSTART", "DTEND", "RRULE"}


def test_exdates_and_overrides_still_apply() -> None:
    text = event("FREQ=DAILY", *FORMS["utc"], extra="EXDATE:20900103T093000Z\r\n")
    text = text.replace("END:VCALENDAR", "BEGIN:VEVENT\r\nUID:r@test\r\nDTSTAMP:20261201T090000Z"
                        "\r\nRECURRENCE-ID:20900104T093000Z\r\nDTSTART:20900104T120000Z\r\n"
                        "DTEND:20900104T130000Z\r\nSUMMARY:Moved\r\nEND:VEVENT\r\nEND:VCALENDAR")
    start, end = datetime(2090, 1, 2, tzinfo=UTC), datetime(2090, 1, 6, tzinfo=UTC)
    rebased = for_window(text, start, end)
    assert rebased is not None and "RECURRENCE-ID:20900104T093000Z" in rebased
    assert [moment.day for moment in instances(rebased, start, end)] == [2, 4, 5]


def test_a_rule_ended_before_the_window_keeps_only_its_own_instance() -> None:
    text = event("FREQ=DAILY;UNTIL=20250101T000000Z", *FORMS["utc"])
    rebased = for_window(text, datetime(2090, 1, 2, tzinfo=UTC), datetime(2090, 1, 9, tzinfo=UTC))
    assert rebased is not None
    assert instances(rebased, datetime(2090, 1, 2, tzinfo=UTC),
                     datetime(2090, 1, 9, tzinfo=UTC)) == []


@pytest.mark.parametrize("rule", ["FREQ=HOURLY;BYMINUTE=" + ",".join(map(str, range(60)))])
def test_more_instances_than_a_report_expands_are_refused(rule: str) -> None:
    text = event(rule, *FORMS["utc"])
    start = datetime(2090, 1, 2, tzinfo=UTC)
    assert for_window(text, start, start + timedelta(days=7)) is None
    assert for_window(text, start, start + timedelta(hours=1)) is not None
