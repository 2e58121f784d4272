"""The JSON API v1 (``/api/v1``): a WSGI app on the HTTP listener beside CalDAV."""

from __future__ import annotations

from gateway.web.api.app import ApiApp

__all__ = ["ApiApp"]
