"""Radicale collections that are projections of the CRM diary.

Each object is a snapshot taken in ``discover``: self-contained and safe to use from several
threads after the storage lock is released (docs/RADICALE.md). Reads go to
:mod:`gateway.calendars`, writes to :mod:`gateway.client_writes`.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, overload

import radicale.item as radicale_item
from radicale import storage
from radicale.app.report import test_filter
from radicale.item import filter as radicale_filter

from gateway import calendars, client_writes, preconditions
from gateway.calendars import CalendarView, ItemView
from gateway.db import Store
from gateway.errors import DomainError
from gateway.ical import rebase
from gateway.users import get_user
from storage_plugin import answers, context

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LINE_END = re.compile(r"\r\n|\r|\n")

log = logging.getLogger(__name__)


def http_date(moment: datetime | None) -> str:
    return format_datetime((moment or EPOCH).astimezone(UTC), usegmt=True)


def _timestamp(moment: datetime | None, default: int) -> int:
    return default if moment is None else int(moment.timestamp())


def make_item(collection: CalendarCollection, view: ItemView,
              text: str | None = None) -> radicale_item.Item:
    """A fully filled Item, so the app never parses it with vobject; ``text`` stands in for
    the stored object where Radicale only expands it (:mod:`gateway.ical.rebase`)."""
    return radicale_item.Item(
        collection_path=collection.path, collection=collection, href=view.href,
        text=view.ical if text is None else text, etag=view.etag, uid=view.uid, name="VCALENDAR",
        component_name=collection.view.component,
        time_range=(_timestamp(view.start, radicale_filter.TIMESTAMP_MIN),
                    _timestamp(view.end, radicale_filter.TIMESTAMP_MAX)),
        last_modified=http_date(view.updated_at),
    )


class PlainCollection(storage.BaseCollection):
    """The root ("") or a user's principal: no items, no calendar properties."""

    def __init__(self, path: str, meta: Mapping[str, str] | None = None):
        self._path = path
        self._meta = dict(meta or {})

    @property
    def path(self) -> str:
        return self._path

    @property
    def etag(self) -> str:
        return '"principal"'

    @property
    def last_modified(self) -> str:
        return http_date(None)

    def get_multi(self, hrefs: Iterable[str]) -> Iterator[tuple[str, radicale_item.Item | None]]:
        return ((href, None) for href in hrefs)

    def get_all(self) -> Iterator[radicale_item.Item]:
        return iter(())

    def has_uid(self, uid: str) -> bool:
        return False

    @overload
    def get_meta(self, key: None = None) -> Mapping[str, str]: ...

    @overload
    def get_meta(self, key: str) -> str | None: ...

    def get_meta(self, key: str | None = None) -> Mapping[str, str] | str | None:
        return dict(self._meta) if key is None else self._meta.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        raise ValueError("principal properties are managed by the CRM")

    def upload(self, href: str, item: radicale_item.Item) -> Any:
        raise ValueError("events belong in a calendar")

    def delete(self, href: str | None = None) -> None:
        raise ValueError("principals are managed by the CRM")


