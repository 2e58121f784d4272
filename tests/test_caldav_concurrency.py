"""Preconditions hold across processes: two ``serve`` processes, one database, real races.

Every round releases two requests at once, one through each process. The database decides:
exactly one wins; the other gets 412 (a stale If-Match or If-None-Match: *) or 409
``no-uid-conflict`` (one UID under two hrefs), never a second success, never a 5xx.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from caldav_pair import Pair, Request, running_pair, seed_events
from caldav_peer import Rep, event, new_rep
from sqlalchemy import func, select

from gateway.models import DiaryEntry

ROUNDS = 100
UID_ROUNDS = 50
_uids = itertools.count()


@pytest.fixture(scope="module")
def pair(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    yield from running_pair(module_database_url, tmp_path_factory)


@pytest.fixture
def rep(pair: Pair) -> Rep:
    fresh = new_rep(pair.a.gateway.store)
    pair.login(fresh)
    return fresh


def fresh_uid() -> str:
    return f"race-{next(_uids)}@test"


def put(body: str, href: str, **headers: str) -> Request:
    def call(session: requests.Session, base: str) -> requests.Response:
        return session.put(base + href, data=body.encode(), headers=headers, timeout=60)
    return call


def delete(href: str, **headers: str) -> Request:
    def call(session: requests.Session, base: str) -> requests.Response:
        return session.delete(base + href, headers=headers, timeout=60)
    return call


def originals(pair: Pair, rep: Rep, name: str, rounds: int) -> list[tuple[str, str, str]]:
    """One stored event per round: (uid, path, ETag)."""
    made = [(fresh_uid(), f"{name}-{n}.ics") for n in range(rounds)]
    etags = seed_events(pair.a.gateway.store, rep, "meeting",
                        [(href, event(uid, "Original")) for uid, href in made])
    return [(uid, f"{rep.username}/meeting/{href}", etags[n])
            for n, (uid, href) in enumerate(made)]


def shown(pair: Pair, href: str) -> requests.Response:
    """What a third look (through process B) finds at ``href`` after the race."""
    return pair.b.session.get(pair.b.gateway.url + href, timeout=60)


def live_entries(pair: Pair, uid: str) -> int:
    with pair.a.gateway.store.reading() as session:
        return session.scalar(select(func.count()).select_from(DiaryEntry).where(
            DiaryEntry.uid == uid, DiaryEntry.deleted_at.is_(None))) or 0


def statuses(one: requests.Response, other: requests.Response) -> tuple[int, int]:
    low, high = sorted((one.status_code, other.status_code))
    return low, high


def report(name: str, outcomes: Counter[tuple[int, int]]) -> None:
    lost = sum(n for (x, y), n in outcomes.items() if x < 300 and y < 300)
    errors = sum(n for (x, y), n in outcomes.items() if x >= 500 or y >= 500)
    print(f"\n{name}: {sum(outcomes.values())} rounds, {lost} lost, {errors} with a 5xx, "
          f"statuses {dict(outcomes)}")


def test_concurrent_if_match_puts_lose_no_update(pair: Pair, rep: Rep) -> None:
    outcomes: Counter[tuple[int, int]] = Counter()
    for uid, href, etag in originals(pair, rep, "edit", ROUNDS):
        on_a = put(event(uid, "Edit A"), href, **{"If-Match": etag})
        on_b = put(event(uid, "Edit B"), href, **{"If-Match": etag})
        got_a, got_b = pair.race(on_a, on_b)
        outcomes[statuses(got_a, got_b)] += 1
        if {got_a.status_code, got_b.status_code} == {204, 412}:
            winner, answer = ("Edit A", got_a) if got_a.status_code == 204 else ("Edit B", got_b)
            now = shown(pair, href)
            assert f"SUMMARY:{winner}" in now.text and now.headers["ETag"] == answer.headers["ETag"]
    report("If-Match PUT vs If-Match PUT", outcomes)
    assert outcomes == {(204, 412): ROUNDS}


def test_concurrent_creates_with_if_none_match_make_one_event(pair: Pair, rep: Rep) -> None:
    outcomes: Counter[tuple[int, int]] = Counter()
    odd: list[str] = []
    for n in range(ROUNDS):
        uid, href = fresh_uid(), f"{rep.username}/meeting/new-{n}.ics"
        on_a = put(event(uid, "Made by A"), href, **{"If-None-Match": "*"})
        on_b = put(event(uid, "Made by B"), href, **{"If-None-Match": "*"})
        got_a, got_b = pair.race(on_a, on_b)
        outcomes[statuses(got_a, got_b)] += 1
        odd.extend(got.text for got in (got_a, got_b) if got.status_code not in (201, 412))
        if {got_a.status_code, got_b.status_code} == {201, 412}:
            winner = "Made by A" if got_a.status_code == 201 else "Made by B"
            assert f"SUMMARY:{winner}" in shown(pair, href).text
            assert live_entries(pair, uid) == 1
    report("If-None-Match PUT vs If-None-Match PUT", outcomes)
    assert outcomes == {(201, 412): ROUNDS}, odd


def test_an_edit_and_a_delete_with_one_if_match_do_not_both_win(pair: Pair, rep: Rep) -> None:
    outcomes: Counter[tuple[int, int]] = Counter()
    for uid, href, etag in originals(pair, rep, "gone", ROUNDS):
        edit = put(event(uid, "Edited"), href, **{"If-Match": etag})
        got_put, got_delete = pair.race(edit, delete(href, **{"If-Match": etag}))
        pair_of = (got_put.status_code, got_delete.status_code)
        outcomes[pair_of] += 1
        if pair_of == (204, 412):
            assert "SUMMARY:Edited" in shown(pair, href).text and live_entries(pair, uid) == 1
        elif pair_of in ((412, 200), (412, 204)):
            assert shown(pair, href).status_code == 404 and live_entries(pair, uid) == 0
    report("If-Match PUT vs If-Match DELETE", outcomes)
    assert set(outcomes) <= {(204, 412), (412, 200), (412, 204)}, outcomes


def test_concurrent_deletes_with_one_if_match_delete_once(pair: Pair, rep: Rep) -> None:
    outcomes: Counter[tuple[int, int]] = Counter()
    for uid, href, etag in originals(pair, rep, "twice", UID_ROUNDS):
        got_a, got_b = pair.race(delete(href, **{"If-Match": etag}),
                                 delete(href, **{"If-Match": etag}))
        outcomes[statuses(got_a, got_b)] += 1
        assert live_entries(pair, uid) == 0
    report("If-Match DELETE vs If-Match DELETE", outcomes)
    # The loser finds the event gone: 404 when it looks after the winner's commit (RFC 9110
    # ignores preconditions then), 412 when the database refuses its write.
    assert set(outcomes) <= {(200, 404), (200, 412), (204, 404), (204, 412)}, outcomes


def test_one_uid_under_two_hrefs_is_one_201_and_one_409(pair: Pair, rep: Rep) -> None:
    outcomes: Counter[tuple[int, int]] = Counter()
    for n in range(UID_ROUNDS):
        uid = fresh_uid()
        first, second = f"{rep.username}/meeting/one-{n}.ics", f"{rep.username}/meeting/two-{n}.ics"
        got_a, got_b = pair.race(put(event(uid), first), put(event(uid), second))
        outcomes[statuses(got_a, got_b)] += 1
        if {got_a.status_code, got_b.status_code} == {201, 409}:
            refused, lost_href, kept_href = (
                (got_b, second, first) if got_a.status_code == 201 else (got_a, first, second))
            assert "no-uid-conflict" in refused.text
            assert shown(pair, lost_href).status_code == 404
            assert shown(pair, kept_href).status_code == 200
            assert live_entries(pair, uid) == 1
    report("one UID under two hrefs", outcomes)
    assert outcomes == {(201, 409): UID_ROUNDS}


def test_a_move_racing_the_delete_of_its_source_keeps_the_entry(pair: Pair, rep: Rep) -> None:
    """DAVx5 syncing both calendars at once: the PUT into the target (process A) and the
    DELETE from the source (process B) in either order, or together, keep the CRM entry."""
    outcomes: Counter[tuple[int, int]] = Counter()
    for uid, href, etag in originals(pair, rep, "moving", UID_ROUNDS):
        with pair.a.gateway.store.reading() as session:
            [entry_id] = session.scalars(select(DiaryEntry.id).where(DiaryEntry.uid == uid))
        target = href.replace("/meeting/", "/call/")
        got_put, got_delete = pair.race(put(event(uid, "Original"), target),
                                        delete(href, **{"If-Match": etag}))
        outcomes[(got_put.status_code, got_delete.status_code)] += 1
        with pair.a.gateway.store.reading() as session:
            entry = session.get_one(DiaryEntry, entry_id)
            assert (entry.deleted_at, entry.type.name) == (None, "Call"), uid
        assert live_entries(pair, uid) == 1
        assert shown(pair, href).status_code == 404 and shown(pair, target).status_code == 200
    # Both may succeed here (the DELETE first, then the PUT brings the entry back).
    print(f"\nmove PUT vs DELETE of its source: statuses {dict(outcomes)}")
    assert set(outcomes) <= {(201, 200), (201, 404), (201, 412)}, outcomes
