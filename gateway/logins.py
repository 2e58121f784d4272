"""CalDAV logins: which user a (login, app password) pair is, decided afresh on every request.

Every login reads the user's and the password's current state with one indexed query
(``app_passwords.login_state``), so a revoked password, or diary sync turned off, is refused on
the very next request on every process. Only argon2 verifications are remembered: keyed by
the password row's hash and the presented password, a success is a fact that never changes,
so remembering it is right on any process. A login runs at most one verification (see
``app_passwords``), at most ``parallel`` run at once in the process, and failing logins are
throttled per account and per address (``login_throttle``). ``last_used_at`` is written at
most once a minute per password.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gateway import app_passwords
from gateway.app_passwords import Candidate, LoginState
from gateway.clock import utcnow
from gateway.db import Store
from gateway.login_throttle import Throttle

log = logging.getLogger(__name__)

VERIFIED_CACHE_SIZE = 4096
# A login that cannot start its verification within this long is refused (the process is
# saturated); it is far above what the throttle lets a burst queue up.
VERIFY_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Settings:
    parallel_verifications: int = 1
    account_failures: int = 5
    address_failures: int = 20
    half_life_seconds: float = 60.0
    max_delay_seconds: float = 0.5


@dataclass(frozen=True)
class Outcome:
    """``username`` when the login is accepted; otherwise ``reason`` says why not."""

    username: str | None
    reason: str = ""


class Authenticator:
    """Checks CalDAV logins against one store; one instance per process and store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.throttle = Throttle(
            account_limit=settings.account_failures, address_limit=settings.address_failures,
            half_life=settings.half_life_seconds, max_delay=settings.max_delay_seconds)
        self._slots = threading.BoundedSemaphore(settings.parallel_verifications)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._verified_lock = threading.Lock()
        self._cache_key = secrets.token_bytes(32)  # the cache never holds a plain digest

    def authenticate(self, login: str, password: str, address: str) -> Outcome:
        if not login or not password:
            return Outcome(None, "no login or password")
        with self.store.reading() as session:
            state = app_passwords.login_state(session, login, password)
        account = f"user:{state.user_id}" if state else f"login:{login.strip().lower()}"
        if state is None:
            return self._refuse(account, address, "no such user", pace=True)
        if not state.diary_sync:
            reason = f"diary sync is off for user {state.username!r}"
            return self._refuse(account, address, reason, pace=True)
        for candidate in state.candidates:
            if self._known(candidate, password):
                return self._accept(state, candidate, password)
        if not state.candidates:
            return self._refuse(account, address, "wrong or revoked app password", pace=True)
        with self.throttle.turn(account, address) as admitted:
            if not admitted:
                return self._refuse(account, address, "throttled after repeated failed logins")
            if not self._slots.acquire(timeout=VERIFY_WAIT_SECONDS):
                return Outcome(None, "too many password verifications waiting")
            try:
                matched = next((c for c in state.candidates
                                if app_passwords.verify_hash(c.password_hash, password)), None)
            finally:
                self._slots.release()
        if matched is None:
            return self._refuse(account, address, "wrong or revoked app password")
        self._remember(matched, password)
        return self._accept(state, matched, password)

    def _refuse(self, account: str, address: str, reason: str, *, pace: bool = False
                ) -> Outcome:
        if pace:
            self.throttle.pace(account, address)
        self.throttle.failed(account, address)
        return Outcome(None, reason)

    def _digest(self, candidate: Candidate, password: str) -> bytes:
        message = f"{candidate.password_hash}\0{password}".encode()
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    def _known(self, candidate: Candidate, password: str) -> bool:
        digest = self._digest(candidate, password)
        with self._verified_lock:
            if digest in self._verified:
                self._verified.move_to_end(digest)
                return True
        return False

    def _remember(self, candidate: Candidate, password: str) -> None:
        digest = self._digest(candidate, password)
        with self._verified_lock:
            self._verified[digest] = None
            while len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)

    def _accept(self, state: LoginState, candidate: Candidate, password: str) -> Outcome:
        now = utcnow()
        if app_passwords.use_is_due(candidate, now):
            try:
                with self.store.transaction() as session:
                    app_passwords.record_use(session, candidate, password, now,
                                               state.user_id)
            except IntegrityError:
                # An older password whose lookup another live password of the user already
                # has: it keeps working without one.
                log.info("app password %d of %r keeps no lookup", candidate.id, state.username)
            except SQLAlchemyError as exc:
                log.warning("could not record the use of app password %d: %s",
                            candidate.id, exc)
        return Outcome(state.username)


_instances: dict[str, Authenticator] = {}
_instances_lock = threading.Lock()


def authenticator_for(store: Store, settings: Settings) -> Authenticator:
    """The process's Authenticator for ``store`` (its cache and throttle are shared)."""
    with _instances_lock:
        found = _instances.get(store.url)
        if found is None:
            found = _instances[store.url] = Authenticator(store, settings)
        return found
