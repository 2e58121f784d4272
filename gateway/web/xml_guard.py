"""Checks of a WebDAV request's XML body before Radicale parses it.

Radicale parses with defusedxml, whose refusal of entities is an exception that becomes a 500,
and walks the element tree recursively, so a deeply nested body exhausts the stack; a body
naming 200k properties or 100k hrefs occupies a worker for seconds. One streaming expat pass
here refuses, with a 4xx and the reason:

- any document type declaration: no CalDAV body needs one, and without it there are no
  entities to expand (billion laughs), fetch (external entities) or nest (parameter entities);
- nesting deeper than :data:`MAX_DEPTH` elements (real filters are under 10 deep);
- more properties in one ``DAV:prop`` than ``http.max_propfind_properties``;
- more ``DAV:href`` elements than ``http.max_multiget_hrefs``;
- bodies in a charset that does not exist.

A body that is not well-formed goes on to Radicale, which checks rights first and then refuses
it with 400 itself; its expat parser stops where this one stopped.

The same pass notes the window of a REPORT that makes Radicale expand series itself (a
``C:expand`` in calendar-data, or a ``free-busy-query``), so the storage can bound that work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from xml.parsers import expat

# Deep enough for any real calendar-query (query/filter/comp/comp/comp/prop/param/text-match).
MAX_DEPTH = 32
# Methods whose body Radicale parses as XML.
XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL"})

_PROP = "DAV: prop"
_HREF = "DAV: href"
_CALDAV = "urn:ietf:params:xml:ns:caldav "
_EXPAND = _CALDAV + "expand"
_FREE_BUSY = _CALDAV + "free-busy-query"
_TIME_RANGE = _CALDAV + "time-range"


@dataclass(frozen=True)
class XmlLimits:
    max_properties: int
    max_hrefs: int


class Refused(Exception):
    """The body must not reach Radicale: answer ``status`` with ``reason``."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


BAD_REQUEST = "400 Bad Request"
TOO_LARGE = "413 Request Entity Too Large"


def decode(raw: bytes, content_type: str) -> str:
    """The body as text, decoded as Radicale decodes it (the request's charset, else UTF-8,
    else ISO-8859-1), so the text checked is the text Radicale parses."""
    charsets = []
    if "charset=" in content_type:
        charsets.append(content_type.split("charset=")[1].split(";")[0].strip().strip('"'))
    charsets += ["utf-8", "iso8859-1"]
    for charset in charsets:
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise Refused(BAD_REQUEST, f"unknown charset {charset!r}") from None
    raise AssertionError("ISO-8859-1 decodes any bytes")


def _instant(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def check(text: str, limits: XmlLimits) -> tuple[datetime, datetime] | None:
    """Raise :class:`Refused` when ``text`` must not reach Radicale; else the window over
    which Radicale will expand series for this REPORT (None: it expands none, or the
    window is malformed and Radicale refuses the body itself)."""
    parser = expat.ParserCreate(namespace_separator=" ")
    depth = 0
    open_props: list[int] = []  # depths of the DAV:prop elements open now
    properties = 0
    hrefs = 0
    free_busy = False
    window: list[tuple[datetime, datetime]] = []

    def note_window(attributes: dict[str, str]) -> None:
        # An open end is open for Radicale too (RFC 4791 9.9): the widest window.
        start = _instant(attributes.get("start", "19700101T000000Z"))
        end = _instant(attributes.get("end", "99991231T235959Z"))
        if start is not None and end is not None and not window:
            window.append((start, end))

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth, properties, hrefs, free_busy
        depth += 1
        if depth == 1 and name == _FREE_BUSY:
            free_busy = True
        elif name == _EXPAND or (free_busy and depth == 2 and name == _TIME_RANGE):
            note_window(attributes)
        if depth > MAX_DEPTH:
            raise Refused(BAD_REQUEST, f"XML nested deeper than {MAX_DEPTH} elements")
        if open_props and depth == open_props[-1] + 1:
            properties += 1
            if properties > limits.max_properties:
                raise Refused(TOO_LARGE, f"more than {limits.max_properties} properties "
                              "in one request (http.max_propfind_properties)")
        if name == _PROP:
            open_props.append(depth)
        elif name == _HREF:
            hrefs += 1
            if hrefs > limits.max_hrefs:
                raise Refused(TOO_LARGE, f"more than {limits.max_hrefs} hrefs in one request "
                              "(http.max_multiget_hrefs)")

    def end(_name: str) -> None:
        nonlocal depth
        if open_props and open_props[-1] == depth:
            open_props.pop()
        depth -= 1

    def doctype(*_args: object) -> None:
        raise Refused(BAD_REQUEST, "XML with a document type declaration (DTD) is refused: "
                      "CalDAV bodies need no entities")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    try:
        parser.Parse(text, True)
    except expat.ExpatError:
        return None
    return window[0] if window else None
