"""The IMAP poller: reps' mailboxes read with Twisted's IMAP4 client, logged as activities.

The continuous poller is the ``imap`` role of ``serve`` (`bcc_ingest.imap.service.start`).
The CLI's one-off commands use the two entry points below and nothing else of this package;
each is a coroutine run on the reactor the command's process runs for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bcc_ingest.imap.check import CheckResult, check_mailbox
from bcc_ingest.imap.connect import ImapOptions
from bcc_ingest.imap.service import AccountReport, make_context, owner_name, poll_once
from gateway.config import Config
from gateway.db import Store
from gateway.mail_leases import load_target
from gateway.secrets import SecretBox

__all__ = ["AccountReport", "CheckResult", "poll_now", "test_account"]


async def test_account(reactor: Any, config: Config, store: Store,
                       account_id: int) -> CheckResult:
    """The connectivity test of one account (``mail test``): every step, named."""
    target = load_target(store, account_id, SecretBox(config.get("security", "secret_key")))
    return await check_mailbox(reactor, target, target.folders, ImapOptions.from_config(config))


async def poll_now(reactor: Any, config: Config, store: Store,
                   usernames: Sequence[str] | None) -> list[AccountReport]:
    """One pass over every active account, or those of ``usernames`` (``mail poll --once``)."""
    ctx = make_context(reactor, store, config, owner_name(":once"))
    return await poll_once(ctx, usernames)
