"""Failures a CalDAV client understands: hostile XML, oversized requests, provisioned
calendars, removed properties, non-ASCII names and bare-LF events, against the running
gateway. The gateway here accepts bodies of the default size (10 MiB), so the attacks arrive
whole, as they would in production."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import caldav
import pytest
import requests
from caldav.elements import ical as ical_props
from caldav_peer import Gateway, Rep, event, new_rep, start_gateway, stop_gateway

from gateway.diary_types import create_type, get_type, update_type
from gateway.models import DiaryType

DAV_XML = {"Content-Type": "application/xml; charset=utf-8"}
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
# The attacks used to take a worker for a second or more; now they are refused before
# Radicale parses anything (measured: 0.02-0.1 s). The bound leaves room for a busy machine.
FAST_SECONDS = 3.0


@pytest.fixture(scope="module")
def gateway(module_database_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Gateway]:
    running = start_gateway(module_database_url, tmp_path_factory.mktemp("gateway"),
                            ("CRM_GATEWAY_HTTP_MAX_BODY_BYTES", str(10 * 1024 * 1024)))
    with running.store.transaction() as session:
        create_type(session, "Meeting", color="#3A87AD", syncable=True)
    yield running
    stop_gateway(running)


def dav(gateway: Gateway, rep: Rep, method: str, path: str, body: str | bytes = b"",
        **headers: str) -> requests.Response:
    data = body.encode() if isinstance(body, str) else body
    return requests.request(method, f"{gateway.url}{rep.username}/{path}", data=data,
                            auth=rep.auth, timeout=60, headers={**DAV_XML, **headers})


def propfind(gateway: Gateway, rep: Rep, path: str, *props: str,
             depth: str = "0") -> requests.Response:
    names = "".join(props) or "<D:getetag/>"
    return dav(gateway, rep, "PROPFIND", path,
               '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" '
               'xmlns:I="http://apple.com/ns/ical/" xmlns:C="urn:ietf:params:xml:ns:caldav">'
               f"<D:prop>{names}</D:prop></D:propfind>", Depth=depth)


def put(gateway: Gateway, rep: Rep, name: str, body: str) -> requests.Response:
    return requests.put(f"{gateway.url}{rep.username}/meeting/{name}", data=body.encode(),
                        auth=rep.auth, timeout=30, headers=ICS)


def hrefs(answer: requests.Response) -> list[str]:
    return re.findall(r"<href>([^<]*)</href>", answer.text)


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">'
          + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
          + ']><D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol9;</D:displayname>'
          "</D:prop></D:propfind>")
EXTERNAL = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
            '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&secret;</D:displayname>'
            "</D:prop></D:propfind>")
PARAMETER = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY % remote SYSTEM '
             '"http://127.0.0.1:9/evil.dtd"> %remote;]><D:propfind xmlns:D="DAV:"><D:allprop/>'
             "</D:propfind>")
NESTED = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>' + "<D:x>" * 100_000
          + "</D:x>" * 100_000 + "</D:prop></D:propfind>")
COMP_FILTER = ('<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
               'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>'
               + '<C:comp-filter name="VCALENDAR">' * 5000 + "</C:comp-filter>" * 5000
               + "</C:filter></C:calendar-query>")


@pytest.mark.parametrize(
    ("method", "body", "reason"),
    [
        ("PROPFIND", LAUGHS, "document type declaration"),
        ("PROPFIND", EXTERNAL, "document type declaration"),
        ("PROPFIND", PARAMETER, "document type declaration"),
        ("PROPPATCH", EXTERNAL.replace("propfind", "propertyupdate"), "document type"),
        ("PROPFIND", NESTED, "nested deeper than 32"),
        ("REPORT", COMP_FILTER, "nested deeper than 32"),
        ("REPORT", '<?xml version="1.0"?><C:calendar-query xmlns:C="urn:ietf:params:xml:ns:'
                   'caldav"><C:filter>', "Bad Request"),
        ("PROPFIND", COMP_FILTER[:-40], "nested deeper than 32"),
    ],
    ids=["entity-expansion", "external-entity", "parameter-entity", "proppatch-entity",
         "deep-nesting", "deep-comp-filter", "truncated", "deep-and-truncated"],
)
def test_hostile_xml_gets_a_400_at_once_and_leaks_nothing(
    gateway: Gateway, rep: Rep, method: str, body: str, reason: str
) -> None:
    started = time.monotonic()
    answer = dav(gateway, rep, method, "meeting/", body, Depth="1")
    elapsed = time.monotonic() - started
    assert answer.status_code == 400, answer.text[:200]
    assert reason in answer.text
    assert "root:" not in answer.text and "lollol" not in answer.text
    assert elapsed < FAST_SECONDS, elapsed
    # The worker is free and the calendar unchanged.
    assert propfind(gateway, rep, "meeting/", "<D:displayname/>").status_code == 207
    assert "Internal Server Error" not in gateway.log()
    assert "An exception occurred" not in gateway.log()


def _properties(count: int) -> list[str]:
    return [f"<D:p{i}/>" for i in range(count)]


def test_a_propfind_may_name_200_properties_and_no_more(gateway: Gateway, rep: Rep) -> None:
    assert propfind(gateway, rep, "meeting/", *_properties(200)).status_code == 207
    refused = propfind(gateway, rep, "meeting/", *_properties(201))
    assert refused.status_code == 413
    assert "more than 200 properties" in refused.text
    assert "http.max_propfind_properties" in refused.text
    started = time.monotonic()
    assert propfind(gateway, rep, "meeting/", *_properties(200_000)).status_code == 413
    assert time.monotonic() - started < FAST_SECONDS


def _multiget(rep: Rep, count: int) -> str:
    wanted = "".join(f"<D:href>/{rep.username}/meeting/e{i}.ics</D:href>" for i in range(count))
    return ('<?xml version="1.0"?><C:calendar-multiget xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/>'
            f"</D:prop>{wanted}</C:calendar-multiget>")


def test_a_multiget_may_name_10000_hrefs_and_no_more(gateway: Gateway, rep: Rep) -> None:
    assert put(gateway, rep, "e7.ics", event("cap-7@test", "Seventh")).status_code == 201
    served = dav(gateway, rep, "REPORT", "meeting/", _multiget(rep, 10_000), Depth="1")
    assert served.status_code == 207
    assert "Seventh" in served.text and len(hrefs(served)) == 10_000
    refused = dav(gateway, rep, "REPORT", "meeting/", _multiget(rep, 10_001), Depth="1")
    assert refused.status_code == 413
    assert "more than 10000 hrefs" in refused.text and "http.max_multiget_hrefs" in refused.text
    started = time.monotonic()
    assert dav(gateway, rep, "REPORT", "meeting/", _multiget(rep, 100_000),
               Depth="1").status_code == 413
    assert time.monotonic() - started < FAST_SECONDS


def test_deleting_or_replacing_a_provisioned_calendar_is_a_403_need_privileges(
    gateway: Gateway, rep: Rep
) -> None:
    assert put(gateway, rep, "kept.ics", event("kept@test", "Kept")).status_code == 201
    deleted = requests.delete(f"{gateway.url}{rep.username}/meeting/", auth=rep.auth, timeout=30)
    assert deleted.status_code == 403
    assert "<D:need-privileges/>" in deleted.text
    replaced = requests.put(f"{gateway.url}{rep.username}/meeting/", auth=rep.auth, timeout=30,
                            data=event("whole@test").encode(), headers=ICS)
    assert replaced.status_code == 403
    assert "<D:need-privileges/>" in replaced.text
    kept = requests.get(f"{gateway.url}{rep.username}/meeting/kept.ics", auth=rep.auth,
                        timeout=30)
    assert kept.status_code == 200 and "SUMMARY:Kept" in kept.text
    assert propfind(gateway, rep, "meeting/").status_code == 207


def _patch(gateway: Gateway, rep: Rep, slug: str, action: str, props: str) -> None:
    answer = dav(gateway, rep, "PROPPATCH", f"{slug}/",
                 '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" '
                 f'xmlns:I="http://apple.com/ns/ical/"><D:{action}><D:prop>{props}</D:prop>'
                 f"</D:{action}></D:propertyupdate>")
    assert answer.status_code == 207 and "200 OK" in answer.text, answer.text


def colour(gateway: Gateway, rep: Rep, slug: str) -> str | None:
    with caldav.DAVClient(url=f"{gateway.url}{rep.username}/{slug}/", username=rep.username,
                          password=rep.password) as client:
        found: str | None = client.calendar(url=f"{gateway.url}{rep.username}/{slug}/"
                                            ).get_property(ical_props.CalendarColor())
        return found


def test_removing_calendar_color_gives_back_the_types_colour(gateway: Gateway) -> None:
    with gateway.store.transaction() as session:
        if session.query(DiaryType).filter_by(name="Visit").first() is None:
            create_type(session, "Visit", color="#112233", syncable=True)
    rep, other = new_rep(gateway.store), new_rep(gateway.store)
    _patch(gateway, rep, "visit", "set", "<I:calendar-color>#FF2968FF</I:calendar-color>")
    _patch(gateway, other, "visit", "set", "<I:calendar-order>4</I:calendar-order>")
    assert colour(gateway, rep, "visit") == "#FF2968FF"
    _patch(gateway, rep, "visit", "remove", "<I:calendar-color/>")
    assert colour(gateway, rep, "visit") == "#112233"
    # Neither the removal nor setting another property froze the type's colour as theirs.
    with gateway.store.transaction() as session:
        update_type(session, get_type(session, "Visit"), color="#445566")
    assert colour(gateway, rep, "visit") == "#445566"
    assert colour(gateway, other, "visit") == "#445566"
    order = propfind(gateway, other, "visit/", "<I:calendar-order/>")
    assert "<ICAL:calendar-order>4</ICAL:calendar-order>" in order.text


CYRILLIC = "встреча.ics"


@pytest.mark.parametrize("name", [CYRILLIC, "ät.ics", "日本 会議.ics"])
def test_non_ascii_resource_names_round_trip(gateway: Gateway, rep: Rep, name: str) -> None:
    url = f"{gateway.url}{rep.username}/meeting/{quote(name)}"
    body = event(f"{name}@test", "Named")
    created = requests.put(url, data=body.encode(), auth=rep.auth, headers=ICS, timeout=30)
    assert created.status_code == 201, created.text
    assert propfind(gateway, rep, "meeting/", depth="1").status_code == 207
    listed = hrefs(propfind(gateway, rep, "meeting/", depth="1"))
    assert f"/{rep.username}/meeting/{quote(name)}" in listed
    fetched = requests.get(url, auth=rep.auth, timeout=30)
    assert fetched.status_code == 200 and fetched.text == body
    # A real client finds it under its own name too.
    with caldav.DAVClient(url=gateway.url, username=rep.username,
                          password=rep.password) as client:
        cal = client.calendar(url=f"{gateway.url}{rep.username}/meeting/")
        assert f"{name}@test" in [e.icalendar_component["UID"] for e in cal.events()]
    assert requests.delete(url, auth=rep.auth, timeout=30).status_code in (200, 204)
    assert requests.get(url, auth=rep.auth, timeout=30).status_code == 404


def test_a_path_that_is_not_utf8_is_a_400(gateway: Gateway, rep: Rep) -> None:
    answer = requests.put(f"{gateway.url}{rep.username}/meeting/%FF%FE.ics", auth=rep.auth,
                          data=event("latin@test").encode(), headers=ICS, timeout=30)
    assert answer.status_code == 400 and "not UTF-8" in answer.text


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ics"


def test_whole_calendar_get_includes_events_stored_with_bare_lf(
    gateway: Gateway, rep: Rep
) -> None:
    bare = event("bare-lf@test", "Bare LF").replace("\r\n", "\n")
    assert put(gateway, rep, "bare.ics", bare).status_code == 201
    assert put(gateway, rep, "crlf.ics", event("crlf@test", "With CRLF")).status_code == 201
    apple = (FIXTURES / "apple_timed_alarm.ics").read_text()
    assert put(gateway, rep, "apple.ics", apple.replace("\r\n", "\n")).status_code == 201
    whole = requests.get(f"{gateway.url}{rep.username}/meeting/", auth=rep.auth, timeout=30)
    assert whole.status_code == 200
    assert whole.text.count("BEGIN:VEVENT") == 3
    for uid in ("bare-lf@test", "crlf@test"):
        assert f"UID:{uid}\r\n" in whole.text
    assert "SUMMARY:Bare LF\r\n" in whole.text
    assert re.search(r"(?<!\r)\n", whole.text) is None  # every line ends in CRLF
    # The event itself is still served as it was sent.
    single = requests.get(f"{gateway.url}{rep.username}/meeting/bare.ics", auth=rep.auth,
                          timeout=30)
    assert single.text == bare
