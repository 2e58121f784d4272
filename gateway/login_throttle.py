"""Throttling of failed logins, per account and per client address: bounded and decaying.

Every key (an account, a client address) carries a failure score: +1 per failed login,
halving every ``half_life`` seconds, never above ``limit + CAP_OVER_LIMIT``. Below its limit a
key is free. From its limit on, password verifications for the key take turns: one at a time,
spaced ``BASE_SPACING`` apart at the limit, doubling per failure beyond it, at most
``max_delay``. A login whose turn comes within ``max_delay`` waits for it; any other is
refused after ``max_delay``, without a verification. So a guessing burst gets at most one
verification per throttled key at a time, each of its requests holds a worker thread at most
``max_delay`` (which also paces the burst), and an honest login is answered within about that
plus one verification. Logins that need no verification (the process already verified that
password) never ask the throttle at all; failed logins that needed no verification (no such
user, no password with that lookup) are answered after ``max_delay`` too once a key is
throttled.

The state lives in each process's memory, not in the database, and that is safe for what it
bounds. The CPU a burst takes and the worker threads it holds are per process by nature. The
guessing rate needs no shared counter: app passwords carry ~80 random bits, so N processes,
each admitting a few verifications per second per account, still leave an online guess
hopeless (2**80 / (N * rate) seconds); a counter in the database would turn every failed login
into a write and make the database what a guessing burst slows down. What must be exact
everywhere (revocation, a user's diary sync) is read from the database on every login.
Memory is bounded too: at most ``max_keys`` keys, the least recently failed forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

BASE_SPACING = 0.05  # seconds between verifications for a key that just reached its limit
CAP_OVER_LIMIT = 16  # failures counted beyond a key's limit (the score is bounded)


@dataclass
class _Key:
    score: float
    at: float  # when ``score`` was last brought up to date
    next_turn: float = 0.0  # earliest start of the key's next verification
    busy: int = 0  # verifications of the key admitted and not finished


class Throttle:
    """Failure scores per key and the turns they impose (see the module docstring)."""

    def __init__(self, *, account_limit: int, address_limit: int, half_life: float,
                 max_delay: float, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.account_limit, self.address_limit = account_limit, address_limit
        self.half_life, self.max_delay, self.max_keys = half_life, max_delay, max_keys
        self._clock, self._sleep = clock, sleep
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._lock = threading.Lock()

    def _limits(self, account: str, address: str) -> tuple[tuple[str, int], ...]:
        return ((f"account:{account}", self.account_limit),
                (f"address:{address}", self.address_limit))

    def _score(self, key: _Key, now: float) -> float:
        return key.score * 0.5 ** (max(0.0, now - key.at) / self.half_life)

    def spacing(self, score: float, limit: int) -> float:
        """Seconds between verifications for a key with ``score`` failures (0: free)."""
        if score < limit - 0.5:  # scores decay continuously: a key at 4.99 of 5 has 5
            return 0.0
        return min(self.max_delay, BASE_SPACING * 2 ** max(0.0, score - limit))

    def score(self, account: str, address: str) -> tuple[float, float]:
        """The current (account, address) scores."""
        with self._lock:
            now = self._clock()
            found = [self._keys.get(name) for name, _ in self._limits(account, address)]
            values = [0.0 if key is None else self._score(key, now) for key in found]
        return values[0], values[1]

    def pace(self, account: str, address: str) -> None:
        """Before refusing a login that needed no verification: a throttled key's answer
        comes after ``max_delay`` all the same (it paces a burst and tells it nothing)."""
        with self._lock:
            now = self._clock()
            throttled = any(
                key is not None and self.spacing(self._score(key, now), limit) > 0
                for key, limit in ((self._keys.get(name), limit)
                                   for name, limit in self._limits(account, address)))
        if throttled:
            self._sleep(self.max_delay)

    @contextmanager
    def turn(self, account: str, address: str) -> Iterator[bool]:
        """Yields whether a verification for this login may run (after waiting for its turn,
        at most ``max_delay``). False: refuse the login, without verifying; that answer too
        comes after ``max_delay``."""
        admitted, wait, taken = self._reserve(account, address)
        if wait > 0:
            self._sleep(wait)
        try:
            yield admitted
        finally:
            with self._lock:
                for key in taken:
                    key.busy -= 1

    def _reserve(self, account: str, address: str) -> tuple[bool, float, list[_Key]]:
        with self._lock:
            now = self._clock()
            turn = now
            throttled: list[tuple[_Key, float]] = []
            for name, limit in self._limits(account, address):
                key = self._keys.get(name)
                if key is None:
                    continue
                spacing = self.spacing(self._score(key, now), limit)
                if spacing > 0:
                    if key.busy:
                        return False, self.max_delay, []
                    turn = max(turn, key.next_turn)
                    throttled.append((key, spacing))
            if turn - now > self.max_delay:
                return False, self.max_delay, []
            for key, spacing in throttled:
                key.next_turn = turn + spacing
                key.busy += 1
            return True, turn - now, [key for key, _ in throttled]

    def failed(self, account: str, address: str) -> None:
        """Count one failed login against the account and the address."""
        with self._lock:
            now = self._clock()
            for name, limit in self._limits(account, address):
                key = self._keys.pop(name, None)
                if key is None:
                    key = _Key(0.0, now)
                key.score = min(self._score(key, now) + 1, limit + CAP_OVER_LIMIT)
                key.at = now
                self._keys[name] = key  # most recently failed last
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
