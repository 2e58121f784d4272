"""Issue 16 item 1: a recurrence rule costs what it returns, whatever a signed-in rep writes.

Against the running gateway (``serve --only http``) and, for the mail side, a second process
serving the SMTP role on the same database: the worst rules are answered in a few
milliseconds of server CPU each, while another rep's week query and an SMTP session keep
answering. Server time is the CPU the gateway process spent (read from /proc), which a busy
test machine does not inflate the way it inflates wall time.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from caldav_peer import EVENT, Gateway, Rep, new_rep
from peers.bcc_listener import BUYER, CONFIG_NAME, REP, crlf, seed_world, send, write_config
from peers.gateway_process import GatewayProcess, serve

MINUTES = ",".join(str(minute) for minute in range(60))
EVERY_MINUTE = f"FREQ=HOURLY;BYMINUTE={MINUTES}"  # stored, indexed up to the work budget
WEEK_53 = "FREQ=DAILY;BYWEEKNO=53;BYMONTH=1;BYDAY=MO"  # never occurs: refused with a reason
HOSTILE = {"hourly-every-minute": (EVERY_MINUTE, 201), "sparse-week-53": (WEEK_53, 400)}
RULE_MS_PER_PUT = 50.0  # the target for what a rule adds to a PUT, in server CPU
# The server's CPU clock also counts its other threads' work while the suite runs in parallel;
# the target itself is measured by bench/recurrence.py. Before the budget: 47 s, not ms.
MARGIN = 3
PUTS = 6
WEEK_QUERY_SECONDS = 10.0  # wall time on a shared machine: generous; before, over 40 s


def series(uid: str, rule: str) -> str:
    return EVENT.format(uid=uid, summary="Stand-up", start="20261207T090000Z",
                        end="20261207T091500Z").replace(
        "END:VEVENT", f"RRULE:{rule}\r\nEND:VEVENT")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def put(gateway: Gateway, rep: Rep, uid: str, body: str) -> requests.Response:
    return requests.put(f"{gateway.url}{rep.username}/meeting/{uid}.ics", data=body.encode(),
                        auth=rep.auth, timeout=60,
                        headers={"Content-Type": "text/calendar; charset=utf-8"})


QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""
UID = re.compile(r"^UID:(.+?)\r?$", re.MULTILINE)


def week_query(gateway: Gateway, rep: Rep, start: datetime, end: datetime) -> set[str]:
    """A time-range calendar-query, as DAVx5 and Thunderbird send it; the UIDs found.

    (Sent with requests: the caldav library re-expands every recurring answer itself.)
    """
    body = QUERY.format(start=f"{start:%Y%m%dT%H%M%SZ}", end=f"{end:%Y%m%dT%H%M%SZ}")
    answer = requests.request("REPORT", f"{gateway.url}{rep.username}/meeting/",
                              data=body.encode(), auth=rep.auth, timeout=60,
                              headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status_code == 207, answer.text
    return set(UID.findall(html.unescape(answer.text)))


@dataclass
class Smtp:
    process: GatewayProcess
    address: str  # the rep's secret logging address


@pytest.fixture(scope="module")
def smtp(gateway: Gateway, module_database_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smtp]:
    """``serve --only smtp`` on the gateway's database, with the BCC world seeded."""
    directory = tmp_path_factory.mktemp("smtp")
    world = seed_world(gateway.store)
    write_config(directory, module_database_url, dkim_dns="")
    with serve(directory / CONFIG_NAME, directory / "smtp.log") as process:
        yield Smtp(process, world.rep)


def bcc_mail(number: int) -> bytes:
    return crlf(
        f"From: {REP}\nTo: {BUYER}\nSubject: Quote {number}\n"
        f"Message-ID: <budget-{uuid.uuid4().hex}@crm.example>\n"
        "Date: Tue, 01 Dec 2026 09:00:00 +0000\n\nHello.\n".encode())


