"""Logins in the core: one argon2 verification at most, state read on every login, and the
throttle's bounds (properties over arbitrary failure histories, on a deterministic clock)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import app_passwords
from gateway.db import Store
from gateway.login_throttle import CAP_OVER_LIMIT, Throttle
from gateway.logins import Authenticator, Settings
from gateway.users import UserChanges, create_user, get_user, update_user


class CountingHasher(PasswordHasher):
    """The real argon2 hasher, counting its verifications."""

    verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        CountingHasher.verifications += 1
        return super().verify(hash, password)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[CountingHasher]]:
    monkeypatch.setattr(app_passwords, "_hasher", CountingHasher())
    CountingHasher.verifications = 0
    yield CountingHasher


def test_a_login_costs_at_most_one_verification_whatever_the_number_of_passwords(
    store: Store, counting: type[CountingHasher],
) -> None:
    with store.transaction() as session:
        user = create_user(session, "alice", "alice@example.com")
        update_user(session, user, UserChanges(diary_sync=True))
        issued = [app_passwords.issue(session, user, f"device {n}") for n in range(20)]
    authenticator = Authenticator(store, Settings())
    last = issued[-1].password
    wrong_same_lookup = last[:5] + ("a" if last[5] != "a" else "b") + last[6:]
    counting.verifications = 0
    assert authenticator.authenticate("alice", wrong_same_lookup, "192.0.2.1").username is None
    assert counting.verifications == 1
    assert authenticator.authenticate("alice", "zzzz-zzzz-zzzz-zzzz", "192.0.2.1"
                                      ).username is None
    assert authenticator.authenticate("alice", "not even the shape", "192.0.2.1"
                                      ).username is None
    assert counting.verifications == 1  # no password has that lookup: nothing to verify
    assert authenticator.authenticate("ALICE@example.com", last, "192.0.2.1"
                                      ).username == "alice"
    assert counting.verifications == 2
    # Verified once, remembered: later requests only read the password's state.
    assert authenticator.authenticate("alice", last, "192.0.2.1").username == "alice"
    assert counting.verifications == 2
    with store.transaction() as session:
        app_passwords.revoke(session, get_user(session, "alice"), issued[-1].id)
    refused = authenticator.authenticate("alice", last, "192.0.2.1")
    assert refused.username is None and refused.reason == "wrong or revoked app password"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def throttle(clock: Clock) -> Throttle:
    return Throttle(account_limit=5, address_limit=20, half_life=60.0, max_delay=0.5,
                    clock=clock, sleep=clock.sleep)


events = st.lists(st.tuples(
    st.sampled_from(["fail", "login", "refuse", "wait"]),
    st.sampled_from(["alice", "bob"]), st.sampled_from(["192.0.2.1", "198.51.100.7"]),
    st.floats(min_value=0, max_value=120),
), max_size=200)


@settings(max_examples=200, deadline=None)
@given(events)
def test_the_throttle_is_bounded_whatever_the_history(history: list[tuple[str, str, str, float]]
                                                      ) -> None:
    clock = Clock()
    limits = throttle(clock)
    for kind, account, address, seconds in history:
        if kind == "fail":
            limits.failed(account, address)
        elif kind == "wait":
            clock.now += seconds
        elif kind == "refuse":
            before = len(clock.slept)
            limits.pace(account, address)
            assert all(wait <= 0.5 + 1e-9 for wait in clock.slept[before:])
        else:
            before = len(clock.slept)
            with limits.turn(account, address):
                pass
            # Nobody waits longer than the bound, admitted or refused.
            assert all(wait <= 0.5 + 1e-9 for wait in clock.slept[before:])
        for name in ("alice", "bob"):
            account_score, address_score = limits.score(name, address)
            assert account_score <= 5 + CAP_OVER_LIMIT
            assert address_score <= 20 + CAP_OVER_LIMIT


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=200))
def test_failures_decay_and_a_key_is_free_again(failures: int) -> None:
    clock = Clock()
    limits = throttle(clock)
    for _ in range(failures):
        limits.failed("alice", "192.0.2.1")
    # Half-lives enough to bring the capped score below the account limit.
    clock.now += 60.0 * 3
    with limits.turn("alice", "192.0.2.1") as admitted:
        assert admitted
    assert clock.slept == []


def test_a_burst_gets_one_verification_at_a_time_and_an_honest_turn_within_the_bound() -> None:
    clock = Clock()
    limits = throttle(clock)
    for _ in range(32):
        limits.failed("alice", "192.0.2.1")
    with limits.turn("alice", "192.0.2.1") as first:
        assert first
        with limits.turn("alice", "192.0.2.1") as second:
            assert not second  # one verification of a throttled key at a time
    clock.slept.clear()
    with limits.turn("alice", "192.0.2.1") as honest:
        assert honest
    assert sum(clock.slept) <= 0.5
    # Failures that need no verification are answered after the bound, too.
    clock.slept.clear()
    limits.pace("alice", "192.0.2.1")
    assert clock.slept == [0.5]
    # Another account from another address is not affected at all.
    clock.slept.clear()
    with limits.turn("bob", "198.51.100.7") as other:
        assert other
    limits.pace("bob", "198.51.100.7")
    assert clock.slept == []
