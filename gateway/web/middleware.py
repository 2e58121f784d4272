"""WSGI middleware between the Twisted host and Radicale.

It does what Radicale leaves to its host or does not do (docs/CALDAV_CLIENTS.md):
- hands Radicale the path decoded as UTF-8 (a WSGI host decodes it as ISO-8859-1);
- refuses XML bodies Radicale must not parse (:mod:`gateway.web.xml_guard`) with a 4xx;
- hands the storage plugin the PUT body exactly as sent, so it is stored byte for byte, and
  the client's If-Match / If-None-Match, so the write's transaction checks them again;
- answers what the storage decided (a lost race's 412, a 409 ``no-uid-conflict``);
- checks a PUT's calendar object first and answers bad input with a 4xx and its reason,
  a non-VEVENT component with 403 ``supported-calendar-component``;
- gives every bare 403 a ``DAV:need-privileges`` error body (DAVx5 needs it);
- tells the rights plugin which method runs (cosmetic PROPPATCH on read-only calendars);
- answers 503 with ``Retry-After`` when the database failed the request
  (:mod:`gateway.web.outage`);
- answers a ``free-busy-query`` REPORT that Radicale allowed for the rep's whole diary, not
  just the one calendar (RFC 4791 7.10; :mod:`gateway.freebusy`).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.client_writes import UnsupportedCalendarComponent, parse_client_object
from gateway.errors import Invalid
from gateway.ical import EventData
from gateway.web import outage, xml_guard
from storage_plugin import context

log = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

NEED_PRIVILEGES = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:error xmlns:D="DAV:"><D:need-privileges/></D:error>\n'
)
UNSUPPORTED_COMPONENT = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    b"<C:supported-calendar-component/></D:error>\n"
)


def _respond(start_response: StartResponse, status: str, body: bytes, content_type: str,
             *extra: tuple[str, str]) -> list[bytes]:
    start_response(status, [("Content-Type", content_type),
                             ("Content-Length", str(len(body))), *extra])
    return [body]


def _utf8_path(environ: Environ) -> None:
    """PEP 3333 hosts hand PATH_INFO over as ISO-8859-1; Radicale expects the UTF-8 text."""
    path = environ.get("PATH_INFO", "")
    try:
        raw = path.encode("latin-1")
    except UnicodeEncodeError:  # already text (a host that decodes UTF-8 itself)
        return
    environ["PATH_INFO"] = raw.decode("utf-8")


def _read_body(environ: Environ) -> bytes:
    """The whole body (the site caps its size), left readable again for Radicale."""
    raw: bytes = environ["wsgi.input"].read()
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    return raw


def _is_event_path(path: str) -> bool:
    parts = [part for part in path.split("/") if part]
    return len(parts) == 3


@dataclass(frozen=True)
class Refusal:
    status: str
    body: bytes
    content_type: str


def _read_event(environ: Environ) -> tuple[str, EventData] | Refusal:
    """A PUT's calendar object, as text and parsed, or why it is refused."""
    path = environ.get("PATH_INFO")
    raw = _read_body(environ)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal("400 Bad Request", b"the calendar object is not UTF-8 text\n",
                       "text/plain")
    try:
        return text, parse_client_object(text)
    except UnsupportedCalendarComponent as exc:
        log.info("PUT %s refused: %s", path, exc)
        return Refusal("403 Forbidden", UNSUPPORTED_COMPONENT, "application/xml; charset=utf-8")
    except Invalid as exc:
        log.info("PUT %s refused: %s", path, exc)
        return Refusal("400 Bad Request", f"invalid calendar object: {exc}\n".encode(),
                       "text/plain; charset=utf-8")
    except Exception:
        # A defect of the parser on hostile input (found by tests/test_caldav_fuzz.py): the
        # object still cannot be read, which is the client's 400, not a 500.
        log.exception("PUT %s: the iCalendar parser failed on the object", path)
        return Refusal("400 Bad Request", b"invalid calendar object: it cannot be read\n",
                       "text/plain; charset=utf-8")


# (username, start, end) -> the VCALENDAR text of the user's free/busy time, or Invalid.
FreeBusyAnswer = Callable[[str, datetime, datetime], str]


