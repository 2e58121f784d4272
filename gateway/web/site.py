"""The HTTP role: Radicale's WSGI app in a thread pool on Twisted, with ``/healthz``.

HTTP/1.1 keep-alive comes from Twisted. Radicale enforces its body limit only in its own
server, so this host caps request bodies itself: a declared Content-Length over the limit is
refused before the body is read, a chunked body as soon as it grows past it (413).
Radicale's one-second sleep before every 5xx is off: it would hold a worker thread per failing
request while the database is down.
"""

from __future__ import annotations

import errno
import json
import logging
from datetime import datetime
from typing import Any

import radicale
from radicale import config as radicale_config
from sqlalchemy import select
from twisted.internet import defer, threads
from twisted.internet.error import CannotListenError
from twisted.python.threadpool import ThreadPool
from twisted.web import http, resource, server
from twisted.web.wsgi import WSGIResource

from gateway import freebusy
from gateway.config import Config
from gateway.db import Store, shared_store
from gateway.errors import Invalid
from gateway.models import User
from gateway.web import outage
from gateway.web.api import ApiApp
from gateway.web.feeds import FeedsApp
from gateway.web.freebusy import FreeBusyApp
from gateway.web.middleware import GatewayMiddleware
from gateway.web.pages import PagesApp
from gateway.web.xml_guard import XmlLimits

log = logging.getLogger(__name__)


AUTH_OPTIONS = ("parallel_verifications", "account_failures", "address_failures",
                "throttle_half_life_seconds", "throttle_max_delay_ms")


def radicale_app(store: Store, config: Config | None = None) -> radicale.Application:
    configuration = radicale_config.load()
    auth = {"type": "storage_plugin", "delay": "0"}
    if config is not None:
        auth.update({name: str(config.get("auth", name)) for name in AUTH_OPTIONS})
    configuration.update({
        "server": {"delay_on_error": "0"},
        "auth": auth,
        # Calendars are provisioned by the CRM: DELETE or PUT of a whole one is refused with
        # 403 (the rights never grant "D" or "O"), not the 500 of the storage's refusal.
        "rights": {"type": "storage_plugin", "permit_delete_collection": "False",
                   "permit_overwrite_collection": "False"},
        "storage": {"type": "storage_plugin", "database_url": store.url},
        "web": {"type": "none"},
        "logging": {"mask_passwords": "True"},
    }, "crm-gateway")
    return radicale.Application(configuration)


class CappedRequest(server.Request):
    """A request whose body may not exceed ``site.max_body_bytes``."""

    _received = 0
    _refused = False

    def _limit(self) -> int:
        site = getattr(self.channel, "site", None)
        return int(getattr(site, "max_body_bytes", 0)) or (1 << 62)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit():
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        self.content = None
        body = f"request body larger than {self._limit()} bytes\n".encode()
        transport: Any = self.channel.transport
        transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/plain\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body)
        self.channel.loseConnection()


class Health(resource.Resource):
    isLeaf = True

    def __init__(self, store: Store, pool: ThreadPool, reactor: Any):
        super().__init__()
        self.store, self.pool, self.reactor = store, pool, reactor

    def render_GET(self, request: server.Request) -> Any:
        def ping() -> None:
            with self.store.reading() as session:
                session.connection().exec_driver_sql("SELECT 1")

        def done(_: object) -> None:
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps({"status": "ok"}).encode())
            request.finish()

        def failed(failure: Any) -> None:
            log.error("health check: database unreachable: %s", failure.getErrorMessage())
            request.setResponseCode(http.SERVICE_UNAVAILABLE)
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps({"status": "database unreachable"}).encode())
            request.finish()

        threads.deferToThreadPool(self.reactor, self.pool, ping).addCallbacks(done, failed)
        return server.NOT_DONE_YET


PAGES_ROOTS = (b"account", b"admin")


