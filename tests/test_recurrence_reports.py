"""Expanding REPORTs cost what they return: ``C:expand`` and ``free-busy-query``.

Radicale expands a series itself for these (from DTSTART up to the window, every instance on
the way), so a dense never-ending rule queried far in the future cost seconds. Against the
running gateway: the hostile series is answered within a bounded amount of server CPU, and an
honest series far from its DTSTART is still expanded exactly.
"""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from caldav_peer import EVENT, Gateway, Rep, new_rep
from dateutil.rrule import rrulestr
from test_recurrence_budget import EVERY_MINUTE, MARGIN, RULE_MS_PER_PUT, cpu_seconds, put

EXPAND = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data><C:expand start="{start}" end="{end}"/>
  </C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""
MULTIGET = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data><C:expand start="{start}" end="{end}"/>
  </C:calendar-data></D:prop>
  {hrefs}
</C:calendar-multiget>"""
FREE_BUSY = """<?xml version="1.0" encoding="utf-8"?>
<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">
  <C:time-range start="{start}" end="{end}"/>
</C:free-busy-query>"""
RECURRENCE_ID = re.compile(r"^RECURRENCE-ID[^:\r\n]*:(\S+?)\r?$", re.MULTILINE)
UID = re.compile(r"^UID:(.+?)\r?$", re.MULTILINE)
FREEBUSY = re.compile(r"^FREEBUSY[^:\r\n]*:(\S+?)\r?$", re.MULTILINE)
MS_PER_RETURNED_INSTANCE = 2.0  # server CPU, with a margin for the parallel suite
FAR = (datetime(2031, 3, 3, tzinfo=UTC), datetime(2046, 6, 4, tzinfo=UTC),
       datetime(2090, 1, 2, tzinfo=UTC))


def stamp(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%SZ}"


def series(uid: str, rule: str, start: str = "20261207T090000Z",
           end: str = "20261207T091500Z", extra: str = "") -> str:
    return EVENT.format(uid=uid, summary="Stand-up", start=start, end=end).replace(
        "END:VEVENT", f"RRULE:{rule}\r\n{extra}END:VEVENT")


def report(gateway: Gateway, rep: Rep, body: str, depth: str = "1") -> requests.Response:
    return requests.request("REPORT", f"{gateway.url}{rep.username}/meeting/",
                            data=body.encode(), auth=rep.auth, timeout=120,
                            headers={"Depth": depth, "Content-Type": "application/xml"})


def measured(gateway: Gateway, send: object) -> tuple[requests.Response, float]:
    before = cpu_seconds(gateway.process.pid)
    answer = send()  # type: ignore[operator]
    return answer, (cpu_seconds(gateway.process.pid) - before) * 1000


def expanded(answer: requests.Response) -> dict[str, set[str]]:
    """UID -> the RECURRENCE-IDs of its expanded instances, from a 207 answer."""
    assert answer.status_code == 207, answer.text
    found: dict[str, set[str]] = {}
    for response in re.split(r"</(?:D:)?response>", html.unescape(answer.text))[:-1]:
        uids = UID.findall(response)
        if uids:
            found.setdefault(uids[0], set()).update(RECURRENCE_ID.findall(response))
    return found


@pytest.fixture
def hostile(gateway: Gateway) -> Rep:
    """A rep with a weekly series and three every-minute series, all from December 2026."""
    rep = new_rep(gateway.store)
    assert put(gateway, rep, "weekly", series("weekly@test", "FREQ=WEEKLY")).status_code == 201
    for number in range(3):
        answer = put(gateway, rep, f"h{number}", series(f"h{number}@test", EVERY_MINUTE))
        assert answer.status_code == 201, answer.text
    return rep


@pytest.mark.parametrize("start", FAR, ids=lambda moment: f"{moment:%Y}")
def test_an_expanded_week_far_ahead_costs_what_it_returns(
    gateway: Gateway, hostile: Rep, start: datetime
) -> None:
    end = start + timedelta(days=7)
    body = EXPAND.format(start=stamp(start), end=stamp(end))
    answer, spent_ms = measured(gateway, lambda: report(gateway, hostile, body))
    print(f"expand {start:%Y}: {spent_ms:.0f} ms server CPU")
    found = expanded(answer)
    # The weekly series: exactly its one instance of the week, at 09:00 on the same weekday.
    weekly = rrulestr("FREQ=WEEKLY", dtstart=datetime(2026, 12, 7, 9, tzinfo=UTC))
    expected = {stamp(moment) for moment in weekly.between(start, end)}
    assert found.get("weekly@test") == expected and len(expected) == 1
    # The every-minute series have 10,080 instances a week: more than the gateway expands
    # for one series, so they are left out (and logged) instead of costing seconds.
    assert set(found) == {"weekly@test"}
    assert spent_ms < 2 * MARGIN * RULE_MS_PER_PUT, f"{spent_ms:.0f} ms"
    assert "left out of an expanded REPORT" in gateway.log()


def test_an_expanded_hour_of_a_dense_series_is_exact(gateway: Gateway, hostile: Rep) -> None:
    start = datetime(2090, 1, 2, 12, tzinfo=UTC)
    body = EXPAND.format(start=stamp(start), end=stamp(start + timedelta(hours=1)))
    answer, spent_ms = measured(gateway, lambda: report(gateway, hostile, body))
    print(f"expand an hour of 3 dense series: {spent_ms:.0f} ms server CPU")
    found = expanded(answer)
    minutes = {stamp(start + timedelta(minutes=minute)) for minute in range(60)}
    # An instance lasts 15 minutes: the 14 that began in the hour before are still on.
    earlier = {stamp(start - timedelta(minutes=minute)) for minute in range(1, 15)}
    # Radicale's expansion includes an instance starting at the window's end (inclusive).
    at_end = {stamp(start + timedelta(hours=1))}
    assert {uid: found[uid] for uid in found if uid != "weekly@test"} == {
        f"h{number}@test": minutes | earlier | at_end for number in range(3)}
    # What it returns: Radicale writes each of the 225 instances out (about 0.5 ms each here).
    returned = sum(len(instances) for instances in found.values())
    assert spent_ms < MS_PER_RETURNED_INSTANCE * returned, f"{spent_ms:.0f} ms"


def test_a_daily_series_years_old_expands_exactly(gateway: Gateway) -> None:
    rep = new_rep(gateway.store)
    zone = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000"
            "\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\n"
            "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\n"
            "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200"
            "\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")
    body = series("daily@test", "FREQ=DAILY;INTERVAL=3;BYDAY=MO,TU,WE,TH,FR",
                  start="20000103T093000", end="20000103T100000").replace(
        "DTSTART:20000103T093000", "DTSTART;TZID=Europe/Berlin:20000103T093000").replace(
        "DTEND:20000103T100000", "DTEND;TZID=Europe/Berlin:20000103T100000").replace(
        "BEGIN:VEVENT", zone + "BEGIN:VEVENT", 1)
    body = body.replace("END:VEVENT", "EXDATE;TZID=Europe/Berlin:20600105T093000\r\nEND:VEVENT")
    assert put(gateway, rep, "daily", body).status_code == 201
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    rule = rrulestr("FREQ=DAILY;INTERVAL=3;BYDAY=MO,TU,WE,TH,FR",
                    dtstart=datetime(2000, 1, 3, 9, 30, tzinfo=berlin))
    for start in (datetime(2027, 3, 22, tzinfo=UTC), datetime(2059, 12, 29, tzinfo=UTC)):
        end = start + timedelta(days=14)
        found = expanded(report(gateway, rep, EXPAND.format(start=stamp(start),
                                                            end=stamp(end))))
        expected = {stamp(moment.astimezone(UTC)) for moment in rule.between(start, end)
                    if moment != datetime(2060, 1, 5, 9, 30, tzinfo=berlin)}
        assert expected and found == {"daily@test": expected}


def test_a_multiget_expanding_a_dense_series_is_refused_with_the_reason(
    gateway: Gateway, hostile: Rep
) -> None:
    start = FAR[-1]
    hrefs = "".join(f"<D:href>/{hostile.username}/meeting/{name}.ics</D:href>"
                    for name in ("weekly", "h0"))
    body = MULTIGET.format(start=stamp(start), end=stamp(start + timedelta(days=7)), hrefs=hrefs)
    answer, spent_ms = measured(gateway, lambda: report(gateway, hostile, body, depth="0"))
    assert answer.status_code == 403, answer.text
    assert "max-instances" in answer.text and "h0.ics" in answer.text
    assert spent_ms < 2 * MARGIN * RULE_MS_PER_PUT, f"{spent_ms:.0f} ms"
    # Without the dense series the same multiget expands.
    body = MULTIGET.format(start=stamp(start), end=stamp(start + timedelta(days=7)),
                           hrefs=f"<D:href>/{hostile.username}/meeting/weekly.ics</D:href>")
    assert set(expanded(report(gateway, hostile, body, depth="0"))) == {"weekly@test"}


@pytest.mark.parametrize("start", FAR, ids=lambda moment: f"{moment:%Y}")
def test_free_busy_far_ahead_costs_what_it_returns(
    gateway: Gateway, hostile: Rep, start: datetime
) -> None:
    end = start + timedelta(days=7)
    body = FREE_BUSY.format(start=stamp(start), end=stamp(end))
    began = time.monotonic()
    answer, spent_ms = measured(gateway, lambda: report(gateway, hostile, body))
    print(f"free-busy {start:%Y}: {spent_ms:.0f} ms server CPU, {time.monotonic() - began:.2f} s")
    assert answer.status_code == 200, answer.text
    busy = FREEBUSY.findall(answer.text)
    weekly = rrulestr("FREQ=WEEKLY", dtstart=datetime(2026, 12, 7, 9, tzinfo=UTC))
    (instance,) = weekly.between(start, end)
    assert any(stamp(instance) in period for period in busy), answer.text
    assert spent_ms < 2 * MARGIN * RULE_MS_PER_PUT, f"{spent_ms:.0f} ms"


def test_free_busy_of_an_hour_counts_a_dense_series(gateway: Gateway, hostile: Rep) -> None:
    start = datetime(2090, 1, 2, 12, tzinfo=UTC)
    body = FREE_BUSY.format(start=stamp(start), end=stamp(start + timedelta(hours=1)))
    answer, spent_ms = measured(gateway, lambda: report(gateway, hostile, body))
    assert answer.status_code == 200, answer.text
    # Every minute is busy: the merged period covers the whole hour.
    assert f"{stamp(start)}/{stamp(start + timedelta(hours=1))}" in "".join(
        FREEBUSY.findall(answer.text)).replace(",", ""), answer.text
    assert spent_ms < 2 * MARGIN * RULE_MS_PER_PUT, f"{spent_ms:.0f} ms"


FILTERED = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
    <C:prop-filter name="SUMMARY"><C:text-match>stand</C:text-match></C:prop-filter>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


def test_a_filter_radicale_evaluates_far_ahead_is_bounded(gateway: Gateway, hostile: Rep) -> None:
    start = FAR[-1]
    body = FILTERED.format(start=stamp(start), end=stamp(start + timedelta(days=7)))
    answer, spent_ms = measured(gateway, lambda: report(gateway, hostile, body))
    assert answer.status_code == 207, answer.text
    hrefs = set(re.findall(r"/meeting/([^<]+)\.ics<", answer.text))
    # The weekly series matches; the every-minute ones hold more instances in the week than
    # the server expands for one object, so Radicale's filter does not get them.
    assert hrefs == {"weekly"}, answer.text
    assert spent_ms < 2 * MARGIN * RULE_MS_PER_PUT, f"{spent_ms:.0f} ms"
