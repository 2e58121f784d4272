"""A database that cannot be reached answers 503 with ``Retry-After``, not 500.

Radicale turns any exception of a plugin into a bare 500 (or, from the auth plugin, a failed
login). The engines' ``handle_error`` event marks the request being served in this thread when
the database could not be reached or dropped the connection (or, on SQLite, stayed locked);
the middleware then answers 503, which clients retry later instead of reporting an error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import InterfaceError, OperationalError

RETRY_AFTER_SECONDS = 30
STATUS = "503 Service Unavailable"
BODY = b"the database is unreachable; try again later\n"

_local = threading.local()
log = logging.getLogger(__name__)


# sqlite3 raises OperationalError for mistakes too ("no such table"): those stay a 500.
_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o", "readonly", "full")


def _unavailable(context: ExceptionContext) -> bool:
    if context.is_disconnect:
        return True
    if not isinstance(context.sqlalchemy_exception, OperationalError | InterfaceError):
        return False
    if context.dialect.name == "sqlite":
        message = str(context.original_exception).lower()
        return any(word in message for word in _SQLITE_UNAVAILABLE)
    return True


def _mark(context: ExceptionContext) -> None:
    if _unavailable(context):
        _local.failed = True


def watch(engine: Engine) -> None:
    """Report ``engine``'s connection failures to the request served by the failing thread."""
    if not event.contains(engine, "handle_error", _mark):
        event.listen(engine, "handle_error", _mark)


def begin() -> None:
    """A request starts in this thread: no failure seen yet."""
    _local.failed = False


def failed() -> bool:
    """Whether the database failed this thread's request since :func:`begin`."""
    return bool(getattr(_local, "failed", False))


def plain_wsgi(what: str, answer: Callable[[Any], Any]) -> Callable[..., Iterable[bytes]]:
    """A WSGI app around ``answer`` (a werkzeug Request -> Response) that answers 503 with
    ``Retry-After`` when the database is unreachable (the feeds and free/busy URLs)."""
    from werkzeug.wrappers import Request, Response

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            response = answer(Request(environ))
        except (OperationalError, InterfaceError) as exc:
            log.error("%s: database unreachable: %s", what, type(exc.orig).__name__)
            response = Response(BODY, status=503, content_type="text/plain",
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return response(environ, start_response)

    return app