class Root(resource.Resource):
    """``/healthz`` and the JSON API (``/api/v1/...``) here; the people's pages under
    ``/account/`` and ``/admin/``; the reps' calendar feeds under ``/feeds/`` and free/busy
    time under ``/freebusy/``; every other
    path goes to Radicale whole."""

    def __init__(self, dav: WSGIResource, health: Health, api: WSGIResource | None = None,
                 pages: WSGIResource | None = None, feeds: WSGIResource | None = None,
                 freebusy: WSGIResource | None = None):
        super().__init__()
        self.dav, self.health, self.api, self.pages = dav, health, api, pages
        self.feeds, self.freebusy = feeds, freebusy

    def getChild(self, path: bytes, request: server.Request) -> Any:
        if path == b"healthz" and not request.postpath:
            return self.health
        assert request.prepath is not None and request.postpath is not None
        if path == b"api" and self.api is not None and request.postpath[:1] == [b"v1"]:
            # The API app sees SCRIPT_NAME /api/v1 and routes on the rest.
            request.prepath.append(request.postpath.pop(0))
            return self.api
        # Hand the WSGI app the full path: undo the segment Twisted consumed.
        request.postpath.insert(0, request.prepath.pop())
        if path in PAGES_ROOTS and self.pages is not None:
            return self.pages
        if path == b"feeds" and self.feeds is not None:
            return self.feeds
        if path == b"freebusy" and self.freebusy is not None:
            return self.freebusy
        return self.dav

    def render(self, request: server.Request) -> Any:
        return self.dav.render(request)


def dav_app(config: Config, store: Store) -> GatewayMiddleware:
    """The CalDAV WSGI app the site serves: Radicale with the plugins, behind the middleware."""
    # The plugins use the process-wide store of this URL: watch its engines.
    plugins_store = shared_store(store.url)
    for engine in {store.engine, store.read_engine, plugins_store.engine,
                   plugins_store.read_engine}:
        outage.watch(engine)
    limits = XmlLimits(max_properties=config.get("http", "max_propfind_properties"),
                       max_hrefs=config.get("http", "max_multiget_hrefs"))
    max_days = config.get("availability", "max_days")

    def free_busy(username: str, start: datetime, end: datetime) -> str:
        with store.reading() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise Invalid(f"no user named {username!r}")
            return freebusy.vfreebusy(session, user, start, end, max_days)

    return GatewayMiddleware(radicale_app(store, config), limits, free_busy)


def build_site(config: Config, store: Store, reactor: Any) -> tuple[server.Site, ThreadPool]:
    pool = ThreadPool(minthreads=2, maxthreads=config.get("http", "threads"), name="caldav")
    dav = WSGIResource(reactor, pool, dav_app(config, store))
    api = WSGIResource(reactor, pool, ApiApp(store, config))
    pages = WSGIResource(reactor, pool, PagesApp(config, store))
    feeds = WSGIResource(reactor, pool, FeedsApp(store, config))
    freebusy = WSGIResource(reactor, pool, FreeBusyApp(store, config))
    site = server.Site(Root(dav, Health(store, pool, reactor), api, pages, feeds, freebusy),
                       timeout=120)
    site.requestFactory = CappedRequest
    site.max_body_bytes = config.get("http", "max_body_bytes")  # type: ignore[attr-defined]
    site.displayTracebacks = False
    return site, pool


def start(config: Config, store: Store) -> Any:
    """The ``http`` role: listen on ``http.listen``; returns the stop function.

    Stopping closes the port at once; the requests in hand finish before the pool ends.
    """
    from twisted.internet import reactor as installed

    reactor: Any = installed
    site, pool = build_site(config, store, reactor)
    listen = config.get("http", "listen")
    host, _, port = listen.rpartition(":")
    try:
        port_listener = reactor.listenTCP(int(port), site, interface=host.strip("[]"))
    except CannotListenError as exc:
        raise OSError(f"http.listen {listen}: {_reason(exc)}") from None
    pool.start()
    log.info("CalDAV listening on http://%s/", listen)

    @defer.inlineCallbacks
    def stop() -> Any:
        yield port_listener.stopListening()
        # The pool's threads finish their requests, which write through the reactor: so
        # wait for them off the reactor thread.
        yield threads.deferToThread(pool.stop)

    return stop


def _reason(exc: CannotListenError) -> str:
    cause = exc.socketError
    if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
        return "address already in use (is another crm-gateway serve running?)"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(cause)
