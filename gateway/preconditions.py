"""How a write from a calendar client decides races: in the database, not in a process.

A client's If-Match / If-None-Match is checked against what the write's own transaction
reads, and the write itself is a compare-and-set (the entry's revision is its version, see
``DiaryEntry``) or an insert under a UNIQUE constraint. Of two concurrent writers, possibly in
two processes, the second then fails in the database; ``retrying`` runs it again, and the
second run reads what the first committed and answers as if the requests had come one after
the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from gateway.errors import Conflict
from gateway.publication import HrefTaken

log = logging.getLogger(__name__)
# PostgreSQL's deadlock and serialisation failures: the transaction may simply run again.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
T = TypeVar("T")


class PreconditionFailed(Conflict):
    """The client's If-Match / If-None-Match does not hold for what is stored: a 412."""


@dataclass(frozen=True)
class Precondition:
    """What the client asked of the resource's current state (RFC 9110 section 13)."""

    if_match: str | None = None  # an ETag or "*"
    if_none_match: str | None = None  # "*" or an ETag list

    def check(self, etag: str | None) -> None:
        """Raise PreconditionFailed unless the resource's current ``etag`` (None: there is
        none) satisfies the request."""
        if self.if_match is not None:
            if etag is None:
                raise PreconditionFailed("there is no event at this name (any more): If-Match")
            if self.if_match.strip() != "*" and etag not in _etags(self.if_match):
                raise PreconditionFailed(
                    "the event changed since the client read it (If-Match): fetch it again")
        if self.if_none_match is not None and etag is not None and (
                self.if_none_match.strip() == "*" or etag in _etags(self.if_none_match)):
            raise PreconditionFailed("an event already exists at this name (If-None-Match)")


def _etags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",")}


NO_PRECONDITION = Precondition()


def retrying(write: Callable[[], T], attempts: int = 3) -> T:
    """Run ``write`` (one whole transaction) again when it lost a race to a concurrent writer.

    A lost race is a compare-and-set that matched no row (StaleDataError), a UNIQUE
    constraint, a resource name taken meanwhile, or a deadlock. The next run answers 412, 409,
    or writes on top of the winner's change; losing ``attempts`` times in a row is a Conflict.
    """
    lost: Exception | None = None
    for _ in range(attempts):
        try:
            return write()
        except (StaleDataError, IntegrityError, HrefTaken) as exc:
            lost = exc
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in _RETRY_SQLSTATES:
                raise
            lost = exc
    log.warning("a write lost %d races in a row; the last: %s", attempts, lost)
    raise Conflict("the event was being changed by other requests at the same moment; "
                   "try again")
