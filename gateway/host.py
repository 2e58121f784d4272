"""The process host: ``crm-gateway serve`` runs every role on Twisted's asyncio reactor.

A role is a function ``start(config, store) -> stop`` called once the reactor runs; ``stop``
returns ``None`` or an awaitable/Deferred that finishes the role's shutdown. Roles run in one
process by default and each can run alone (``serve --only ROLE``, one of ``ROLES``), so an
installation that outgrows one machine runs several copies of each on one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from gateway.config import Config
from gateway.db import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_SECONDS = 15  # longest graceful shutdown before the process ends anyway

Stop = Callable[[], Awaitable[None] | Any | None]
Start = Callable[[Config, Store], Stop]

# Role name -> "module:function" of its start function, imported only when it runs.
ROLES: dict[str, str] = {
    "http": "gateway.web.site:start",
    "imap": "bcc_ingest.imap.service:start",
    "linked": "linked.service:start",
    "outbound": "delivery.outbound:start",
    "smtp": "bcc_ingest.smtp.listener:start",
    "webhooks": "delivery.webhooks:start",
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
    """Run ``roles`` until SIGINT/SIGTERM; returns the process exit code.

    A role that cannot start stops those already started and the process exits 2 after one
    line on stderr. A signal stops every role at once, each finishing what it has in hand;
    whatever is still running after ``STOP_SECONDS`` is abandoned and the process exits 1.
    A second signal during shutdown ends the process at once.
    """
    reactor = install_reactor()
    from twisted.internet import defer

    stops: list[Stop] = []
    failed: list[BaseException] = []
    abandoned: list[bool] = []
    stopping: list[bool] = []

    def start_all() -> None:
        try:
            if "http" in roles:
                _provide_mail_probe(reactor, config, store)
                _provide_linked()
            for name in roles:
                stops.append(load_role(name)(config, store))
                log.info("role %s started", name)
        except Exception as exc:  # a role that cannot start stops the whole process
            failed.append(exc)
            shut_down()

    def stop_one(stop: Stop) -> defer.Deferred[Any]:
        try:
            result = stop()
        except Exception as exc:
            return defer.fail(exc)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            return defer.Deferred.fromFuture(asyncio.ensure_future(result))
        if isinstance(result, defer.Deferred):
            return result
        return defer.succeed(None)

    def stop_all() -> defer.Deferred[Any]:
        if not stops:
            return defer.succeed(None)
        log.info("stopping")
        done = defer.DeferredList([stop_one(stop) for stop in stops], consumeErrors=True)
        done.addCallback(_log_stop_failures)

        def timed_out(failure: Any) -> None:
            failure.trap(defer.TimeoutError)
            log.warning("roles still busy after %d s: stopping anyway", STOP_SECONDS)
            abandoned.append(True)

        done.addTimeout(STOP_SECONDS, reactor).addErrback(timed_out)
        return done

    def shut_down() -> None:
        if not reactor.running:
            return
        if stopping:  # a second signal: the operator wants out now
            _exit_now(1)
        stopping.append(True)
        reactor.stop()

    reactor.callWhenRunning(start_all)
    reactor.addSystemEventTrigger("before", "shutdown", stop_all)
    previous = {signum: signal.signal(signum, lambda *_: reactor.callFromThread(shut_down))
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failed:
        print(f"crm-gateway: cannot start: {failed[0]}", file=sys.stderr)
        _exit_if_stuck(2)
        return 2
    if abandoned:
        _exit_now(1)
    log.info("stopped")
    _exit_if_stuck(0)
    return 0


def _provide_mail_probe(reactor: Any, config: Config, store: Store) -> None:
    """Let the HTTP role's API and pages test and poll mailboxes: the IMAP edge's
    coroutines, run on this reactor from the request's worker thread."""
    from twisted.internet import defer, threads

    from bcc_ingest.imap import poll_now, test_account
    from gateway import mail_probe

    def on_reactor(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        return threads.blockingCallFromThread(
            reactor, lambda: defer.Deferred.fromCoroutine(work()))

    def probe(account_id: int) -> Any:
        return on_reactor(lambda: test_account(reactor, config, store, account_id))

    def poll(username: str) -> Any:
        return on_reactor(lambda: poll_now(reactor, config, store, [username]))

    mail_probe.provide(probe, poll)


def _provide_linked() -> None:
    """Let the API and the pages link calendar accounts: the ``linked`` edge's operations
    (blocking HTTP, run on the request's worker thread)."""
    from gateway import linked_ops
    from linked import REMOTE

    linked_ops.provide(REMOTE)


def _log_stop_failures(results: list[tuple[bool, Any]]) -> None:
    for ok, outcome in results:
        if not ok:
            log.error("a role did not stop cleanly: %s", outcome.getErrorMessage())


def _exit_if_stuck(code: int) -> None:
    """Threads that outlived their role would keep the interpreter from exiting: end now."""
    others = [t for t in threading.enumerate()
              if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if others:
        log.warning("threads still running after shutdown: %s",
                    ", ".join(t.name for t in others))
        _exit_now(code)


def _exit_now(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
