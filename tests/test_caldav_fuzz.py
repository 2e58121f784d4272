"""2,000 mutated calendar objects PUT to the running gateway: never a 5xx, never a hang; after
each object the gateway stores, a week query and a far-future query still answer, and the
calendar answers GET and REPORT at the end.

The objects are the real client fixtures under tests/fixtures/ics, mutated by Hypothesis with
a fixed seed: lines dropped, doubled, swapped, truncated, given hostile values (endless or
empty rules, impossible dates, unknown time zones, huge numbers), line endings changed, bytes
that are not UTF-8. A few hrefs are reused, so replacements are fuzzed as well as creations.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import requests
from caldav_peer import Gateway, Rep, new_rep
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ics"
OBJECTS = [path.read_text() for path in sorted(FIXTURES.glob("*.ics"))]
EXAMPLES = 2000
HREFS = 25
REQUEST_TIMEOUT = 30  # a hang fails the test
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
QUERY = {"Content-Type": "application/xml; charset=utf-8", "Depth": "1"}
# A week of the fixtures' dates, and one far past the occurrence index's horizon.
AFTER_EACH_STORE = (("20261207T000000Z", "20261214T000000Z"),
                    ("20900101T000000Z", "20900108T000000Z"))

HOSTILE_LINES = [
    "BEGIN:VEVENT", "END:VEVENT", "BEGIN:VCALENDAR", "END:VCALENDAR", "BEGIN:VTIMEZONE",
    "END:VTIMEZONE", "BEGIN:VALARM", "END:VALARM", "BEGIN:VTODO", "BEGIN:X-UNKNOWN",
    "RRULE:FREQ=SECONDLY", "RRULE:FREQ=MINUTELY;INTERVAL=0", "RRULE:FREQ=DAILY;COUNT=0",
    "RRULE:FREQ=DAILY;COUNT=99999999999", "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    "RRULE:FREQ=WEEKLY;UNTIL=19000101T000000Z", "RRULE:FREQ=MONTHLY;BYDAY=53MO",
    "RRULE:FREQ=HOURLY;BYSETPOS=0", "RRULE:", "EXDATE:not-a-date", "EXDATE;VALUE=DATE:20261207",
    "RDATE;VALUE=PERIOD:20261207T090000Z/20261206T090000Z", "DTSTART:99991231T235959Z",
    "DTSTART:00010101T000000Z", "DTSTART;VALUE=DATE:00000000", "DTSTART:20261307T250000Z",
    "DTSTART;TZID=Nowhere/Land:20261207T090000", "DTSTART;TZID=:20261207T090000",
    "DTEND:19700101T000000Z", "DTEND;VALUE=DATE:20261207", "DURATION:-P1D",
    "DURATION:P99999999W", "DURATION:PT", "RECURRENCE-ID:20261207T090000Z",
    "RECURRENCE-ID;RANGE=THISANDFUTURE:20261207T090000Z", "UID:", "UID:" + "u" * 5000,
    "SUMMARY:" + "é" * 2000, "DESCRIPTION:" + "\\n" * 3000, "ATTENDEE:mailto:",
    "ATTENDEE;PARTSTAT=ACCEPTED;CN=\"unclosed:mailto:a@b.example", "ORGANIZER:mailto:",
    "ORGANIZER;CN=Boss:mailto:boss@customer.example", "SEQUENCE:-1",
    "SEQUENCE:99999999999999999999999", "STATUS:CANCELLED", "TRANSP:", "CLASS:PRIVATE",
    "TZOFFSETFROM:+9999", "TZOFFSETTO:garbage", "TZID:Europe/Berlin", "X-\u0000:nul",
    " folded continuation", "", ":no name", "DTSTAMP:", "GEO:1000;1000", "PRIORITY:-5",
    "CATEGORIES:" + ",".join(["x"] * 500), "ATTACH;ENCODING=BASE64;VALUE=BINARY:%%%",
    "LAST-MODIFIED:20261207", "CREATED:garbage", "TRIGGER:-PT15M", "ACTION:DISPLAY",
]
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def _mutate(data: st.DataObject, text: str, uid: str) -> bytes:
    lines = re.split(r"\r\n|\n", text)
    if data.draw(st.booleans(), label="own uid"):
        # The href's own UID: a replacement rather than a no-uid-conflict (409).
        lines = [f"UID:{uid}" if line.startswith("UID:") else line for line in lines]
    events = [i + 1 for i, line in enumerate(lines) if line == "BEGIN:VEVENT"] or [0]
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        at = data.draw(st.one_of(st.sampled_from(events),
                                 st.integers(0, max(len(lines) - 1, 0))), label="line")
        kind = data.draw(st.sampled_from(
            ["drop", "double", "swap", "hostile", "value", "insert", "case", "cut"]), label="kind")
        if not lines:
            lines = [""]
        at = min(at, len(lines) - 1)
        if kind == "drop":
            del lines[at]
        elif kind == "double":
            lines.insert(at, lines[at])
        elif kind == "swap":
            other = data.draw(st.integers(0, len(lines) - 1), label="other")
            lines[at], lines[other] = lines[other], lines[at]
        elif kind == "hostile":
            lines.insert(at, data.draw(st.sampled_from(HOSTILE_LINES), label="hostile"))
        elif kind == "value":
            name = lines[at].partition(":")[0]
            lines[at] = f"{name}:{data.draw(TEXT, label='value')}"
        elif kind == "insert":
            where = data.draw(st.integers(0, len(lines[at])), label="where")
            lines[at] = lines[at][:where] + data.draw(TEXT, label="text") + lines[at][where:]
        elif kind == "case":
            lines[at] = lines[at].swapcase()
        else:
            lines = lines[:at]
    ending = data.draw(st.sampled_from(["\r\n", "\r\n", "\n", "\r"]), label="ending")
    raw = ending.join(lines).encode("utf-8")
    if data.draw(st.integers(0, 19), label="bytes") == 0:
        where = data.draw(st.integers(0, len(raw)), label="byte position")
        raw = raw[:where] + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"]),
                                      label="bad bytes") + raw[where:]
    return raw


def _calendar_query(start: str, end: str) -> str:
    return ('<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/>'
            '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter>'
            "</C:filter></C:calendar-query>")


def _after_the_fuzz(gateway: Gateway, rep: Rep) -> None:
    """What a client syncing this calendar now gets: answers, not errors."""
    url = f"{gateway.url}{rep.username}/meeting/"
    xml = {"Content-Type": "application/xml; charset=utf-8", "Depth": "1"}

    def ask(method: str, body: str = "", **headers: str) -> requests.Response:
        answer = requests.request(method, url, data=body.encode(), auth=rep.auth,
                                  headers={**xml, **headers}, timeout=REQUEST_TIMEOUT)
        assert answer.status_code < 500, (method, answer.status_code, answer.text[:300])
        return answer

    listing = ask("PROPFIND", '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
                  "<D:getetag/></D:prop></D:propfind>")
    assert listing.status_code == 207
    stored = [href for href in re.findall(r"<href>([^<]*)</href>", listing.text)
              if href != f"/{rep.username}/meeting/"]
    assert stored, "the fuzz stored nothing: the mutations are too destructive to test much"
    whole = ask("GET")
    assert whole.status_code == 200 and whole.text.startswith("BEGIN:VCALENDAR")
    assert whole.text.count("BEGIN:VEVENT") >= len(stored)
    for start, end in (("20261201T000000Z", "20261231T000000Z"),
                       ("19000101T000000Z", "21000101T000000Z")):
        assert ask("REPORT", _calendar_query(start, end)).status_code == 207
    multiget = ask("REPORT", '<?xml version="1.0"?><C:calendar-multiget xmlns:D="DAV:" '
                   'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
                   "<C:calendar-data/></D:prop>"
                   + "".join(f"<D:href>{href}</D:href>" for href in stored)
                   + "</C:calendar-multiget>")
    assert multiget.status_code == 207 and multiget.text.count("<D:href>") + multiget.text.count(
        "<href>") >= len(stored)
    sync = ask("REPORT", '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:">'
               "<D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
               "</D:sync-collection>")
    assert sync.status_code == 207
    for href in stored:
        one = requests.get(gateway.url.rstrip("/") + href, auth=rep.auth,
                           timeout=REQUEST_TIMEOUT)
        assert one.status_code == 200, (href, one.status_code)


def test_mutated_calendar_objects_never_get_a_5xx_and_the_calendar_still_works(
    gateway: Gateway,
) -> None:
    rep = new_rep(gateway.store)
    client = requests.Session()  # keep-alive, as a syncing client does
    client.auth = rep.auth
    statuses: Counter[int] = Counter()
    slowest = 0.0
    started = time.monotonic()

    @seed(20261201)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
              print_blob=True)
    @given(st.data())
    def put_mutated(data: st.DataObject) -> None:
        nonlocal slowest
        number = data.draw(st.integers(0, HREFS - 1), label="href")
        href = f"fuzz-{number}.ics"
        body = _mutate(data, data.draw(st.sampled_from(OBJECTS), label="fixture"),
                       f"fuzz-{number}@test")
        answer = client.put(f"{gateway.url}{rep.username}/meeting/{href}", data=body,
                            headers=ICS, timeout=REQUEST_TIMEOUT)
        statuses[answer.status_code] += 1
        slowest = max(slowest, answer.elapsed.total_seconds())
        assert answer.status_code < 500, (answer.status_code, answer.text[:300], body[:2000])
        if answer.status_code in (201, 204):  # stored: the calendar must still answer queries
            for start, end in AFTER_EACH_STORE:
                query = client.request("REPORT", f"{gateway.url}{rep.username}/meeting/",
                                       data=_calendar_query(start, end).encode(),
                                       headers=QUERY, timeout=REQUEST_TIMEOUT)
                assert query.status_code == 207, (start, query.status_code, body[:2000])

    with client:
        put_mutated()
    assert sum(statuses.values()) >= EXAMPLES
    _after_the_fuzz(gateway, rep)
    print(f"\n{sum(statuses.values())} PUTs in {time.monotonic() - started:.0f} s, "
          f"slowest {slowest:.2f} s: {dict(sorted(statuses.items()))}")
