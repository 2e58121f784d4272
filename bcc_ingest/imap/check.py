"""The connectivity test behind ``mail test`` (and ``mail set``): every step, named.

Steps in order: resolve, connect, tls, login, then ``folder NAME`` for each configured folder
and the Sent folder, each opened read-only. The first failure ends the test; the result
says which step failed and why, and whether the server refused the credentials.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bcc_ingest.imap.connect import ImapOptions, Mailbox, StepFailed, describe_error, open_session
from bcc_ingest.imap.folders import plan_folders, sent_hint
from bcc_ingest.imap.protocol import GatewayIMAP4Client
from bcc_ingest.imap.wire import ImapNo
from gateway.connectivity import FAILED, OK, SKIPPED, StepResult


@dataclass
class CheckResult(StepResult):
    auth_failed: bool = False


async def check_mailbox(
    reactor: Any, mailbox: Mailbox, folders: Sequence[str], options: ImapOptions
) -> CheckResult:
    """Run the steps against the real server; never raises for a server-side problem."""
    result = CheckResult()

    def report(step: str, status: str, detail: str) -> None:
        result.add(step, status, detail)

    try:
        client = await open_session(reactor, mailbox, options, report)
    except StepFailed as exc:
        report(exc.step, FAILED, exc.reason)
        result.auth_failed = exc.auth
        return result
    try:
        await _check_folders(client, folders, report)
    finally:
        with contextlib.suppress(Exception):
            await client.close_session()
    return result


async def _check_folders(
    client: GatewayIMAP4Client, configured: Sequence[str], report: Any
) -> None:
    try:
        listed = await client.list_folders()
    except Exception as exc:
        report("folders", FAILED, f"cannot list the folders: {describe_error(exc)}")
        return
    plan = plan_folders(configured, listed)
    for folder in plan.folders:
        step = f"folder {folder}"
        try:
            info = await client.examine(folder)
        except ImapNo as exc:
            report(step, FAILED, f"cannot open it: {exc.text}")
            return
        except Exception as exc:
            report(step, FAILED, describe_error(exc))
            return
        role = f"Sent folder, found by {plan.sent_found_by}; " if folder == plan.sent else ""
        report(step, OK, f"{role}{info.exists} messages, opened read-only")
    if plan.sent is None:
        # Without a Sent folder, the rep's own mail is never logged: a failure unless the
        # rep already chose the folders to poll.
        status = FAILED if tuple(configured) == ("INBOX",) else SKIPPED
        report("folder Sent", status, sent_hint(configured))
