"""The IMAP client the poller speaks through: Twisted's `IMAP4Client` plus what it lacks.

Twisted handles tags, literals and STARTTLS; this adds two clocks on every command (a
timeout on silence, armed only while an answer is awaited, so a slow database never trips it,
and a deadline on the whole answer, so a server trickling bytes cannot hold a session), limits
on what one answer may make the client hold (`AnswerLimits`: no literal over the message
limit, nothing ever spooled to disk), IDLE (RFC 2177), LIST with SPECIAL-USE (RFC 6154), and
a FETCH reader that takes each message's one body literal without Twisted's byte-by-byte
s-expression parser, which dominates a large import. Only read-only commands are offered:
EXAMINE, never SELECT; BODY.PEEK, never BODY.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.mail import imap4
from twisted.python.failure import Failure
from zope.interface import implementer

from bcc_ingest.imap.guard import (
    AnswerBudget,
    AnswerLimits,
    AnswerTooLarge,
    CommandTimeout,
    Deadline,
)
from bcc_ingest.imap.wire import (
    MAX_NUMBER,
    ImapError,
    ImapNo,
    ListedFolder,
    OutOfRange,
    capabilities_of,
    encode_mailbox,
    parse_fetch,
    parse_list_line,
    printable,
    protocol_number,
    quoted,
    small_number,
    uid_set,
)

_EXISTS = re.compile(rb"(\d+) EXISTS\b", re.IGNORECASE)
_CODE = {key: re.compile(rb"\[" + key + rb" (\d+)\]", re.IGNORECASE)
         for key in (b"UIDVALIDITY", b"UIDNEXT")}
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")

Lines = list[bytes]


@dataclass(frozen=True)
class FolderInfo:
    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    size: int | None
    data: bytes


class _RawCommand(imap4.Command):
    """A command whose untagged lines are handed back unparsed (we parse what we need)."""

    def finish(self, lastLine: bytes, unusedCallback: Any) -> None:
        d: Any = self.defer
        self.defer = None
        d.callback((self.lines, lastLine))


class _WatchedLines(list[bytes]):
    """Untagged lines of a running IDLE, each shown to `on_line` as it arrives."""

    def __init__(self, on_line: Callable[[bytes], None]) -> None:
        super().__init__()
        self._on_line = on_line

    def append(self, line: bytes) -> None:
        super().append(line)
        self._on_line(line)


@implementer(IHandshakeListener)
class GatewayIMAP4Client(imap4.IMAP4Client):
    """One connection. `greeted` fires with the greeting's capabilities; `handshake` when a
    TLS handshake completes; both fail if the connection is lost first."""

    # A UID SEARCH answer for a large folder is one long line.
    MAX_LENGTH = 16 * 1024 * 1024
    transport: Any  # Twisted's interfaces confuse mypy without the zope plugin

    def __init__(self, command_timeout: int, clock: IReactorTime,
                 limits: AnswerLimits | None = None) -> None:
        super().__init__()
        self.command_timeout = command_timeout
        self.limits = limits or AnswerLimits()
        self.anomalies: list[str] = []  # protocol errors that did not end a command
        self._deadline = Deadline(clock, self._deadline_passed)
        self._budget = AnswerBudget(self.limits)
        self._gave_up = False
        # Armed from connectionMade: covers an implicit TLS handshake and the greeting.
        self.timeout = command_timeout
        self._clock: Any = clock  # Twisted's interfaces confuse mypy without the zope plugin
        self.greeted: defer.Deferred[set[str]] = defer.Deferred()
        self.handshake: defer.Deferred[None] = defer.Deferred()
        self.capabilities: set[str] = set()
        self._waiting_for = "the server's greeting"
        self._stop_idle: Callable[[], None] | None = None
        self._lost: Failure | None = None

    # -- Twisted's hooks (camelCase is theirs) ----------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        self._deadline.arm(self.limits.deadline)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()  # silence is no bytes at all, not no complete line
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._gave_up:
            return
        refusal = self._budget.refuse(line, self._parts, self._waiting_for)
        if refusal is not None:
            reason, uid = refusal
            self._give_up(AnswerTooLarge(f"{reason}; connection reset", uid,
                                         self._command_lines()))
            return
        try:
            super().lineReceived(line)
        except Exception:  # Twisted's own refusal (a malformed literal), raised, not handled
            self._not_imap(line)

    def rawDataReceived(self, data: bytes) -> None:
        if self._gave_up:
            return
        self._budget.take(len(data))  # bounded already: the literal's size was checked
        super().rawDataReceived(data)

    def dispatchCommand(self, tag: bytes, rest: bytes) -> None:
        # Twisted would log a traceback quoting the whole line (up to MAX_LENGTH of server
        # bytes) and close quietly; instead what waits fails with a short, printable reason.
        state = self.state.upper() if self.state is not None else "UNAUTH"
        handler = getattr(self, "response_" + state, None)
        try:
            if handler is None:
                raise imap4.IllegalServerResponse(tag + b" " + rest)
            handler(tag, rest)
        except Exception:
            self._not_imap(tag + b" " + rest)

    def _not_imap(self, line: bytes) -> None:
        shown = printable(line[:200].decode("latin-1"), 80) or "an empty line"
        self._give_up(ImapError(f"the server sent what is not IMAP: {shown}"))

    def messageFile(self, octets: int) -> Any:
        return io.BytesIO()  # a literal is at most limits.max_literal: never a temporary file

    def serverGreeting(self, caps: dict[bytes, Any] | None) -> None:
        self.setTimeout(None)
        self._deadline.disarm()
        self.capabilities = {name.decode("ascii", "replace").upper() for name in caps or {}}
        if not self.greeted.called:
            self.greeted.callback(self.capabilities)

    def callLater(self, period: float, func: Callable[[], object]) -> Any:
        return self._clock.callLater(period, func)  # TimeoutMixin's timer, on our clock

    def handshakeCompleted(self) -> None:
        if not self.handshake.called:
            self.handshake.callback(None)

    def timeoutConnection(self) -> None:
        self._give_up(CommandTimeout(
            f"no answer to {self._waiting_for} within {self.command_timeout:g} s"
        ))

    # -- limits (see guard) -----------------------------------------------------------------

    def _command_lines(self) -> list[bytes]:
        command = (self.tags or {}).get(self.waiting) if self.waiting else None
        return list(command.lines) if command is not None else []

    def _deadline_passed(self, seconds: float) -> None:
        self._give_up(CommandTimeout(
            f"no complete answer to {self._waiting_for} within the deadline of {seconds:g} s"
        ))

    def _give_up(self, error: ImapError) -> None:
        """Fail what is waiting with `error` and drop the connection at once."""
        # Dead before anyone hears of it: a command sent from an errback fails at once.
        self._gave_up = True
        self._lost = Failure(error)
        self._deadline.disarm()
        self.setTimeout(None)
        self.transport.abortConnection()
        # The command awaiting its answer (a queued one is sent from the previous answer's
        # callback, so Twisted's _lastCmd may be older).
        command = (self.tags or {}).get(self.waiting) if self.waiting else None
        if command is not None and command.defer is not None:
            d, command.defer = command.defer, None
            d.errback(error)
        for waiter in (self.greeted, self.handshake):
            if not waiter.called:
                waiter.errback(error)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._deadline.disarm()
        self._lost = self._lost or reason
        super().connectionLost(reason)
        for waiter in (self.greeted, self.handshake):
            if not waiter.called:
                waiter.errback(reason)

    # -- commands ---------------------------------------------------------------------------

    def run(
        self, command: bytes, args: bytes | None = None, *, what: str,
        cmd: imap4.Command | None = None, extra_seconds: float = 0,
    ) -> defer.Deferred[tuple[Lines, bytes]]:
        """Send one command; fires with (untagged lines, tagged line) or fails with ImapNo.

        The whole answer must arrive within the deadline (plus `extra_seconds`, the silence
        a command like IDLE is allowed by design).
        """
        if self._lost is not None:  # Twisted's client cannot even queue a command then
            return defer.fail(self._lost)
        if cmd is None:
            cmd = _RawCommand(command, args)
        self._waiting_for = what
        self._budget.start()
        self._deadline.arm(self.limits.deadline + extra_seconds)
        self.setTimeout(self.command_timeout)
        d: defer.Deferred[tuple[Lines, bytes]] = self.sendCommand(cmd)
        d.addBoth(self._answered)
        d.addErrback(self._server_refused, what)
        return d

    def _answered(self, result: Any) -> Any:
        if not self.waiting:
            self.setTimeout(None)
            self._deadline.disarm()
        return result

    @staticmethod
    def _server_refused(failure: Failure, what: str) -> Failure:
        if failure.check(imap4.IMAP4Exception) and not failure.check(ImapError):
            args = getattr(failure.value, "args", ())
            text = args[0] if args else b""
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            raise ImapNo(what, str(text))
        return failure

    async def refresh_capabilities(self) -> set[str]:
        lines, _ = await self.run(b"CAPABILITY", what="CAPABILITY")
        self.capabilities = capabilities_of(lines)
        return self.capabilities

    async def start_tls(self, creator: Any) -> None:
        """STARTTLS (RFC 3501 section 6.2.1), then wait for the handshake to finish."""
        await self.run(b"STARTTLS", what="STARTTLS")
        self.transport.startTLS(creator)
        self.startedTLS = True
        self._waiting_for = "the TLS handshake"
        self.setTimeout(self.command_timeout)
        self._deadline.arm(self.limits.deadline)
        try:
            await self.handshake
        finally:
            self.setTimeout(None)
            self._deadline.disarm()
        await self.refresh_capabilities()

    async def log_in(self, login: str, password: str) -> None:
        """LOGIN, or AUTHENTICATE PLAIN where LOGIN cannot carry the credentials."""
        if _PRINTABLE_ASCII.fullmatch(login) and _PRINTABLE_ASCII.fullmatch(password):
            if "LOGINDISABLED" in self.capabilities:
                raise ImapNo("LOGIN", "the server refuses LOGIN on this connection "
                             "(LOGINDISABLED): use --tls ssl or --tls starttls")
            args = quoted(login.encode("ascii")) + b" " + quoted(password.encode("ascii"))
            _, tagline = await self.run(b"LOGIN", args, what="LOGIN")
        elif "AUTH=PLAIN" in self.capabilities:
            token = base64.b64encode(f"\0{login}\0{password}".encode())

            def send_token(_challenge: bytes) -> None:
                self.sendLine(token)

            cmd = imap4.Command(b"AUTHENTICATE", b"PLAIN", (), send_token)
            _, tagline = await self.run(b"AUTHENTICATE", what="AUTHENTICATE PLAIN",
                                        cmd=_as_raw(cmd))
        else:
            raise ImapNo("LOGIN", "the login or password has characters LOGIN cannot carry "
                         "and the server offers no AUTHENTICATE PLAIN")
        fresh = capabilities_of([tagline.partition(b"[")[2].partition(b"]")[0]])
        self.capabilities = fresh if fresh else await self.refresh_capabilities()

    async def list_folders(self) -> list[ListedFolder]:
        # RFC 6154 section 2: RETURN (SPECIAL-USE) makes the attributes certain.
        args = b'"" "*"' + (b" RETURN (SPECIAL-USE)" if "SPECIAL-USE" in self.capabilities
                            else b"")
        lines, _ = await self.run(b"LIST", args, what="LIST")
        folders = [parse_list_line(line) for line in lines if line[:5].upper() == b"LIST "]
        return [folder for folder in folders if folder is not None]

    async def examine(self, folder: str) -> FolderInfo:
        """Open `folder` read-only (EXAMINE never changes \\Recent or \\Seen)."""
        lines, tagline = await self.run(b"EXAMINE", encode_mailbox(folder),
                                        what=f"EXAMINE {folder}")
        found: dict[bytes, bytes] = {}
        exists = 0
        for line in [*lines, tagline]:
            if match := _EXISTS.match(line):  # shown, never stored
                count = small_number(match.group(1))
                exists = MAX_NUMBER if count is None else min(count, MAX_NUMBER)
            for key, pattern in _CODE.items():
                if code := pattern.search(line):
                    found[key] = code.group(1)
        if b"UIDVALIDITY" not in found:
            raise ImapError(f"EXAMINE {folder}: the server sent no UIDVALIDITY")
        try:
            uidvalidity = protocol_number(found[b"UIDVALIDITY"], "UIDVALIDITY")
        except OutOfRange as exc:
            raise OutOfRange(f"EXAMINE {folder}: {exc}") from None
        try:  # only ever a hint (see sync): an impossible one is no hint at all
            uidnext = protocol_number(found[b"UIDNEXT"], "UIDNEXT") if b"UIDNEXT" in found \
                else None
        except OutOfRange:
            uidnext = None
        return FolderInfo(uidvalidity, uidnext, exists)

    async def uid_search(self, criteria: str) -> list[int]:
        lines, _ = await self.run(b"UID SEARCH", criteria.encode("ascii"),
                                  what=f"UID SEARCH {criteria}")
        uids: set[int] = set()
        refused: list[bytes] = []
        for line in lines:
            if line[:7].upper() == b"SEARCH ":
                for token in line[7:].split():
                    if not token.isdigit():
                        continue
                    value = small_number(token)
                    if value is not None and 0 < value <= MAX_NUMBER:
                        uids.add(value)
                    else:
                        refused.append(token)
        if refused:  # the rest of the answer still counts
            self.anomalies.append(
                f"UID SEARCH {criteria}: the server sent {len(refused)} UID(s) outside the "
                f"protocol's range (1 to {MAX_NUMBER}), e.g. {printable(refused[0].decode(), 40)}"
            )
        return sorted(uids)

    async def fetch(self, uids: Sequence[int], section: bytes) -> list[FetchedMessage]:
        """UID FETCH one BODY.PEEK section (and the size) of `uids`, in UID order."""
        items = b"(UID RFC822.SIZE BODY.PEEK[" + section + b"])"
        lines, _ = await self.run(b"UID FETCH", uid_set(uids) + b" " + items,
                                  what=f"UID FETCH of {len(uids)} messages")
        return fetched_messages(lines, uids)

    async def idle(self, seconds: float) -> bool:
        """IDLE on the open folder until new mail (True) or `seconds` pass (False)."""
        state = {"new": False, "idling": False, "stopping": False, "done": False}
        timer: list[Any] = []

        def finish() -> None:
            state["stopping"] = True
            # RFC 2177: DONE only after the server's continuation; idling() sends it then.
            if state["done"] or not state["idling"]:
                return
            state["done"] = True
            self._stop_idle = None
            for call in timer:
                if call.active():
                    call.cancel()
            self._waiting_for = "DONE (end of IDLE)"
            self.setTimeout(self.command_timeout)
            self.sendLine(b"DONE")

        def on_line(line: bytes) -> None:
            if _EXISTS.match(line):
                state["new"] = True
                finish()

        def idling(_rest: bytes) -> None:
            state["idling"] = True
            if state["stopping"]:
                finish()
                return
            self.setTimeout(None)  # silence is the normal state of an IDLE
            timer.append(self.callLater(seconds, finish))

        cmd = _RawCommand(b"IDLE", None, (), idling)
        cmd.lines = _WatchedLines(on_line)
        self._stop_idle = finish
        try:
            await self.run(b"IDLE", what="IDLE", cmd=cmd, extra_seconds=seconds)
        finally:
            self._stop_idle = None
            for call in timer:
                if call.active():
                    call.cancel()
        return state["new"]

    def stop_idle(self) -> None:
        """End a running IDLE early (the service is stopping)."""
        if self._stop_idle is not None:
            self._stop_idle()

    async def close_session(self) -> None:
        """LOGOUT politely; the connection is closed whatever the server says."""
        try:
            await self.run(b"LOGOUT", what="LOGOUT")
        finally:
            self.transport.loseConnection()


def fetched_messages(lines: Sequence[bytes], uids: Sequence[int]) -> list[FetchedMessage]:
    """The messages of `uids` in FETCH answer `lines`, in UID order."""
    wanted = set(uids)
    found: dict[int, FetchedMessage] = {}
    for line in lines:
        parsed = parse_fetch(line)
        # Unsolicited FETCH (flag changes by other clients) carries no body: skip it.
        if parsed is not None and parsed[0] in wanted and parsed[2] is not None:
            found[parsed[0]] = FetchedMessage(parsed[0], parsed[1], parsed[2])
    return [found[uid] for uid in sorted(found)]


def _as_raw(cmd: imap4.Command) -> _RawCommand:
    raw = _RawCommand(cmd.command, cmd.args)
    raw.continuation = cmd.continuation
    return raw
