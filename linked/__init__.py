"""Linked calendars: the gateway as a CalDAV client of reps' own accounts.

The continuous sync is the ``linked`` role of ``serve`` (``linked.service.start``). The
CLI uses the entry points below and nothing else of this package; each blocks (run it in
a process's foreground or on a worker thread).
"""

from __future__ import annotations

from gateway.connectivity import Step
from linked.admin import Removal, dedupe, remove_pushed
from linked.check import CheckResult, check_account
from linked.dav import Account, RemoteError
from linked.service import sync_now
from linked.sync import PassReport

__all__ = [
           "Account",
           "CheckResult",
           "PassReport",
           "RemoteError",
           "Removal",
           "Step",
           "check_account",
           "dedupe",
           "remove_pushed",
           "sync_now",
]