class CalendarCollection(storage.BaseCollection):
    """One calendar of one user: a diary type's, or the invitations calendar."""

    def __init__(self, store: Store, username: str, view: CalendarView):
        self._store = store
        self.username = username
        self.view = view
        self._path = f"{username}/{view.slug}"

    @property
    def path(self) -> str:
        return self._path

    # --- properties ---

    def _defaults(self) -> dict[str, str]:
        return {
            "tag": "VCALENDAR",
            "D:displayname": self.view.name,
            "ICAL:calendar-color": self.view.color,
            "C:supported-calendar-component-set": self.view.component,
        }

    @overload
    def get_meta(self, key: None = None) -> Mapping[str, str]: ...

    @overload
    def get_meta(self, key: str) -> str | None: ...

    def get_meta(self, key: str | None = None) -> Mapping[str, str] | str | None:
        meta = self._defaults()
        meta.update(self.view.props)
        return meta if key is None else meta.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        """Keep what the user set: Radicale hands over ``get_meta()`` with the request's
        changes applied, so a CRM default it carries is not the user's choice (it would
        freeze the type's colour), and a property absent now was removed."""
        defaults = self._defaults()
        chosen = {key: value for key, value in props.items()
                  if key in self.view.props or defaults.get(key) != value}
        context.forget_calendars()
        with self._store.transaction() as session:
            client_writes.set_props(session, get_user(session, self.username), self.view,
                                      chosen)

    @property
    def etag(self) -> str:
        return self.view.ctag

    @property
    def last_modified(self) -> str:
        return http_date(self.view.updated_at)

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        token = self.view.token
        if not old_token:
            return token, [item.href for item in self._all()]
        with self._store.reading() as session:
            try:
                return token, calendars.changes_since(session, self.view, old_token)
            except calendars.InvalidSyncToken:
                raise ValueError(f"unknown sync token {old_token!r}") from None

    # --- reads ---

    def _all(self) -> list[ItemView]:
        with self._store.reading() as session:
            return calendars.all_items(session, self.view)

    def get_all(self) -> Iterator[radicale_item.Item]:
        return (make_item(self, view) for view in self._all())

    def serialize(self, vcf_to_ics: bool = False,
                  ShareActions: dict[Any, Any] | None = None) -> str:
        """The whole calendar as one VCALENDAR (``GET /<user>/<slug>/``)."""
        return storage.BaseCollection.serialize(_WholeCalendar(self._store, self.username,
                                                               self.view))

    def get_multi(self, hrefs: Iterable[str]) -> Iterator[tuple[str, radicale_item.Item | None]]:
        wanted = list(hrefs)
        with self._store.reading() as session:
            found = calendars.items_by_href(session, self.view, wanted)
        expansion = context.current().expansion
        for href in wanted:
            view = found.get(href)
            if view is None or expansion is None:
                yield href, make_item(self, view) if view else None
                continue
            text = self._expandable(view, *expansion)
            if text is None:
                raise answers.too_many_instances(f"/{self.path}/{href}")
            yield href, make_item(self, view, text)

    def get_filtered(
        self, filters: Iterable[ET.Element]
    ) -> Iterator[tuple[radicale_item.Item, bool]]:
        """Candidates for a REPORT's filters, each with whether it is known to match.

        A simple filter (one VEVENT time range, or VTODO in a task list: the index holds the
        range RFC 4791 9.9 gives a task) is answered from the occurrence index, and a
        series the recurrence work budget could not decide counts as a match (the client
        expands it anyway). Any other filter is evaluated here, item by item, so that an
        item Radicale's filter cannot evaluate is left out and logged instead of failing
        the whole REPORT.
        """
        filters = list(filters)
        tag, start, end, simple = radicale_filter.simplify_prefilters(filters, "VCALENDAR")
        if tag not in (None, self.view.component):
            return
        expansion = context.current().expansion
        hits: list[tuple[ItemView, bool]]
        unbounded = start == radicale_filter.TIMESTAMP_MIN and end == radicale_filter.TIMESTAMP_MAX
        low, high = expansion or (datetime.fromtimestamp(max(start, 0), UTC),
                                  datetime.fromtimestamp(min(end, 253402300799), UTC))
        if unbounded and expansion is None:
            # No time range: every event matches the prefilter; the exact filter decides.
            hits = [(view, True) for view in self._all()]
        else:
            # Radicale drops the time range of an expanding query: an object without an
            # instance in the expanded window is not answered, so that window selects.
            with self._store.reading() as session:
                hits = calendars.items_in_range(session, self.view, low, high)
        # Where Radicale expands series itself (expanding, free-busy, or a filter it
        # evaluates over a time range), it gets objects that are cheap to expand there.
        window = expansion or (None if unbounded or simple else (low, high))
        for view, decided in hits:
            text = view.ical if window is None else self._expandable(view, *window)
            if text is None:
                continue
            # A filtered answer carries the stored object; an expanded one only instances.
            item = make_item(self, view, text if expansion else None)
            if simple and tag == self.view.component:
                yield item, True
            elif not decided:
                log.warning("%s: %r left out of a filtered REPORT: its recurrence exceeds "
                            "the work budget", self.path, view.href)
            elif self._matches(make_item(self, view, text), filters):
                yield item, True

    def _expandable(self, view: ItemView, start: datetime, end: datetime) -> str | None:
        """The object to hand Radicale for expanding over [start, end); None (logged) when it
        holds more instances there than one object may cost a REPORT."""
        try:
            text = rebase.for_window(view.ical, start, end)
        except Exception:  # one stored object must never fail the REPORT
            log.warning("%s: cannot expand %r; left out", self.path, view.href, exc_info=True)
            return None
        if text is None:
            log.warning("%s: %r left out of an expanded REPORT: more instances between %s and "
                        "%s than one object may cost", self.path, view.href, start, end)
        return text

    def _matches(self, item: radicale_item.Item, filters: list[ET.Element]) -> bool:
        try:
            return all(test_filter("VCALENDAR", item, filter_) for filter_ in filters)
        except Exception:  # one stored object must never fail the REPORT
            log.warning("%s: cannot evaluate %r for a filter; left out", self.path, item.href,
                        exc_info=True)
            return False

    def has_uid(self, uid: str) -> bool:
        if context.current().method == "PUT":
            # Under the gateway's host the write's own transaction decides (put_event): a
            # check here races with a concurrent create and would answer 409 where the
            # loser of an If-None-Match race must get 412.
            return False
        with self._store.reading() as session:
            return calendars.has_uid(session, self.view, uid)

    # --- writes (a refusal is answered by the host with its status and reason: answers.py) ---

    def upload(
        self, href: str, item: radicale_item.Item
    ) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        request = context.current()
        # Keep the client's bytes; Radicale's item is a vobject re-serialisation.
        if request.method == "PUT" and request.body:
            text, parsed = request.body, request.parsed
        else:
            text, parsed = item.serialize(), None
        precondition = preconditions.Precondition(request.if_match, request.if_none_match)
        context.forget_calendars()

        def write() -> tuple[client_writes.Outcome, radicale_item.Item | None]:
            with self._store.transaction() as session:
                user = get_user(session, self.username)
                # What the calendar shows at href now (the item being replaced), if anything.
                shown = calendars.items_by_href(session, self.view, [href]).get(href)
                old = make_item(self, shown) if shown else None
                return client_writes.put_event(session, user, self.view, href, text, parsed,
                                               precondition, notify=True), old

        try:
            outcome, old = preconditions.retrying(write)
        except DomainError as exc:
            raise answers.refused(exc, self.username) from exc
        return make_item(self, outcome.item), old

    def delete(self, href: str | None = None) -> None:
        if href is None:
            raise ValueError("calendars are provisioned by the CRM and cannot be deleted")
        request = context.current()
        precondition = preconditions.Precondition(request.if_match)
        context.forget_calendars()

        def write() -> None:
            with self._store.transaction() as session:
                user = get_user(session, self.username)
                client_writes.delete_event(session, user, self.view, href, precondition)

        try:
            preconditions.retrying(write)
        except DomainError as exc:
            raise answers.refused(exc, self.username) from exc


class _WholeCalendar(CalendarCollection):
    """The calendar as Radicale serialises it whole: it splits each event at CRLF, so events
    stored with bare LF line endings (as some clients send them) get CRLF here."""

    def get_all(self) -> Iterator[radicale_item.Item]:
        return (make_item(self, replace(view, ical=_LINE_END.sub("\r\n", view.ical)))
                for view in self._all())
