"""WSGI middleware between the Twisted host and Radicale.

It does what Radicale leaves to its host or does not do (docs/CALDAV_CLIENTS.md):
- hands the storage plugin the PUT body exactly as sent, so it is stored byte for byte, and
  the client's If-Match / If-None-Match, so the write's transaction checks them again;
- answers what the storage decided (a lost race's 412, a 409 ``no-uid-conflict``);
- checks a PUT's calendar object first and answers bad input with a 4xx and its reason,
  a non-VEVENT component with 403 ``supported-calendar-component``;
- gives every bare 403 a ``DAV:need-privileges`` error body (DAVx5 needs it);
- tells the rights plugin which method runs (cosmetic PROPPATCH on read-only calendars).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from gateway.client_writes import UnsupportedCalendarComponent, parse_client_object
from gateway.errors import Invalid
from gateway.ical import EventData
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


def _respond(start_response: StartResponse, status: str, body: bytes,
             content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type),
                             ("Content-Length", str(len(body)))])
    return [body]


def _is_event_path(path: str) -> bool:
    parts = [part for part in path.split("/") if part]
    return len(parts) == 3


class GatewayMiddleware:
    def __init__(self, app: WSGIApp):
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        body_text: str | None = None
        parsed: EventData | None = None
        if method == "PUT" and _is_event_path(environ.get("PATH_INFO", "")):
            raw = environ["wsgi.input"].read()
            environ["wsgi.input"] = io.BytesIO(raw)
            environ["CONTENT_LENGTH"] = str(len(raw))
            try:
                body_text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return _respond(start_response, "400 Bad Request",
                                b"the calendar object is not UTF-8 text\n", "text/plain")
            try:
                parsed = parse_client_object(body_text)
            except UnsupportedCalendarComponent as exc:
                log.info("PUT %s refused: %s", environ.get("PATH_INFO"), exc)
                return _respond(start_response, "403 Forbidden", UNSUPPORTED_COMPONENT,
                                "application/xml; charset=utf-8")
            except Invalid as exc:
                log.info("PUT %s refused: %s", environ.get("PATH_INFO"), exc)
                return _respond(start_response, "400 Bad Request",
                                f"invalid calendar object: {exc}\n".encode(),
                                "text/plain; charset=utf-8")
        context.begin(method, body_text, parsed, if_match=environ.get("HTTP_IF_MATCH"),
                      if_none_match=environ.get("HTTP_IF_NONE_MATCH"))
        try:
            return self._rewrite_403(environ, start_response)
        finally:
            context.end()

    def _rewrite_403(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
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
        if status.startswith("403") and "xml" not in content_type:
            log.info("%s %s forbidden", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return _respond(start_response, status, NEED_PRIVILEGES,
                            "application/xml; charset=utf-8")
        start_response(status, headers)
        return chunks
