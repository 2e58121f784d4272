"""The mailbox connectivity test and "sync now" as the core sees them: operations the
process provides.

Both speak IMAP, so they live in the IMAP edge; an HTTP edge may not import that edge. The
process host (which sits above both) hands the core a blocking ``Probe`` and ``Poll`` when it
starts the HTTP role; the API and the pages call ``test_mailbox`` and ``poll_mailbox``. The
rule that a refused login pauses the account (so the poller stops knocking with a wrong
password) is ``record_outcome``, shared with ``crm-gateway mail test``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.connectivity import FAILED, Step
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
    steps: tuple[Step, ...]
    ok: bool
    paused: bool

    @property
    def failed(self) -> Step | None:
        return next((step for step in self.steps if step.status == FAILED), None)


Probe = Callable[[int], ResultLike]  # account id -> result; blocks, runs no transaction
Poll = Callable[[str], Sequence[Any]]  # username -> one report per account polled; blocks
_provided: list[tuple[Probe, Poll]] = []


class ProbeUnavailable(DomainError):
    """This process cannot run the test (no IMAP edge was provided to it)."""


def provide(probe: Probe, poll: Poll) -> None:
    """Install the process's operations (the host does, when it starts the HTTP role)."""
    _provided[:] = [(probe, poll)]


def _operations() -> tuple[Probe, Poll]:
    if not _provided:
        raise ProbeUnavailable("this process cannot reach mailboxes (it runs no IMAP edge)")
    return _provided[0]


def record_outcome(store: Store, username: str, result: ResultLike) -> Outcome:
    """Pause the account when the server refused the login; the outcome, step by step."""
    failed = result.failed
    paused = failed is not None and result.auth_failed
    if paused and failed is not None:
        with store.transaction() as session:
            pause_after_refused_login(session, get_user(session, username), failed.name,
                                      failed.detail)
    return Outcome(tuple(Step(s.name, s.status, s.detail) for s in result.steps),
                   failed is None, paused)


def test_mailbox(store: Store, username: str) -> Outcome:
    """Run the connectivity test of ``username``'s mailbox (outside any transaction)."""
    probe, _ = _operations()
    with store.reading() as session:
        account_id = get_account(session, get_user(session, username)).id
    return record_outcome(store, username, probe(account_id))


def poll_mailbox(username: str) -> Sequence[Any]:
    """Poll ``username``'s mailbox now ("sync now"), outside any transaction."""
    _, poll = _operations()
    return poll(username)
