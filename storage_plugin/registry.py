"""The store the plugins serve, shared by every plugin instance in the process.

Radicale builds its storage more than once; all instances must share one engine and pool.
The database comes from ``[storage] database_url`` in Radicale's configuration, else from the
gateway configuration (``[storage] gateway_config`` or the usual lookup).
"""

from __future__ import annotations

from typing import Any

from gateway import config as gateway_config
from gateway.db import Store, shared_store
from gateway.outbound import attach_config


def _option(configuration: Any, name: str) -> str:
    try:
        return str(configuration.get("storage", name) or "")
    except KeyError:
        return ""


def store_for(configuration: Any) -> Store:
    """The store; with the gateway configuration loaded here (no ``database_url``), its
    outbound mail settings too. Under ``serve`` the store is the process's own, which
    carries them already."""
    url = _option(configuration, "database_url")
    if url:
        return shared_store(url)
    loaded = gateway_config.load(_option(configuration, "gateway_config") or None)
    store = shared_store(loaded.get("database", "url"))
    attach_config(store, loaded)
    return store
