"""What an operator checks first: the database answers, and how far behind each background
job is (inbound mail, the poller, webhook deliveries, outbound mail, linked calendars). One
read, a few aggregate queries over indexed status columns (O(what is waiting), never O(the
tables)); the API's ``/health`` and the console's health panel show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gateway import inbound_queue
from gateway.clock import seconds_since
from gateway.mail_accounts import PollerFacts, poller_facts
from gateway.models import LinkedAccount, OutboundMail, WebhookDelivery
from gateway.webhooks import FAILED, PENDING


@dataclass(frozen=True)
class LinkFacts:
    active: int  # links being synced (not paused)
    failing: int  # of those, failed their last pass
    lag_seconds: float | None  # since the stalest link's last success (or creation)


@dataclass(frozen=True)
class Health:
    queued: int  # inbound mail waiting to be logged
    failed: int  # inbound mail parked with a reason
    poller: PollerFacts
    webhooks_pending: int
    webhooks_failed: int
    outbound_pending: int  # mail waiting for the smarthost
    outbound_failed: int  # mail the smarthost refused, or that ran out of retries
    links: LinkFacts

    @property
    def warnings(self) -> list[str]:
        """What deserves a look, in words; empty when all is well."""
        found = []
        if self.failed:
            found.append(f"inbound mail: {self.failed} failed (retry it in the console)")
        if self.poller.failing:
            found.append(f"mailboxes: {self.poller.failing} failed their last poll")
        if self.webhooks_failed:
            found.append(f"webhook deliveries: {self.webhooks_failed} failed (replay them)")
        if self.outbound_failed:
            found.append(f"outbound mail: {self.outbound_failed} failed ('crm-gateway "
                         "outbound list --status failed')")
        if self.links.failing:
            found.append(f"linked calendar accounts: {self.links.failing} failed their last "
                         "sync")
        return found


def link_facts(session: Session, now: datetime) -> LinkFacts:
    since = func.coalesce(LinkedAccount.last_success_at, LinkedAccount.created_at)
    count, failing, oldest = session.execute(
        select(func.count(), func.count().filter(LinkedAccount.failures > 0), func.min(since))
        .where(LinkedAccount.status == "active")).one()
    return LinkFacts(int(count), int(failing or 0), seconds_since(now, oldest))


def _waiting(session: Session, status: Any) -> dict[str, int]:
    """Rows pending and failed by ``status`` (an indexed column): one grouped count."""
    return dict(session.execute(
        select(status, func.count()).where(status.in_((PENDING, FAILED))).group_by(status)
    ).tuples().all())


def health(session: Session, now: datetime) -> Health:
    """Raises the database's error when it does not answer."""
    session.execute(text("SELECT 1"))
    depth = inbound_queue.queue_depth(session)
    webhooks = _waiting(session, WebhookDelivery.status)
    mail = _waiting(session, OutboundMail.status)
    return Health(queued=depth[inbound_queue.QUEUED], failed=depth[inbound_queue.FAILED],
                  poller=poller_facts(session, now),
                  webhooks_pending=int(webhooks.get(PENDING, 0)),
                  webhooks_failed=int(webhooks.get(FAILED, 0)),
                  outbound_pending=int(mail.get(PENDING, 0)),
                  outbound_failed=int(mail.get(FAILED, 0)),
                  links=link_facts(session, now))
