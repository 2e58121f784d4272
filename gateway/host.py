"""The process host: ``crm-gateway serve`` runs every role on Twisted's asyncio reactor.

A role is a function ``start(config, store) -> stop`` called once the reactor runs; ``stop``
returns ``None`` or an awaitable/Deferred that finishes the role's shutdown. Roles run in one
process by default and each can run alone (``serve --only http|smtp|imap``), so an
installation that outgrows one machine runs several copies of each on one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from gateway.config import Config
from gateway.db import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

Stop = Callable[[], Awaitable[None] | Any | None]
Start = Callable[[Config, Store], Stop]

# Role name -> "module:function" of its start function, imported only when it runs.
ROLES: dict[str, str] = {
    "http": "gateway.web.site:start",
    "imap": "bcc_ingest.imap.service:start",
    "smtp": "bcc_ingest.smtp.listener:start",
}


def install_reactor() -> Any:
    """Twisted's asyncio reactor, installed once, before anything imports the default."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        return reactor
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor


class HostError(Exception):
    """A one-off command could not run on this process's reactor; the message says why."""


def run_once(work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run ``work(reactor)`` to completion on this process's (single-use) reactor."""
    reactor = install_reactor()
    if reactor.running:
        raise HostError("this command needs its own event loop; run it in a separate process")
    from twisted.internet import defer
    from twisted.python.failure import Failure

    outcome: list[Any] = []

    def begin() -> None:
        d = defer.Deferred.fromCoroutine(work(reactor))
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(begin)
    reactor.run(installSignalHandlers=False)
    if not outcome:
        raise HostError("interrupted")
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    result: T = outcome[0]
    return result


def load_role(name: str) -> Start:
    module_name, _, function = ROLES[name].partition(":")
    start: Start = getattr(importlib.import_module(module_name), function)
    return start


def run(config: Config, store: Store, roles: list[str]) -> int:
    """Run ``roles`` until SIGINT/SIGTERM; returns the process exit code."""
    reactor = install_reactor()
    from twisted.internet import defer

    stops: list[Stop] = []
    failed: list[BaseException] = []

    def start_all() -> None:
        try:
            for name in roles:
                stops.append(load_role(name)(config, store))
                log.info("role %s started", name)
        except Exception as exc:  # a role that cannot start stops the whole process
            log.error("cannot start: %s", exc)
            failed.append(exc)
            shut_down()

    @defer.inlineCallbacks
    def stop_all() -> Any:
        for stop in reversed(stops):
            result = stop()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                yield defer.Deferred.fromFuture(asyncio.ensure_future(result))
            elif isinstance(result, defer.Deferred):
                yield result

    def shut_down() -> None:
        # A second signal (or one during shutdown) must not stop the reactor twice.
        if reactor.running and not stopping:
            stopping.append(True)
            reactor.stop()

    stopping: list[bool] = []
    reactor.callWhenRunning(start_all)
    reactor.addSystemEventTrigger("before", "shutdown", stop_all)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: reactor.callFromThread(shut_down))
    reactor.run(installSignalHandlers=False)
    if failed:
        print(f"crm-gateway: cannot start: {failed[0]}", file=sys.stderr)
        return 1
    return 0
