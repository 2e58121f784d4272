"""Linked calendars: the gateway as a CalDAV client of reps' own accounts.

The continuous sync is the ``linked`` role of ``serve`` (``linked.service.start``). Everything
else (linking, the test, sync now, unlink, dedupe) goes through ``gateway.linked_ops``, which
``REMOTE`` below provides with this package's operations; each blocks (run it in a
process's foreground or on a worker thread).
"""

from __future__ import annotations

from linked.check import CheckResult, check_account
from linked.dav import Account, RemoteError
from linked.remote import REMOTE
from linked.service import sync_now
from linked.sync import PassReport

__all__ = ["REMOTE", "Account", "CheckResult", "PassReport", "RemoteError", "check_account",
           "sync_now"]
