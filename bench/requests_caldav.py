"""The CalDAV requests the benchmark times, over ``requests`` (one keep-alive Session per client).

Each method sends one request and returns the parsed answer.  ``CalDAVClient.last_ms`` is the
duration of the last HTTP exchange alone (request sent, whole response body read), so that
parsing and checking on the benchmark side never count.  Every answer is checked for the status
a working server gives, and a wrong one raises ``CalDAVError`` — a benchmark of failing
requests measures nothing.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urljoin, urlsplit

import requests

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
TIMEOUT = 600.0  # seconds; stock Radicale at 100k events needs tens of seconds per request


class CalDAVError(RuntimeError):
    """The server answered something other than what the request needs."""


@dataclass
class Response:
    """One ``<D:response>`` of a multistatus: its href, status and 200-propstat properties."""

    href: str  # as sent by the server (percent-encoded path or URL)
    status: int  # of the response, or of its first propstat
    props: dict[str, str] = field(default_factory=dict)  # "{ns}name" -> text ("" if empty)

    @property
    def name(self) -> str:
        """The last path segment, decoded: comparable across servers with different layouts."""
        return unquote(urlsplit(self.href).path.rstrip("/").rsplit("/", 1)[-1])


@dataclass
class Multistatus:
    responses: list[Response]
    sync_token: str | None = None

    def members(self, collection_url: str) -> list[Response]:
        """The responses other than the one for the collection itself."""
        own = unquote(urlsplit(collection_url).path).rstrip("/")
        return [r for r in self.responses
                if unquote(urlsplit(r.href).path).rstrip("/") != own]


def _status_code(text: str | None) -> int:
    # "HTTP/1.1 200 OK"
    if not text:
        return 0
    parts = text.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def parse_multistatus(body: bytes) -> Multistatus:
    root = ET.fromstring(body)
    if root.tag != f"{{{DAV}}}multistatus":
        raise CalDAVError(f"expected a multistatus, got {root.tag}")
    responses: list[Response] = []
    for resp in root.findall(f"{{{DAV}}}response"):
        href = resp.findtext(f"{{{DAV}}}href", default="")
        status = _status_code(resp.findtext(f"{{{DAV}}}status"))
        props: dict[str, str] = {}
        for propstat in resp.findall(f"{{{DAV}}}propstat"):
            code = _status_code(propstat.findtext(f"{{{DAV}}}status"))
            status = status or code
            if code != 200:
                continue
            prop = propstat.find(f"{{{DAV}}}prop")
            for element in prop if prop is not None else ():
                props[element.tag] = element.text or ""
        responses.append(Response(href=href, status=status, props=props))
    return Multistatus(responses=responses, sync_token=root.findtext(f"{{{DAV}}}sync-token"))


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode()


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def propfind_body(*props: str) -> bytes:
    """``props`` as "D:getetag", "CS:getctag", "D:sync-token"."""
    inner = "".join(f"<{p}/>" for p in props)
    return _xml(f'<D:propfind xmlns:D="DAV:" xmlns:CS="{CS}" xmlns:C="{CALDAV}">'
                f"<D:prop>{inner}</D:prop></D:propfind>")


def calendar_query_body(start: datetime, end: datetime) -> bytes:
    """A VEVENT time-range query asking only getetag (what CalDav Synchronizer sends)."""
    return _xml(
        f'<C:calendar-query xmlns:D="DAV:" xmlns:C="{CALDAV}">'
        "<D:prop><D:getetag/></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{_utc(start)}" end="{_utc(end)}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>")


def multiget_body(hrefs: list[str]) -> bytes:
    """hrefs are absolute paths; asks getetag and calendar-data (what DAVx5 sends)."""
    inner = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return _xml(f'<C:calendar-multiget xmlns:D="DAV:" xmlns:C="{CALDAV}">'
                f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{inner}"
                "</C:calendar-multiget>")


def sync_collection_body(token: str) -> bytes:
    return _xml('<D:sync-collection xmlns:D="DAV:">'
                f"<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>"
                "<D:prop><D:getetag/></D:prop></D:sync-collection>")


class CalDAVClient:
    """Requests against one calendar collection, ``calendar_url`` ending in "/"."""

    def __init__(self, calendar_url: str, credentials: tuple[str, str] | None) -> None:
        if not calendar_url.endswith("/"):
            raise ValueError("calendar_url must end with '/'")
        self.calendar_url = calendar_url
        self.session = requests.Session()
        self.session.auth = credentials
        self.session.headers["User-Agent"] = "crm-gateway-bench/1"
        self.last_ms = 0.0

    def close(self) -> None:
        self.session.close()

    def href_path(self, name: str) -> str:
        """The absolute path of member ``name`` (as used in multiget bodies)."""
        return urlsplit(urljoin(self.calendar_url, name)).path

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              expect: tuple[int, ...]) -> requests.Response:
        start = time.perf_counter()
        # stream=False (the default): the body is read completely before request() returns
        response = self.session.request(method, url, data=body, headers=headers, timeout=TIMEOUT)
        self.last_ms = (time.perf_counter() - start) * 1000.0
        if response.status_code not in expect:
            raise CalDAVError(f"{method} {url}: HTTP {response.status_code}, expected {expect}: "
                              f"{response.text[:300]!r}")
        return response

    def _xml_request(self, method: str, body: bytes, depth: str) -> Multistatus:
        return parse_multistatus(self._xml_raw(method, body, depth))

    def _xml_raw(self, method: str, body: bytes, depth: str) -> bytes:
        headers = {"Content-Type": "application/xml; charset=utf-8", "Depth": depth}
        return self._send(method, self.calendar_url, body, headers, (207,)).content

    def propfind(self, depth: str, *props: str) -> Multistatus:
        return self._xml_request("PROPFIND", propfind_body(*props), depth)

    def calendar_query(self, start: datetime, end: datetime) -> Multistatus:
        return self._xml_request("REPORT", calendar_query_body(start, end), "1")

    def calendar_query_unparsed(self, start: datetime, end: datetime) -> bytes:
        """The same request; the multistatus body is returned as is (for load generation)."""
        return self._xml_raw("REPORT", calendar_query_body(start, end), "1")

    def multiget(self, names: list[str]) -> Multistatus:
        return self._xml_request("REPORT", multiget_body([self.href_path(n) for n in names]), "0")

    def sync_collection(self, token: str) -> Multistatus:
        return self._xml_request("REPORT", sync_collection_body(token), "0")

    def put(self, name: str, text: str, *, etag: str | None = None) -> str:
        """PUT ``text`` at member ``name``: create (If-None-Match: *) or, with ``etag``, update
        (If-Match).  Returns the new ETag."""
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if etag is None:
            headers["If-None-Match"] = "*"
            expect: tuple[int, ...] = (201,)
        else:
            headers["If-Match"] = etag
            expect = (200, 204)
        response = self._send("PUT", urljoin(self.calendar_url, name), text.encode(), headers,
                              expect)
        new_etag = response.headers.get("ETag")
        if not new_etag:
            raise CalDAVError(f"PUT {name}: no ETag in the response")
        return new_etag

    def ping(self) -> int:
        """Any HTTP answer counts as up; returns the status code."""
        return self.session.request("OPTIONS", self.calendar_url, timeout=5).status_code
