"""What one IMAP connection may cost the poller: time per answer, bytes per literal and answer.

A server outside the gateway's control can trickle an answer forever or announce a literal of
any size. `Deadline` bounds the whole of each answer in time, and `AnswerBudget` refuses a
literal over the message limit, or an answer over its budget, from its announcement alone,
before a byte of it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bcc_ingest.imap.wire import ImapError, fetch_uid


class CommandTimeout(ImapError):
    """The server did not answer within the command timeout or deadline."""


class AnswerTooLarge(ImapError):
    """An answer announced or sent more than the limits allow; the connection was reset.

    `uid`: the message whose literal was refused, when the server named it first.
    `lines`: the untagged lines complete before the refusal (earlier messages of a FETCH).
    """

    def __init__(self, text: str, uid: int | None, lines: Sequence[bytes]) -> None:
        super().__init__(text)
        self.uid = uid
        self.lines = list(lines)


@dataclass(frozen=True)
class AnswerLimits:
    """What one connection may make the client hold: a literal, and one command's answer."""

    deadline: float = 600.0  # seconds for a whole answer, however steadily it trickles
    max_literal: int = 25 * 1024 * 1024
    max_answer: int = 82 * 1024 * 1024


def announced_literal(line: bytes) -> int:
    """The size of the literal `line` announces, read exactly as Twisted reads it; else 0."""
    start = line.rfind(b"{")
    if start == -1 or not line.endswith(b"}"):
        return 0
    size = line[start + 1:-1]
    if len(size) > 20:
        return 2**64  # over any limit (and past what int() reads quickly)
    try:
        return int(size)
    except ValueError:
        return 0  # Twisted refuses the line itself


class AnswerBudget:
    """The bytes of the answer being read, counted against `limits`."""

    def __init__(self, limits: AnswerLimits) -> None:
        self.limits = limits
        self.used = 0

    def start(self) -> None:
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size

    def refuse(
        self, line: bytes, earlier: Sequence[bytes] | None, what: str
    ) -> tuple[str, int | None] | None:
        """Count `line` (after the `earlier` parts of the same response); None, or why it is
        refused and the UID it belongs to. `what` names the command answered."""
        self.used += len(line) + 2
        octets = announced_literal(line)
        limits = self.limits
        if 0 <= octets <= limits.max_literal and self.used + octets <= limits.max_answer:
            return None
        uid = self.uid_of(line, earlier)
        if octets < 0 or octets > limits.max_literal:
            over = f"a literal of {octets} bytes (the limit is {limits.max_literal})"
        else:
            over = (f"an answer of more than {self.used + octets} bytes "
                    f"(the limit is {limits.max_answer})")
        named = f"UID {uid}" if uid is not None else "a message"
        return f"the server announced {over} for {named} in the answer to {what}", uid

    @staticmethod
    def uid_of(line: bytes, earlier: Sequence[bytes] | None) -> int | None:
        """The UID a FETCH response names before the literal `line` announces."""
        if earlier is None:
            return fetch_uid(line[2:])  # the first part of a response starts with "* "
        return fetch_uid(b"".join(earlier) + line)


class Deadline:
    """At most one pending deadline on `clock`; `expired(seconds)` runs when it passes."""

    def __init__(self, clock: Any, expired: Callable[[float], None]) -> None:
        self._clock = clock
        self._expired = expired
        self._call: Any = None

    def arm(self, seconds: float) -> None:
        self.disarm()
        self._call = self._clock.callLater(seconds, self._fire, seconds)

    def disarm(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _fire(self, seconds: float) -> None:
        self._call = None
        self._expired(seconds)
