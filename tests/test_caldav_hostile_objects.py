"""Issue 16 item 2: a stored object can never break a calendar.

A never-ending series whose RDATE value type differs from its DTSTART made Radicale's filter
compare naive and aware datetimes: every time-range query past the index horizon on that
calendar, and on each invitee's invitations calendar, answered 500. Such objects are now
refused at PUT with the reason; one stored before that (written here through the service
path, as an older version accepted it) is left out of the queries it cannot be evaluated for,
and logged, while the rest of the calendar answers.
"""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime

import pytest
import requests
from caldav_peer import Gateway, Rep, new_rep

from gateway import calendars, client_writes
from gateway.users import get_user

ALL_DAY_WITH_TIMED_RDATE = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20261201T090000Z\r
DTSTART;VALUE=DATE:20261207\r
DTEND;VALUE=DATE:20261208\r
RRULE:FREQ=WEEKLY\r
RDATE:20261209T100000Z\r
SUMMARY:Site visit\r
{attendee}END:VEVENT\r
END:VCALENDAR\r
"""
TIMED_WITH_DATE_RDATE = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20261201T090000Z\r
DTSTART:20261207T090000Z\r
DTEND:20261207T100000Z\r
RRULE:FREQ=WEEKLY\r
RDATE;VALUE=DATE:20261209\r
SUMMARY:Site visit\r
{attendee}END:VEVENT\r
END:VCALENDAR\r
"""
WEEKLY = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20261201T090000Z\r
DTSTART:20261207T140000Z\r
DTEND:20261207T150000Z\r
RRULE:FREQ=WEEKLY\r
SUMMARY:Pipeline review\r
{attendee}END:VEVENT\r
END:VCALENDAR\r
"""
MIXED = {"all-day, timed RDATE": ALL_DAY_WITH_TIMED_RDATE,
         "timed, all-day RDATE": TIMED_WITH_DATE_RDATE}
QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>{extra}
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""
# A prop-filter makes the filter one Radicale evaluates itself (not the index's simple shape).
BY_SUMMARY = ('<C:prop-filter name="SUMMARY"><C:text-match collation="i;ascii-casemap">'
              "e</C:text-match></C:prop-filter>")
UID = re.compile(r"^UID:(.+?)\r?$", re.MULTILINE)
WINDOWS = {
    "first week": (datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 14, tzinfo=UTC)),
    "past the horizon": (datetime(2031, 3, 3, tzinfo=UTC), datetime(2031, 3, 10, tzinfo=UTC)),
    "far future": (datetime(2090, 1, 2, tzinfo=UTC), datetime(2090, 1, 9, tzinfo=UTC)),
}


def attendee(guest: Rep) -> str:
    return f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{guest.email}\r\n"


def put(gateway: Gateway, rep: Rep, name: str, body: str) -> requests.Response:
    return requests.put(f"{gateway.url}{rep.username}/meeting/{name}.ics", data=body.encode(),
                        auth=rep.auth, timeout=30,
                        headers={"Content-Type": "text/calendar; charset=utf-8"})


def report(gateway: Gateway, rep: Rep, slug: str, window: str, extra: str = "") -> set[str]:
    """UIDs a time-range calendar-query finds; the REPORT must answer 207."""
    start, end = WINDOWS[window]
    body = QUERY.format(start=f"{start:%Y%m%dT%H%M%SZ}", end=f"{end:%Y%m%dT%H%M%SZ}",
                        extra=extra)
    answer = requests.request("REPORT", f"{gateway.url}{rep.username}/{slug}/",
                              data=body.encode(), auth=rep.auth, timeout=60,
                              headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status_code == 207, f"{slug} {window}: {answer.status_code} {answer.text}"
    return set(UID.findall(html.unescape(answer.text)))


@pytest.mark.parametrize("kind", sorted(MIXED))
def test_a_mixed_type_rdate_series_is_refused_with_the_reason(
    gateway: Gateway, rep: Rep, kind: str
) -> None:
    guest = new_rep(gateway.store)
    body = MIXED[kind].format(uid="mixed@test", attendee=attendee(guest))
    answer = put(gateway, rep, "mixed", body)
    assert answer.status_code == 400
    assert "RDATE" in answer.text and "does not match DTSTART" in answer.text
    assert requests.get(f"{gateway.url}{rep.username}/meeting/mixed.ics", auth=rep.auth,
                        timeout=10).status_code == 404
    for window in WINDOWS:
        assert report(gateway, guest, "invitations", window) == set()


def store_as_an_older_version_did(gateway: Gateway, rep: Rep, name: str, body: str,
                                  accepted_as: str) -> None:
    """Store ``body`` with the fields of ``accepted_as``: the PUT path without the check."""
    parsed = client_writes.parse_client_object(accepted_as)
    with gateway.store.transaction() as session:
        user = get_user(session, rep.username)
        view = calendars.user_calendar(session, user, "meeting")
        assert view is not None
        client_writes.put_event(session, user, view, f"{name}.ics", body, parsed)


@pytest.mark.parametrize("kind", sorted(MIXED))
def test_a_stored_object_that_cannot_be_evaluated_never_breaks_a_calendar(
    gateway: Gateway, kind: str
) -> None:
    rep, guest = new_rep(gateway.store), new_rep(gateway.store)
    invite = attendee(guest)
    assert put(gateway, rep, "review", WEEKLY.format(uid="review@test", attendee=invite)
               ).status_code == 201
    hostile = MIXED[kind].format(uid="mixed@test", attendee=invite)
    store_as_an_older_version_did(gateway, rep, "mixed", hostile,
                                  hostile.replace("RDATE", "X-WAS-RDATE"))
    assert requests.get(f"{gateway.url}{rep.username}/meeting/mixed.ics", auth=rep.auth,
                        timeout=10).text == hostile  # still served as stored
    for who, slug in ((rep, "meeting"), (guest, "invitations")):
        for window in WINDOWS:
            for extra in ("", BY_SUMMARY):
                began = time.monotonic()
                found = report(gateway, who, slug, window, extra)
                assert time.monotonic() - began < 30
                assert "review@test" in found, (slug, window, extra)
                if window != "first week":  # its first instance is indexed; the rest is not
                    assert "mixed@test" not in found, (slug, window, extra)
    assert "cannot evaluate" in gateway.log()
