"""The store the plugins serve, shared by every plugin instance in the process.

Radicale builds its storage more than once; all instances must share one engine and pool.
The database comes from ``[storage] database_url`` in Radicale's configuration, else from the
gateway configuration (``[storage] gateway_config`` or the usual lookup).
"""

from __future__ import annotations

from typing import Any

from gateway import config as gateway_config
from gateway.db import Store, shared_store


def _option(configuration: Any, name: str) -> str:
    try:
        return str(configuration.get("storage", name) or "")
    except KeyError:
        return ""


def store_for(configuration: Any) -> Store:
    url = _option(configuration, "database_url")
    if not url:
        loaded = gateway_config.load(_option(configuration, "gateway_config") or None)
        url = loaded.get("database", "url")
    return shared_store(url)
