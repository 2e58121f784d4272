"""What a refused write answers: the status and body CalDAV clients understand.

Radicale turns a storage error into a bare 400 (PUT) or 500 (DELETE). The storage records
the answer for the request on its context instead and the host sends it
(``gateway/web/middleware.py``): a lost precondition race is a 412, a UID held by another
resource a 409 ``CALDAV:no-uid-conflict`` naming it (RFC 4791 section 5.3.2.1).
"""

from __future__ import annotations

from urllib.parse import quote
from xml.sax.saxutils import escape

from gateway.client_writes import UidConflict, UnsupportedCalendarComponent
from gateway.errors import Conflict, DomainError, NotFound, ReadOnly
from gateway.preconditions import PreconditionFailed
from storage_plugin import context
from storage_plugin.context import Answer

# The reason travels in SabreDAV's <s:message>, which DAVx5 and others show to the user.
_ERROR_OPEN = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    'xmlns:s="http://sabredav.org/ns">'
)
_XML = "application/xml; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"


def _error(condition: str, reason: str) -> bytes:
    return f"{_ERROR_OPEN}{condition}<s:message>{escape(reason)}</s:message></D:error>\n".encode()


def answer_for(error: DomainError, username: str) -> Answer:
    reason = str(error)
    if isinstance(error, PreconditionFailed):
        return Answer("412 Precondition Failed", f"{reason}\n".encode(), _TEXT)
    if isinstance(error, UidConflict):
        href = ""
        if error.where is not None:
            slug, name = error.where
            href = f"<D:href>{escape(quote(f'/{username}/{slug}/{name}'))}</D:href>"
        return Answer("409 Conflict", _error(f"<C:no-uid-conflict>{href}</C:no-uid-conflict>",
                                             reason), _XML)
    if isinstance(error, UnsupportedCalendarComponent):  # RFC 4791 5.3.2.1
        return Answer("403 Forbidden", _error("<C:supported-calendar-component/>", reason), _XML)
    if isinstance(error, ReadOnly):
        return Answer("403 Forbidden", _error("<D:need-privileges/>", reason), _XML)
    if isinstance(error, NotFound):
        return Answer("404 Not Found", f"{reason}\n".encode(), _TEXT)
    if isinstance(error, Conflict):
        return Answer("409 Conflict", f"{reason}\n".encode(), _TEXT)
    return Answer("400 Bad Request", f"{reason}\n".encode(), _TEXT)


def refused(error: DomainError, username: str) -> ValueError:
    """Record the answer to ``error`` for this request; returns the ValueError to raise so
    that Radicale abandons the request."""
    context.current().answer = answer_for(error, username)
    return ValueError(str(error))


def too_many_instances(href: str) -> ValueError:
    """Record a 403 ``CALDAV:max-instances`` for an expansion of ``href`` that would cost
    more than one object may (RFC 4791 5.2.8); returns the ValueError to raise."""
    reason = (f"{href} has more instances in the requested window than the server expands "
              "for one object; ask for a shorter window, or for the object unexpanded")
    context.current().answer = Answer("403 Forbidden", _error("<C:max-instances/>", reason), _XML)
    return ValueError(reason)