@dataclass
class Bystanders:
    """Another rep querying a week, and an SMTP session, run until told to stop."""

    gateway: Gateway
    other: Rep
    smtp: Smtp
    stop: threading.Event = field(default_factory=threading.Event)
    weeks: list[tuple[float, set[str]]] = field(default_factory=list)
    mails: list[int] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def _weeks(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                found = week_query(self.gateway, self.other, datetime(2026, 12, 7, tzinfo=UTC),
                                   datetime(2026, 12, 14, tzinfo=UTC))
            except Exception as error:  # recorded and asserted on by the test
                self.errors.append(error)
                return
            self.weeks.append((time.monotonic() - began, found))

    def _mails(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            try:
                replies = send(self.smtp.process.port, bcc_mail(number), mail_from=REP,
                               rcpt_tos=[self.smtp.address])
            except Exception as error:  # recorded and asserted on by the test
                self.errors.append(error)
                return
            self.mails.append(replies.final)

    def __enter__(self) -> Bystanders:
        self.threads = [threading.Thread(target=self._weeks), threading.Thread(target=self._mails)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Each keeps going until it has answered at least once after the hostile PUTs.
        deadline = time.monotonic() + 60
        while (not self.weeks or not self.mails) and not self.errors \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        self.stop.set()
        for thread in self.threads:
            thread.join(90)


def plain(uid: str) -> str:
    return EVENT.format(uid=uid, summary="Call", start="20261208T090000Z",
                        end="20261208T100000Z")


def server_ms_per_put(gateway: Gateway, rep: Rep, name: str, rule: str | None,
                      status: int) -> float:
    before = cpu_seconds(gateway.process.pid)
    for number in range(PUTS):
        uid = f"{name}-{number}@test"
        answer = put(gateway, rep, f"{name}-{number}", series(uid, rule) if rule else plain(uid))
        assert answer.status_code == status, answer.text
    return (cpu_seconds(gateway.process.pid) - before) / PUTS * 1000


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_rules_cost_milliseconds_of_server_time(gateway: Gateway, name: str) -> None:
    rule, status = HOSTILE[name]
    rep = new_rep(gateway.store)
    assert put(gateway, rep, "warm-up", plain("warm-up@test")).status_code == 201
    anchor = server_ms_per_put(gateway, rep, "plain", None, 201)
    hostile = server_ms_per_put(gateway, rep, name, rule, status)
    print(f"{name}: {hostile:.1f} ms server CPU per PUT (a plain event: {anchor:.1f} ms)")
    assert hostile - anchor < MARGIN * RULE_MS_PER_PUT
    found = week_query(gateway, rep, datetime(2026, 12, 7, tzinfo=UTC),
                       datetime(2026, 12, 14, tzinfo=UTC))
    assert len(found) == (2 if status == 201 else 1) * PUTS + 1


def test_a_rule_that_never_occurs_is_refused_with_the_reason(gateway: Gateway) -> None:
    rep = new_rep(gateway.store)
    answer = put(gateway, rep, "never", series("never@test", WEEK_53))
    assert answer.status_code == 400
    assert "too costly to expand" in answer.text and "work budget" in answer.text
    assert requests.get(f"{gateway.url}{rep.username}/meeting/never.ics", auth=rep.auth,
                        timeout=10).status_code == 404


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_others_keep_answering_during_hostile_puts(
    gateway: Gateway, smtp: Smtp, name: str
) -> None:
    rule, status = HOSTILE[name]
    hostile, other = new_rep(gateway.store), new_rep(gateway.store)
    assert put(gateway, other, "weekly", series("weekly@test", "FREQ=WEEKLY")).status_code == 201
    with Bystanders(gateway, other, smtp) as bystanders:
        for number in range(PUTS):
            answer = put(gateway, hostile, f"{name}-{number}",
                         series(f"{name}-{number}@test", rule))
            assert answer.status_code == status, answer.text
    assert not bystanders.errors, bystanders.errors
    assert bystanders.weeks and all(found == {"weekly@test"} for _, found in bystanders.weeks)
    assert max(seconds for seconds, _ in bystanders.weeks) < WEEK_QUERY_SECONDS
    assert bystanders.mails and set(bystanders.mails) == {250}


@pytest.mark.parametrize(("rule", "matches"), [
    (EVERY_MINUTE, True),  # every minute of every hour has an instance
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", False),  # next in 2044, then 2072
])
def test_far_future_queries_over_costly_series_are_bounded(
    gateway: Gateway, rule: str, matches: bool
) -> None:
    rep = new_rep(gateway.store)
    assert put(gateway, rep, "weekly", series("weekly@test", "FREQ=WEEKLY")).status_code == 201
    for number in range(3):
        assert put(gateway, rep, f"h{number}", series(f"h{number}@test", rule)).status_code == 201
    expected = {f"h{number}@test" for number in range(3)} if matches else set()
    for start in (datetime(2031, 3, 3, tzinfo=UTC), datetime(2046, 6, 4, tzinfo=UTC),
                  datetime(2090, 1, 2, tzinfo=UTC)):
        before, began = cpu_seconds(gateway.process.pid), time.monotonic()
        found = week_query(gateway, rep, start, start + timedelta(days=7))
        spent_ms = (cpu_seconds(gateway.process.pid) - before) * 1000
        print(f"{rule[:24]} {start:%Y}: {spent_ms:.0f} ms server CPU, "
              f"{time.monotonic() - began:.2f} s")
        assert found == {"weekly@test"} | expected
        assert spent_ms < MARGIN * RULE_MS_PER_PUT, f"{start}: {spent_ms:.0f} ms"
    # The one Monday, 29 February in range is found exactly.
    monday = datetime(2044, 2, 29, tzinfo=UTC)
    found = week_query(gateway, rep, monday, monday + timedelta(days=1))
    assert found == {"weekly@test"} | {f"h{number}@test" for number in range(3)}


def test_a_weekly_series_is_still_exact_far_in_the_future(gateway: Gateway) -> None:
    rep = new_rep(gateway.store)
    for day in ("MO", "TU"):
        body = series(f"{day}@test", f"FREQ=WEEKLY;BYDAY={day}")
        assert put(gateway, rep, day, body).status_code == 201
    # 2090-03-06 is a Monday: a Monday-only window holds only the Monday series.
    found = week_query(gateway, rep, datetime(2090, 3, 6, 8, tzinfo=UTC),
                       datetime(2090, 3, 6, 10, tzinfo=UTC))
    assert found == {"MO@test"}

