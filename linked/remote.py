"""This edge's operations as the core asks for them (``gateway.linked_ops.Remote``).

The process host provides them to the HTTP role and the CLI provides them to itself, so the
API and the pages run the same link flow as ``crm-gateway calendars`` without importing
this package.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from caldav.lib.error import DAVError

from gateway.config import Config
from gateway.db import Store
from gateway.linked_calendars import LinkTarget, RemoteCalendar
from gateway.linked_ops import AccountCheck, RemoteRefused, Removal
from linked.admin import dedupe, remove_pushed
from linked.check import check_account
from linked.dav import Account, RemoteError
from linked.service import sync_now
from linked.sync import PassReport


@contextmanager
def _answered(what: str) -> Iterator[None]:
    """The account's refusal or silence as the core's ``RemoteRefused``."""
    try:
        yield
    except RemoteError as exc:
        raise RemoteRefused(str(exc)) from None
    except (OSError, DAVError) as exc:
        raise RemoteRefused(f"{what}: the account did not answer: {exc}") from None


class Remote:
    def check(self, url: str, login: str, password: str, timeout: int) -> AccountCheck:
        return check_account(url, login, password, timeout=timeout)

    def make_calendar(self, url: str, login: str, password: str, timeout: int, home: str,
                      name: str) -> RemoteCalendar:
        account = Account(url, login, password, timeout)
        try:
            with _answered(f"making the calendar {name!r}"):
                return account.make_calendar(home, name)
        finally:
            account.close()

    def sync_now(self, config: Config, store: Store,
                 usernames: Sequence[str]) -> list[PassReport]:
        return sync_now(config, store, usernames)

    def remove_pushed(self, store: Store, target: LinkTarget, timeout: int) -> Removal:
        with _answered("removing what was pushed"):
            return remove_pushed(store, target, timeout=timeout)

    def dedupe(self, store: Store, target: LinkTarget, dry_run: bool,
               timeout: int) -> list[str]:
        with _answered("dedupe"):
            return dedupe(store, target, dry_run=dry_run, timeout=timeout)


REMOTE = Remote()
