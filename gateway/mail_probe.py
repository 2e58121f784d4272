"""The mailbox connectivity test as the core sees it: a probe the process provides.

The test itself speaks IMAP, so it lives in the IMAP edge; an HTTP edge may not import that
edge. The process host (which sits above both) hands the core a blocking ``Probe`` when it
starts the HTTP role, and the API calls ``test_mailbox``. The rule that a refused login
pauses the account (so the poller stops knocking with a wrong password) is ``record_outcome``,
shared with ``crm-gateway mail test``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.db import Store
from gateway.errors import DomainError
from gateway.mail_accounts import get_account, pause_after_refused_login
from gateway.users import get_user


class StepLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...  # "ok" | "failed" | "skipped"
    @property
    def detail(self) -> str: ...


class ResultLike(Protocol):
    @property
    def steps(self) -> Sequence[StepLike]: ...
    @property
    def auth_failed(self) -> bool: ...
    @property
    def failed(self) -> StepLike | None: ...


@dataclass(frozen=True)
class Outcome:
    steps: tuple[tuple[str, str, str], ...]  # (name, status, detail) in order
    ok: bool
    paused: bool


Probe = Callable[[int], ResultLike]  # account id -> result; blocks, runs no transaction
_provided: list[Probe] = []


class ProbeUnavailable(DomainError):
    """This process cannot run the test (no IMAP edge was provided to it)."""


def provide(probe: Probe) -> None:
    """Install the process's probe (the host does, when it starts the HTTP role)."""
    _provided[:] = [probe]


def record_outcome(store: Store, username: str, result: ResultLike) -> Outcome:
    """Pause the account when the server refused the login; the outcome, step by step."""
    failed = result.failed
    paused = failed is not None and result.auth_failed
    if paused and failed is not None:
        with store.transaction() as session:
            pause_after_refused_login(session, get_user(session, username), failed.name,
                                      failed.detail)
    return Outcome(tuple((s.name, s.status, s.detail) for s in result.steps),
                   failed is None, paused)


def test_mailbox(store: Store, username: str) -> Outcome:
    """Run the connectivity test of ``username``'s mailbox (outside any transaction)."""
    if not _provided:
        raise ProbeUnavailable("this process cannot test mailboxes (it runs no IMAP edge)")
    with store.reading() as session:
        account_id = get_account(session, get_user(session, username)).id
    return record_outcome(store, username, _provided[0](account_id))
