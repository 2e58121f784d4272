"""One pass over a mailbox's folders: new mail's headers, then bodies of what matters.

Per folder: EXAMINE; if UIDVALIDITY is the one on record, ask for UIDs above the
cursor (nothing at all when UIDNEXT shows no new mail); otherwise (first poll, or the folder
was recreated) ask for mail since ``imap.backfill_days``. Headers come in UID batches; only
messages with a participant who is a CRM contact, or at an account's domain, are fetched in
full, and one larger than ``imap.max_message_bytes`` is logged from its headers alone. Each
group of bodies is logged and the cursor moved past it in one transaction, so the cursor
never passes a message that is not logged. The cursor only ever moves to UIDs the server
named in a SEARCH or FETCH answer: an announced UIDNEXT is a hint that there is no new mail,
never a position.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from twisted.internet.threads import deferToThreadPool

from bcc_ingest.imap.connect import ImapOptions
from bcc_ingest.imap.folders import plan_folders
from bcc_ingest.imap.guard import AnswerTooLarge
from bcc_ingest.imap.oversize import is_oversize, parse_fetched
from bcc_ingest.imap.protocol import (
    FetchedMessage,
    FolderInfo,
    GatewayIMAP4Client,
    fetched_messages,
)
from bcc_ingest.imap.wire import ImapError, ImapNo, OutOfRange
from gateway.clock import utcnow
from gateway.db import Store
from gateway.logging_policy import LoggingPolicy
from gateway.mail.parse import parse_headers
from gateway.mail_import import LeaseRef, commit_batch, relevance

log = logging.getLogger(__name__)

# Only what deciding relevance needs; BODY.PEEK never sets \Seen (RFC 3501 section 6.4.5).
HEADER_SECTION = b"HEADER.FIELDS (FROM TO CC BCC)"
FULL_SECTION = b""
WHOLE_HEADER_SECTION = b"HEADER"
HEADER_BATCH = 500
BODY_BATCH_COUNT = 100
BODY_BATCH_BYTES = 16 * 1024 * 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
T = TypeVar("T")

Cursors = dict[str, tuple[int, int]]  # folder -> (uidvalidity, last_uid)


class Stopping(Exception):
    """The service is stopping; the pass ends between two batches."""


class FolderFailed(ImapError):
    """A folder could not be polled (the others were)."""


@dataclass
class PassCounts:
    folders: int = 0
    examined: int = 0  # headers read
    fetched: int = 0  # bodies read
    logged: int = 0
    linked: int = 0
    not_logged: int = 0
    set_aside: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class SyncContext:
    reactor: Any
    store: Store
    policy: LoggingPolicy
    options: ImapOptions
    lease: LeaseRef
    username: str
    stopping: Callable[[], bool]
    now: Callable[[], datetime] = utcnow

    def in_thread(self, function: Callable[..., T], *args: Any) -> Any:
        """Run blocking database or parsing work off the reactor thread."""
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), function, *args)


def imap_date(moment: datetime) -> str:
    """RFC 3501 date ("1-Feb-1994"), independent of the process locale."""
    return f"{moment.day}-{_MONTHS[moment.month - 1]}-{moment.year}"


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Committer:
    """Commits batches in order, one at a time, in a worker thread.

    The next batch is fetched while the previous one commits; a folder's cursor in memory
    moves only when its commit has returned.
    """

    def __init__(self, ctx: SyncContext, cursors: Cursors, counts: PassCounts) -> None:
        self.ctx = ctx
        self.cursors = cursors
        self.counts = counts
        self._pending: Any = None
        self._target: tuple[str, int, int] | None = None

    async def submit(self, folder: str, info: FolderInfo, cursor: int,
                     bodies: Sequence[FetchedMessage]) -> None:
        await self.drain()
        ctx = self.ctx

        limit = ctx.options.max_message_bytes

        def work() -> Any:
            parsed = [(m.uid, parse_fetched(m, limit), m.data) for m in bodies]
            return commit_batch(
                ctx.store, ctx.lease, ctx.policy, folder=folder, uidvalidity=info.uidvalidity,
                cursor_uid=cursor, messages=parsed, now=ctx.now(),
            )

        self._target = (folder, info.uidvalidity, cursor)
        self._pending = ctx.in_thread(work)

    async def drain(self) -> None:
        if self._pending is None or self._target is None:
            return
        pending, (folder, uidvalidity, cursor) = self._pending, self._target
        self._pending = self._target = None
        done = await pending
        self.cursors[folder] = (uidvalidity, cursor)
        for name in ("logged", "linked", "not_logged", "set_aside"):
            setattr(self.counts, name, getattr(self.counts, name) + getattr(done, name))


async def sync_mailbox(
    ctx: SyncContext, client: GatewayIMAP4Client, folders: Sequence[str], cursors: Cursors,
    counts: PassCounts,
) -> None:
    """Poll the configured folders and Sent; `cursors` and `counts` are updated in place.

    Raises FolderFailed after polling the rest when a folder cannot be opened.
    """
    plan = plan_folders(folders, await client.list_folders())
    committer = _Committer(ctx, cursors, counts)
    problems: list[str] = []
    try:
        for folder in plan.folders:
            try:
                await sync_folder(ctx, client, folder, committer)
            except (ImapNo, OutOfRange) as exc:  # gone, refused or unusable; others count
                problems.append(str(exc))
            problems += [f"{folder}: {text}" for text in client.anomalies]
            client.anomalies.clear()
    except BaseException:
        try:
            await committer.drain()  # what was fetched before the failure still counts
        except Exception as exc:
            log.warning("imap %s: a batch did not commit: %s", ctx.username, exc)
        raise
    await committer.drain()
    if problems:
        raise FolderFailed("; ".join(problems))


async def sync_folder(
    ctx: SyncContext, client: GatewayIMAP4Client, folder: str, committer: _Committer
) -> None:
    info = await client.examine(folder)
    committer.counts.folders += 1
    await committer.drain()  # the cursor below must be the committed one
    known = committer.cursors.get(folder)
    if known is not None and known[0] == info.uidvalidity:
        floor = known[1]
        if info.uidnext is not None and info.uidnext - 1 <= floor:
            return  # no new mail: the common case costs one EXAMINE
        uids = [uid for uid in await client.uid_search(f"UID {floor + 1}:*") if uid > floor]
    else:
        if known is not None:
            log.info("imap %s: %s has a new UIDVALIDITY; rescanning the last %d days",
                     ctx.username, folder, ctx.options.backfill_days)
        since = ctx.now() - timedelta(days=ctx.options.backfill_days)
        floor = await _newest_uid(client, info)  # before the SEARCH: later mail is above it
        uids = await client.uid_search(f"SINCE {imap_date(since)}")
    end = max([floor, *uids])
    if not uids:
        if known != (info.uidvalidity, end):
            await committer.submit(folder, info, end, [])
        return
    batches = list(_chunks(uids, HEADER_BATCH))
    for index, batch in enumerate(batches):
        if ctx.stopping():
            raise Stopping
        batch_end = end if index == len(batches) - 1 else batch[-1]
        await _sync_batch(ctx, client, folder, info, batch, batch_end, committer)


async def _newest_uid(client: GatewayIMAP4Client, info: FolderInfo) -> int:
    """The UID of the folder's newest message (0 when empty): older mail a backfill skips
    deliberately lies below it. UIDNEXT, where given, can only lower it."""
    if not info.exists:
        return 0
    newest = max([0, *await client.uid_search("UID *")])
    return min(newest, info.uidnext - 1) if info.uidnext is not None else newest


async def _sync_batch(
    ctx: SyncContext, client: GatewayIMAP4Client, folder: str, info: FolderInfo,
    batch: Sequence[int], batch_end: int, committer: _Committer,
) -> None:
    headers = await client.fetch(batch, HEADER_SECTION)
    committer.counts.examined += len(headers)
    wanted: list[FetchedMessage] = await ctx.in_thread(_pick_relevant, ctx, headers)
    groups = _body_groups(wanted, ctx.options.max_message_bytes)
    if not groups:
        await committer.submit(folder, info, batch_end, [])
        return
    for index, group in enumerate(groups):
        bodies = await _fetch_group(ctx, client, folder, info, group, committer)
        committer.counts.fetched += len(bodies)
        # Up to just before the next group: every relevant UID below it is in this commit.
        cursor = groups[index + 1][0].uid - 1 if index + 1 < len(groups) else batch_end
        await committer.submit(folder, info, cursor, bodies)


async def _fetch_group(
    ctx: SyncContext, client: GatewayIMAP4Client, folder: str, info: FolderInfo,
    group: Sequence[FetchedMessage], committer: _Committer,
) -> list[FetchedMessage]:
    """Bodies of `group`; the whole header of each oversize one instead of its body."""
    limit = ctx.options.max_message_bytes
    large = [m.uid for m in group if is_oversize(m, limit)]
    whole = [m.uid for m in group if not is_oversize(m, limit)]
    found = await client.fetch(large, WHOLE_HEADER_SECTION) if large else []
    sizes = {m.uid: m.size for m in group}
    found = [FetchedMessage(m.uid, sizes[m.uid], m.data) for m in found]
    if whole:
        try:
            found += await client.fetch(whole, FULL_SECTION)
        except AnswerTooLarge as exc:
            await _keep_what_came(folder, info, group, exc, found, committer)
            raise
    return sorted(found, key=lambda m: m.uid)


async def _keep_what_came(
    folder: str, info: FolderInfo, group: Sequence[FetchedMessage], exc: AnswerTooLarge,
    found: list[FetchedMessage], committer: _Committer,
) -> None:
    """Commit the bodies that came before a refused literal, and skip the refused message.

    Skipping it (the reason goes to the account's last error) keeps one hostile message from
    blocking the folder for good; the cursor stops at the first message that did not come.
    """
    came = {m.uid: m for m in [*found, *fetched_messages(exc.lines, [m.uid for m in group])]}
    kept: list[FetchedMessage] = []
    cursor = group[0].uid - 1
    for message in group:
        if message.uid in came:
            kept.append(came[message.uid])
        elif message.uid != exc.uid:
            break
        cursor = message.uid
    if cursor >= group[0].uid:
        await committer.submit(folder, info, cursor, kept)
        await committer.drain()
    skipped = f"; UID {exc.uid} is skipped" if exc.uid is not None and cursor >= exc.uid else ""
    exc.args = (f"{folder}: {exc}{skipped}",)


def _pick_relevant(ctx: SyncContext, headers: Sequence[FetchedMessage]) -> list[FetchedMessage]:
    address_sets = []
    for message in headers:
        summary = parse_headers(message.data)
        people = [summary.sender] if summary.sender is not None else []
        people += [*summary.to, *summary.cc, *summary.bcc]
        address_sets.append(frozenset(person.email for person in people))
    answers = relevance(ctx.store, ctx.lease.user_id, ctx.policy, address_sets)
    return [message for message, wanted in zip(headers, answers, strict=True) if wanted]


def _body_groups(
    messages: Sequence[FetchedMessage], limit: int
) -> list[list[FetchedMessage]]:
    groups: list[list[FetchedMessage]] = []
    size = 0
    for message in messages:
        if not groups or len(groups[-1]) >= BODY_BATCH_COUNT or size >= BODY_BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(message)
        size += min(message.size or 0, limit)  # an oversize one is only its header
    return groups
