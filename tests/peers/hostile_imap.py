"""A scripted IMAP server on loopback that misbehaves on purpose, as a compromised or buggy
mail server might.

It speaks just enough IMAP4rev1 for the poller (LOGIN, CAPABILITY, LIST, EXAMINE, UID SEARCH,
UID FETCH of BODY.PEEK sections, LOGOUT) over asyncio, on its own loop in a thread. The
login name chooses the misbehaviour (`MODES`); a server-wide `greeting` replaces the greeting,
which comes before any login. Every connection is bounded in time and bytes, so no test can
hang on it. What each connection did is kept in `events` for tests to assert on.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

HONEST = "honest"
BOGUS_UIDNEXT = "bogus-uidnext"  # the first EXAMINE announces UIDNEXT 4000000000
HUGE_LITERAL = "huge-literal"  # the body of `huge_uid` is 2 GB: announced, silence, trickle
TRICKLE = "trickle"  # the answer to LOGIN comes one byte at a time
GARBAGE_LIST = "garbage-list"  # binary garbage lines inside the LIST answer
GARBAGE_ERROR = "garbage-error"  # LIST refused with 500 bytes of binary garbage
HUGE_UID = "huge-uid"  # UID SEARCH answers include the UIDs 2**40 and 10**5000 - 1
HUGE_UIDVALIDITY = "huge-uidvalidity"  # EXAMINE announces UIDVALIDITY 2**40
NEW_UIDVALIDITY = "new-uidvalidity"  # every connection sees a new UIDVALIDITY
DROP_MID_FETCH = "drop-mid-fetch"  # the first connection dies in its third body FETCH
MODES = (HONEST, BOGUS_UIDNEXT, HUGE_LITERAL, TRICKLE, GARBAGE_LIST, GARBAGE_ERROR, HUGE_UID,
         HUGE_UIDVALIDITY, NEW_UIDVALIDITY, DROP_MID_FETCH)

GARBAGE = bytes(range(256)).replace(b"\r", b"").replace(b"\n", b"") * 2
HUGE = 2**31
_COMMAND = re.compile(rb"^(\S+) (?:UID )?(\S+) ?(.*)$", re.IGNORECASE)
_FIELDS = re.compile(rb"HEADER\.FIELDS \(([^)]*)\)", re.IGNORECASE)
_SECTION = re.compile(rb"BODY\.PEEK\[([^\]]*)\]", re.IGNORECASE)


@dataclass
class Folder:
    uidvalidity: int = 1
    messages: dict[int, bytes] = field(default_factory=dict)
    generated: int = 0  # UIDs 1..generated are made up on request (see `generated_message`)
    generated_from: str = "nobody@elsewhere.example"

    def uids(self) -> list[int]:
        return sorted({*range(1, self.generated + 1), *self.messages})

    def message(self, uid: int) -> bytes:
        if uid in self.messages:
            return self.messages[uid]
        return generated_message(uid, self.generated_from)


def generated_message(uid: int, sender: str) -> bytes:
    return (f"From: {sender}\r\nTo: rep@crm.example\r\nSubject: Generated {uid}\r\n"
            f"Message-ID: <gen-{uid}@elsewhere.example>\r\n\r\nBody {uid}\r\n").encode()


@dataclass
class Event:
    login: str
    what: str
    at: float
    detail: str = ""


class HostileImap:
    """The server; `start` binds a free loopback port (`port`), `stop` closes everything."""

    def __init__(self, *, greeting: bytes | None = None, max_seconds: float = 60.0,
                 max_bytes: int = 64 * 1024 * 1024, silence_seconds: float = 2.0,
                 trickle_seconds: float = 0.5) -> None:
        self.greeting = greeting or b"* OK [CAPABILITY IMAP4rev1] hostile test server ready"
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self.silence_seconds = silence_seconds
        self.trickle_seconds = trickle_seconds
        self.port = 0
        self.huge_uid = 1
        self.events: list[Event] = []
        self._folders: dict[str, Folder] = {}
        self._connections: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="hostile-imap")
        self._server: asyncio.base_events.Server | None = None

    # -- the test's side --------------------------------------------------------------------

    def folder(self, login: str) -> Folder:
        """The INBOX of `login` (the only folder it has)."""
        with self._lock:
            return self._folders.setdefault(login, Folder())

    def add(self, login: str, raw: bytes) -> int:
        """Deliver `raw` to `login`'s INBOX; returns its UID."""
        folder = self.folder(login)
        with self._lock:
            uid = max(folder.uids(), default=0) + 1
            folder.messages[uid] = raw
            return uid

    def seen(self, login: str, what: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.login == login and e.what == what]

    def wait_for(self, login: str, what: str, timeout: float = 10.0) -> list[Event]:
        """`seen`, once there is at least one such event (the server notes them late)."""
        deadline = time.monotonic() + timeout
        while not (events := self.seen(login, what)) and time.monotonic() < deadline:
            time.sleep(0.02)
        return events

    def start(self) -> None:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop)
        self._server = started.result(10)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- the server's side ------------------------------------------------------------------

    def _note(self, login: str, what: str, detail: str = "") -> None:
        with self._lock:
            self.events.append(Event(login, what, time.monotonic(), detail))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        try:
            await asyncio.wait_for(session.run(), self.max_seconds)
        except (TimeoutError, ConnectionError, _Bounded):
            pass
        finally:
            self._note(session.login, "closed", f"{session.sent} bytes sent")
            writer.transport.abort()


