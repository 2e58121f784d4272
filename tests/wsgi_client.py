"""The gateway's CalDAV app driven in-process through WSGI, as Radicale's own suite does.

For rule tests that need no second process: the same app the HTTP role serves (Radicale with
the gateway's plugins, behind `GatewayMiddleware`), called with a WSGI environ instead of a
socket. The answers have the ``requests`` attributes the tests read (``status_code``,
``text``, ``headers``, ``ok``), so a test reads the same either way. Tests of the HTTP host
itself (body caps, keep-alive, non-ASCII paths on the wire) use the real server instead.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gateway.config import load
from gateway.db import Store
from gateway.web.site import dav_app

BASE_URL = "http://gateway.test/"


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return self.status_code < 400


@dataclass
class InProcessGateway:
    """A gateway whose CalDAV app runs in this process on ``store``."""

    store: Store
    url: str = BASE_URL
    app: Any = field(init=False)

    def __post_init__(self) -> None:
        config = load(environ={"CRM_GATEWAY_DATABASE_URL": self.store.url}, create_data_dir=False)
        self.app = dav_app(config, self.store)

    def request(self, method: str, url: str, *, data: bytes | str | None = None,
                auth: tuple[str, str] | None = None,
                headers: Mapping[str, str] | None = None, timeout: float | None = None,
                ) -> Answer:
        del timeout  # in-process: nothing to wait for
        body = data.encode() if isinstance(data, str) else (data or b"")
        parts = urlsplit(url)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method.upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": parts.path or "/",
            "QUERY_STRING": parts.query,
            "SERVER_NAME": parts.hostname or "gateway.test",
            "SERVER_PORT": str(parts.port or 80),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": parts.scheme or "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            environ["HTTP_AUTHORIZATION"] = f"Basic {token}"
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, response_headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Any:
            started.append((status, response_headers))
            return lambda _data: None

        chunks: Iterable[bytes] = self.app(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, response_headers = started[-1]
        return Answer(int(status.split()[0]), dict(response_headers), content)

    def put(self, url: str, **kwargs: Any) -> Answer:
        return self.request("PUT", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Answer:
        return self.request("GET", url, **kwargs)
