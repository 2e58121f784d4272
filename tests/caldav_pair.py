"""Two ``crm-gateway serve --only http`` processes on one database, and a race between them.

The processes share the database and the secret key but nothing else (own data folders,
ports and pools), as two machines behind a load balancer would. ``race`` fires two requests,
one at each process, released together by a barrier; each side keeps one keep-alive
``requests.Session`` so a round costs two requests, not two connections.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from caldav_peer import Gateway, Rep, start_gateway, stop_gateway
from peers import TEST_SECRET_KEY

from gateway import calendars
from gateway.client_writes import put_event
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.models import DiaryType
from gateway.users import get_user

SHARED_KEY = ("CRM_GATEWAY_SECURITY_SECRET_KEY", TEST_SECRET_KEY)

Request = Callable[[requests.Session, str], requests.Response]


@dataclass
class Side:
    gateway: Gateway
    session: requests.Session = field(default_factory=requests.Session)


@dataclass
class Pair:
    a: Side
    b: Side
    pool: ThreadPoolExecutor

    def race(self, on_a: Request, on_b: Request) -> tuple[requests.Response, requests.Response]:
        """``on_a`` through process A and ``on_b`` through process B at the same moment."""
        barrier = threading.Barrier(2, timeout=30)

        def run(side: Side, call: Request) -> requests.Response:
            barrier.wait()
            return call(side.session, side.gateway.url)

        first = self.pool.submit(run, self.a, on_a)
        second = self.pool.submit(run, self.b, on_b)
        return first.result(timeout=60), second.result(timeout=60)

    def login(self, rep: Rep) -> None:
        for side in (self.a, self.b):
            side.session.auth = rep.auth


def seed_events(store: Store, rep: Rep, slug: str, events: list[tuple[str, str]]) -> list[str]:
    """Store ``(href, text)`` events in the rep's calendar in one transaction (set-up for
    rounds that race over them); returns their ETags."""
    with store.transaction() as session:
        user = get_user(session, rep.username)
        view = calendars.user_calendar(session, user, slug)
        assert view is not None
        etags = []
        for href, text in events:
            etags.append(put_event(session, user, view, href, text).item.etag)
            view = calendars.user_calendar(session, user, slug)  # its row exists now
            assert view is not None
        return etags


def seed_types(gateway: Gateway) -> None:
    with gateway.store.transaction() as session:
        for name, color in (("Meeting", "#3A87AD"), ("Call", "#4CAF50")):
            if session.query(DiaryType).filter_by(name=name).first() is None:
                create_type(session, name, color=color, syncable=True)


def running_pair(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Start both processes (for a module fixture: ``yield from running_pair(...)``)."""
    first = start_gateway(database_url, tmp_path_factory.mktemp("gw-a"), SHARED_KEY)
    try:
        second = start_gateway(database_url, tmp_path_factory.mktemp("gw-b"),
                               SHARED_KEY)
    except BaseException:
        stop_gateway(first)
        raise
    seed_types(first)
    running = Pair(Side(first), Side(second), ThreadPoolExecutor(max_workers=2))
    yield running
    running.pool.shutdown()
    for side in (running.a, running.b):
        side.session.close()
        stop_gateway(side.gateway)