class _Bounded(Exception):
    """The connection reached its byte bound."""


class _Session:
    def __init__(self, server: HostileImap, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.login = ""
        self.mode = HONEST
        self.number = 0  # this login's connection count, from 1
        self.sent = 0
        self.fetches = 0

    async def send(self, data: bytes) -> None:
        self.sent += len(data)
        if self.sent > self.server.max_bytes:
            raise _Bounded
        self.writer.write(data)
        await self.writer.drain()

    async def line(self, data: bytes) -> None:
        await self.send(data + b"\r\n")

    async def run(self) -> None:
        await self.line(self.server.greeting)
        while True:
            raw = await self.reader.readline()
            if not raw:
                return
            match = _COMMAND.match(raw.rstrip(b"\r\n"))
            if match is None:
                await self.line(b"* BAD what?")
                continue
            tag, verb, args = match.group(1), match.group(2).upper(), match.group(3)
            handler = getattr(self, "do_" + verb.decode("ascii", "replace").lower(), None)
            if handler is None:
                await self.line(tag + b" BAD unknown command")
                continue
            if await handler(tag, args) is False:
                return

    async def do_capability(self, tag: bytes, _args: bytes) -> None:
        await self.line(b"* CAPABILITY IMAP4rev1")
        await self.line(tag + b" OK CAPABILITY done")

    async def do_login(self, tag: bytes, args: bytes) -> None:
        self.login = args.split(b" ")[0].strip(b'"').decode("utf-8", "replace")
        self.mode = self.login if self.login in MODES else HONEST
        with self.server._lock:
            self.number = self.server._connections.get(self.login, 0) + 1
            self.server._connections[self.login] = self.number
        self.server._note(self.login, "login", str(self.number))
        answer = tag + b" OK [CAPABILITY IMAP4rev1] logged in\r\n"
        if self.mode != TRICKLE:
            await self.send(answer)
            return
        for byte in answer:
            await self.send(bytes([byte]))
            await asyncio.sleep(self.server.trickle_seconds)

    async def do_logout(self, tag: bytes, _args: bytes) -> bool:
        await self.line(b"* BYE")
        await self.line(tag + b" OK LOGOUT done")
        return False

    async def do_noop(self, tag: bytes, _args: bytes) -> None:
        await self.line(tag + b" OK NOOP done")

    async def do_list(self, tag: bytes, _args: bytes) -> None:
        if self.mode == GARBAGE_ERROR:
            await self.line(tag + b" BAD " + GARBAGE)
            return
        if self.mode == GARBAGE_LIST:
            await self.line(b"* LIST " + GARBAGE)
            await self.line(b"* " + GARBAGE)
        await self.line(b'* LIST (\\HasNoChildren) "/" INBOX')
        await self.line(tag + b" OK LIST done")

    async def do_examine(self, tag: bytes, _args: bytes) -> None:
        folder = self.server.folder(self.login)
        if self.mode == NEW_UIDVALIDITY:
            with self.server._lock:
                folder.uidvalidity = 100 + self.number
        uidvalidity = 2**40 if self.mode == HUGE_UIDVALIDITY else folder.uidvalidity
        uids = folder.uids()
        uidnext = max(uids, default=0) + 1
        if self.mode == BOGUS_UIDNEXT and self.number == 1:
            uidnext = 4_000_000_000
        await self.line(f"* {len(uids)} EXISTS".encode())
        await self.line(f"* OK [UIDVALIDITY {uidvalidity}] ok".encode())
        await self.line(f"* OK [UIDNEXT {uidnext}] ok".encode())
        await self.line(tag + b" OK [READ-ONLY] EXAMINE done")

    async def do_search(self, tag: bytes, args: bytes) -> None:
        uids = self.server.folder(self.login).uids()
        words = args.upper().split()
        if words[:1] == [b"UID"]:
            uids = _in_set(words[1], uids)
        found = [str(uid).encode() for uid in uids]
        if self.mode == HUGE_UID:
            found += [str(2**40).encode(), b"9" * 5000]  # past 32 bits, past int()'s digits
        await self.line(b"* SEARCH " + b" ".join(found))
        await self.line(tag + b" OK SEARCH done")

    async def do_fetch(self, tag: bytes, args: bytes) -> None:
        folder = self.server.folder(self.login)
        wanted, _, items = args.partition(b" ")
        uids = _in_set(wanted, folder.uids())
        section = _SECTION.search(items)
        name = section.group(1) if section else b""
        whole = name == b""
        if whole:
            self.fetches += 1
        for index, uid in enumerate(uids):
            if whole and self.mode == HUGE_LITERAL and uid == self.server.huge_uid:
                await self._huge_literal(uid)
                return
            if (whole and self.mode == DROP_MID_FETCH and self.number == 1
                    and self.fetches == 3 and index == len(uids) // 2):
                self.server._note(self.login, "dropped", f"before UID {uid}")
                self.writer.transport.abort()
                raise ConnectionError("dropped on purpose")
            raw = folder.message(uid)
            data = _section(raw, name)
            await self.send(b"* %d FETCH (UID %d RFC822.SIZE %d BODY[%s] {%d}\r\n"
                            % (uid, uid, len(raw), name, len(data)) + data + b")\r\n")
        await self.line(tag + b" OK FETCH done")

    async def _huge_literal(self, uid: int) -> None:
        await self.line(b"* 1 FETCH (UID %d RFC822.SIZE 100 BODY[] {%d}" % (uid, HUGE))
        announced = time.monotonic()
        self.server._note(self.login, "announced", str(HUGE))
        try:
            gone = await asyncio.wait_for(self.reader.read(1), self.server.silence_seconds)
        except TimeoutError:
            gone = None
        except ConnectionError:
            gone = b""
        if gone == b"":
            self.server._note(self.login, "reset", f"{time.monotonic() - announced:.3f}")
            return
        trickled = 0
        try:
            while True:
                await self.send(b"x")
                trickled += 1
                await asyncio.sleep(self.server.trickle_seconds)
        except ConnectionError:
            self.server._note(self.login, "reset", f"{time.monotonic() - announced:.3f}")
            raise
        finally:
            self.server._note(self.login, "trickled", str(trickled))


def _in_set(spec: bytes, uids: list[int]) -> list[int]:
    """The UIDs of sorted `uids` in sequence-set `spec` ("*": the largest, RFC 3501 6.4.8)."""
    top = uids[-1] if uids else 0
    chosen: set[int] = set()
    for part in spec.split(b","):
        low, _, high = part.partition(b":")
        first = top if low == b"*" else int(low)
        last = first if not high else top if high == b"*" else int(high)
        first, last = min(first, last), max(first, last)
        chosen.update(uids[bisect.bisect_left(uids, first):bisect.bisect_right(uids, last)])
    return sorted(chosen)


def _section(raw: bytes, name: bytes) -> bytes:
    header, _, _ = raw.partition(b"\r\n\r\n")
    if name == b"":
        return raw
    if name.upper() == b"HEADER":
        return header + b"\r\n\r\n"
    fields = _FIELDS.search(name)
    wanted = {f.upper() for f in fields.group(1).split()} if fields else set()
    lines = [line for line in header.split(b"\r\n")
             if line.partition(b":")[0].strip().upper() in wanted]
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def assert_shown_safely(text: str | None) -> None:
    """`text` (an account's last error) is what a user may be shown of server bytes."""
    assert text is not None and 0 < len(text) <= 300
    assert text.isprintable() and "\ufffd" not in text


@contextmanager
def hostile_imap(**options: object) -> Iterator[HostileImap]:
    """A started `HostileImap` (keyword options as its constructor's), stopped on exit."""
    server = HostileImap(**options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
