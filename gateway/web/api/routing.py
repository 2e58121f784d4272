"""Each operation of the API declared once: method, path, models, summary, scope.

The declarations drive both the dispatch (``gateway.web.api.app``) and the OpenAPI document
(``gateway.web.api.openapi``), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session
from werkzeug.datastructures import Headers

from gateway.api_tokens import Bearer
from gateway.config import Config
from gateway.db import Store

INT32 = 2**31 - 1
READ, ADMIN = "read", "admin"


@dataclass
class Call:
    """What a handler gets: the session of the request's one transaction and its inputs."""

    session: Session
    params: dict[str, Any]
    query: Any
    body: Any
    bearer: Bearer
    headers: Headers
    config: Config
    store: Store


@dataclass
class Reply:
    """A handler's answer when it is more than a model: a status, headers, raw bytes."""

    model: BaseModel | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    media_type: str | None = None


Handler = Callable[[Call], BaseModel | Reply]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # a werkzeug rule below /api/v1, e.g. /entries/<int:entry_id>
    handler: Handler
    summary: str
    tag: str
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    # Request headers the operation reads, documented as parameters.
    request_headers: tuple[str, ...] = ()
    # Response headers the operation sets.
    response_headers: tuple[str, ...] = ()
    media_type: str = "application/json"  # of the success body
    # False: the handler does network I/O and opens its own short transactions (call.store);
    # ``call.session`` is then a read session.
    transaction: bool = True

    @property
    def scope(self) -> str:
        return READ if self.method == "GET" else ADMIN

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


ROUTES: list[Route] = []


def route(method: str, path: str, *, summary: str, tag: str,
          response: type[BaseModel] | None, **options: Any) -> Callable[[Handler], Handler]:
    """Declare ``handler`` as the operation ``method path``."""

    def declare(handler: Handler) -> Handler:
        ROUTES.append(Route(method, path, handler, summary, tag, response, **options))
        return handler

    return declare


def entity_path(name: str) -> str:
    """A path segment taking an id: an int in 1..2^31-1 (past it: 404, not a database error)."""
    return f"<int(min=1, max={INT32}):{name}>"