def _is_free_busy_query(environ: Environ) -> bool:
    raw: bytes = environ["wsgi.input"].getvalue()
    parser = xml_guard.expat.ParserCreate(namespace_separator=" ")
    root: list[str] = []

    def start(name: str, _attributes: object) -> None:
        root.append(name)
        raise StopIteration

    parser.StartElementHandler = start
    with contextlib.suppress(StopIteration, xml_guard.expat.ExpatError):
        parser.Parse(raw, True)
    return root[:1] == ["urn:ietf:params:xml:ns:caldav free-busy-query"]


class GatewayMiddleware:
    def __init__(self, app: WSGIApp, limits: xml_guard.XmlLimits,
                 free_busy: FreeBusyAnswer | None = None):
        self.app = app
        self.limits = limits
        self.free_busy = free_busy

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        try:
            _utf8_path(environ)
        except UnicodeDecodeError:
            return _respond(start_response, "400 Bad Request",
                            b"the path is not UTF-8 once percent-decoded\n", "text/plain")
        expansion: tuple[datetime, datetime] | None = None
        if method in xml_guard.XML_METHODS:
            checked = self._check_xml(environ)
            if isinstance(checked, Refusal):
                return _respond(start_response, checked.status, checked.body,
                                checked.content_type)
            expansion = checked
        body_text: str | None = None
        parsed: EventData | None = None
        if method == "PUT" and _is_event_path(environ.get("PATH_INFO", "")):
            read = _read_event(environ)
            if isinstance(read, Refusal):
                return _respond(start_response, read.status, read.body, read.content_type)
            body_text, parsed = read
        free_busy = (method == "REPORT" and expansion is not None
                      and self.free_busy is not None and _is_free_busy_query(environ))
        context.begin(method, body_text, parsed, if_match=environ.get("HTTP_IF_MATCH"),
                      if_none_match=environ.get("HTTP_IF_NONE_MATCH"), expansion=expansion)
        outage.begin()
        try:
            if free_busy:
                assert expansion is not None
                return self._free_busy(environ, start_response, expansion)
            return self._answer(environ, start_response)
        finally:
            context.end()

    def _free_busy(self, environ: Environ, start_response: StartResponse,
                   window: tuple[datetime, datetime]) -> list[bytes]:
        """Radicale decides who may ask (auth, rights, a calendar there); the answer covers
        the owner's whole diary, not only that calendar's items."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self._answer(environ, capture)
        status: str = captured["status"]
        if not status.startswith("200"):
            start_response(status, captured["headers"])
            return chunks
        owner = next(part for part in environ.get("PATH_INFO", "").split("/") if part)
        assert self.free_busy is not None
        try:
            body = self.free_busy(owner, *window)
        except Invalid as exc:
            return _respond(start_response, "400 Bad Request", f"{exc}\n".encode(),
                            "text/plain; charset=utf-8")
        return _respond(start_response, "200 OK", body.encode(), "text/calendar; charset=utf-8")

    def _check_xml(self, environ: Environ) -> Refusal | tuple[datetime, datetime] | None:
        """A refusal, or the window a REPORT makes Radicale expand series over."""
        raw = _read_body(environ)
        if not raw:
            return None
        try:
            return xml_guard.check(xml_guard.decode(raw, environ.get("CONTENT_TYPE", "")),
                                   self.limits)
        except xml_guard.Refused as refused:
            log.info("%s %s refused: %s", environ.get("REQUEST_METHOD"),
                     environ.get("PATH_INFO"), refused.reason)
            return Refusal(refused.status, f"{refused.reason}\n".encode(),
                           "text/plain; charset=utf-8")

    def _answer(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = list(self.app(environ, capture))
        decided = context.current().answer
        if decided is not None:  # the storage's 412 / 409 instead of Radicale's 400 / 500
            return _respond(start_response, decided.status, decided.body, decided.content_type)
        status: str = captured["status"]
        headers: list[tuple[str, str]] = captured["headers"]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if outage.failed() and int(status[:3]) >= 400:
            log.warning("%s %s: the database is unreachable, answered 503",
                        environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return _respond(start_response, outage.STATUS, outage.BODY, "text/plain",
                            ("Retry-After", str(outage.RETRY_AFTER_SECONDS)))
        decided = context.current().answer
        if decided is not None:  # the storage's 412 / 409 instead of Radicale's 400 / 500
            return _respond(start_response, decided.status, decided.body, decided.content_type)
        if status.startswith("403") and "xml" not in content_type:
            log.info("%s %s forbidden", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return _respond(start_response, status, NEED_PRIVILEGES,
                            "application/xml; charset=utf-8")
        start_response(status, headers)
        return chunks
