"""The API's resources, one module each; importing them declares their routes."""

from __future__ import annotations

import importlib

MODULES = ("users", "catalogue", "entries", "activities", "settings", "mail", "webhooks",
           "calendar_links", "feeds", "availability")


def load() -> None:
    """Declare every resource's routes (once: importing a module twice does nothing)."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
