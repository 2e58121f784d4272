"""What every command shares: the opened store, output in text or JSON, argument types.

Only commands that set ``creates_store`` (``serve``, ``demo``, ``db upgrade``) may create the
embedded SQLite database; any other command run where there is none says which file it looked
for and how to point at the right one, and creates nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from gateway.config import CONFIG_ENV, DEFAULT_CONFIG_NAME, Config
from gateway.connectivity import StepResult
from gateway.db import Store, StoreError, shared_store
from gateway.outbound import attach_config

Handler = Callable[["Context", argparse.Namespace], int | None]


class Failure(Exception):
    """A command-line mistake that is not a domain rule (bad flag value, missing file)."""


class Context:
    def __init__(self, config: Config, *, as_json: bool = False, creates_store: bool = False):
        self.config = config
        self.as_json = as_json
        self.creates_store = creates_store
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The store with its schema current; the embedded default migrates itself."""
        if self._store is None:
            url = self.config.get("database", "url")
            if not self.creates_store:
                self._require_sqlite_file(url)
            store = shared_store(url)
            try:
                if store.needs_upgrade():
                    if not self.embedded_default:
                        raise StoreError(
                            "the database schema is not current: run 'crm-gateway db upgrade'"
                        )
                    store.upgrade()
            except DBAPIError as exc:
                raise StoreError(f"cannot use {store.engine.url!r}: {one_line(exc.orig)}") \
                    from None
            attach_config(store, self.config)
            self._store = store
        return self._store

    def _require_sqlite_file(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            return  # opening it says what is wrong with it
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return
        path = Path(parsed.database)
        if path.exists():
            return
        if self.config.config_path is not None:
            hint = (f"check database.url and paths.data_dir in {self.config.config_path}, "
                    "or set CRM_GATEWAY_DATABASE_URL")
        else:
            hint = (f"no {DEFAULT_CONFIG_NAME} in {Path.cwd()}: run this where yours is, or "
                    f"point at it with --config PATH or {CONFIG_ENV}, or set "
                    "CRM_GATEWAY_DATABASE_URL")
        raise Failure(
            f"no database at {path}; {hint} ('crm-gateway db upgrade' creates an empty one)"
        )

    @property
    def embedded_default(self) -> bool:
        return self.config.get("database", "url").startswith("sqlite:")

    def emit(self, data: Any, text: str | list[str]) -> None:
        """Print ``data`` as JSON with --json, else the human-readable ``text``."""
        if self.as_json:
            json.dump(data, sys.stdout, indent=2, default=_json_default, sort_keys=True)
            sys.stdout.write("\n")
        else:
            print(text if isinstance(text, str) else "\n".join(text))

    def close(self) -> None:
        self._store = None


def one_line(error: object) -> str:
    """A driver's message (often several lines) as one line."""
    return " ".join(part.strip() for part in str(error).splitlines() if part.strip())


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def on_off(value: str) -> bool:
    """argparse type for on|off flags."""
    lowered = value.lower()
    if lowered in {"on", "true", "yes"}:
        return True
    if lowered in {"off", "false", "no"}:
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, not {value!r}")


def parse_when(value: str, tzid: str | None) -> datetime:
    """An ISO date or date-time; naive values are in ``tzid`` (UTC when none)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Failure(f"{value!r} is not an ISO date or date-time (e.g. 2026-12-01T09:30)") \
            from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tzid) if tzid else UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def step_lines(result: StepResult) -> list[str]:
    """A connectivity test: one aligned line per step, then the verdict."""
    width = max((len(step.name) for step in result.steps), default=0)
    lines = [f"  {step.name.ljust(width)}  {step.status.ljust(7)} {step.detail}"
             for step in result.steps]
    failed = result.failed
    lines.append("all steps ok" if failed is None else f"failed at step {failed.name}")
    return lines
