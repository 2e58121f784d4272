"""One request as the views see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from gateway.web.pages.sessions import WebSession


@dataclass
class Page:
    """One request as the views see it."""

    request: Request
    session: WebSession
    user_id: int | None
    app: Any  # the PagesApp: config, store, throttle, templates, base_url
    status: int = 200

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        body = self.app.templates.get_template(template).render(
            csrf=self.session.csrf, signed_in=self.user_id is not None, **values)
        return Response(body, status=status, content_type="text/html; charset=utf-8")

    def redirect(self, location: str) -> Response:
        return Response("", status=303, headers={"Location": location})

    @property
    def peer(self) -> str:
        return self.request.remote_addr or "unknown"
