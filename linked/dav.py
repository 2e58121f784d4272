"""The CalDAV requests a linked account needs, on the ``caldav`` library's client.

Blocking (niquests underneath): callers run these off the event loop. Hrefs are paths on the
account's server (as its multistatus replies give them); URLs are built from the account's
base. Every write carries a precondition: ``If-None-Match: *`` to create, ``If-Match`` to
change or delete, so an account-side edit in between is never overwritten blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape

from caldav.davclient import DAVClient
from caldav.lib import error

from gateway.linked_calendars import RemoteCalendar

SYNC_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
)
CTAG_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
    "<D:prop><CS:getctag/><D:sync-token/></D:prop></D:propfind>"
)
ETAGS_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/></D:prop></D:propfind>'
)
MULTIGET_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
)
QUERY_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
    '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter>'
    "</C:filter></C:calendar-query>"
)
ICAL = {"Content-Type": "text/calendar; charset=utf-8"}
WELL_KNOWN_HOPS = 5


class RemoteError(Exception):
    """The account's server refused or failed a request; the message says which and why."""


class PreconditionFailed(RemoteError):
    """The object changed on the account since its ETag was recorded (412)."""


@dataclass
class Listing:
    """What changed in one calendar since the recorded state."""

    changed: list[tuple[str, str | None]] = field(default_factory=list)  # (href, etag)
    deleted: list[str] = field(default_factory=list)
    sync_token: str | None = None
    ctag: str | None = None
    full: bool = False  # every object was listed: known ones absent are gone
    requests: int = 0


def client_for(url: str, login: str, password: str, timeout: int) -> DAVClient:
    return DAVClient(url=url, username=login, password=password, timeout=timeout,
                     enable_rfc6764=False)


def path_of(url: str) -> str:
    return urlsplit(url).path


class Account:
    """One linked account's server, through one keep-alive client."""

    def __init__(self, url: str, login: str, password: str, timeout: int = 30, *,
                 sync_collection: bool = True):
        self.base = url
        self.sync_collection = sync_collection  # False: ctag + ETags even where offered
        self.client = client_for(url, login, password, timeout)
        self.timeout = timeout
        self.requests = 0
        self._principal: Any = None

    def close(self) -> None:
        self.client.close()

    def url(self, href: str) -> str:
        return urljoin(self.base, href)

    def _request(self, url: str, method: str, body: str = "",
                 headers: dict[str, str] | None = None) -> Any:
        self.requests += 1
        return self.client.request(url, method, body, headers or {})

    # --- discovery ---

    def discover(self) -> tuple[str, str]:
        """(principal URL, calendar home URL): asked of the given URL first, then of the
        server's /.well-known/caldav (RFC 6764 section 5)."""
        try:
            principal = self.client.principal()
        except error.AuthorizationError:
            raise
        except Exception:
            self.client.url = self.client.url.join(self.well_known())
            principal = self.client.principal()
        self._principal = principal
        return str(principal.url), str(principal.calendar_home_set.url)

    def well_known(self) -> str:
        """Where the host's ``/.well-known/caldav`` leads (RFC 6764 section 5), redirects
        followed by hand: the HTTP client would turn a redirected PROPFIND into a GET. Only
        redirects on the same host are followed (section 8)."""
        url = urljoin(self.base, "/.well-known/caldav")
        host = urlsplit(url).hostname
        for _ in range(WELL_KNOWN_HOPS):
            answer = self.client.session.request(
                "PROPFIND", url, headers={"Depth": "0"}, allow_redirects=False,
                timeout=self.timeout)
            self.requests += 1
            location = answer.headers.get("Location")
            if answer.status_code not in (301, 302, 303, 307, 308) or not location:
                return url
            following = urljoin(url, location)
            if urlsplit(following).hostname != host:
                raise RemoteError(f"{url} redirects to another host ({following}): not "
                                  "followed")
            url = following
        raise RemoteError(f"{urljoin(self.base, '/.well-known/caldav')} redirects too often")

    def calendars(self) -> list[RemoteCalendar]:
        """The calendars in the home ``discover`` found."""
        return [RemoteCalendar(str(c.url), c.get_display_name() or "")
                for c in self._principal.calendars()]

    def make_calendar(self, home_url: str, name: str) -> RemoteCalendar:
        slug = "".join(ch for ch in name.lower() if ch.isalnum() or ch in "-_") or "crm"
        url = urljoin(home_url if home_url.endswith("/") else home_url + "/", f"{slug}/")
        body = ('<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" '
                'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
                f"<D:displayname>{escape(name)}</D:displayname></D:prop></D:set></C:mkcalendar>")
        try:
            answer = self.client.request(url, "MKCALENDAR", body,
                                         {"Content-Type": "application/xml"})
        except error.AuthorizationError:
            raise RemoteError(f"the server does not allow creating the calendar {name!r} "
                              "(MKCALENDAR refused); create it in the account and link again"
                              ) from None
        if answer.status not in (200, 201):
            raise RemoteError(f"MKCALENDAR {url} answered {answer.status}")
        return RemoteCalendar(url, name)

    # --- fetch ---

    def changes(self, calendar_url: str, sync_token: str | None, ctag: str | None,
                known: dict[str, str | None] | None) -> Listing:
        """Changes since ``sync_token`` by sync-collection (RFC 6578), else by ctag and an
        ETag listing. ``known`` (href -> ETag) is needed only for the listing; the caller
        passes None to ask whether it is needed (then ``Listing.full`` and no changes)."""
        start = self.requests
        if self.sync_collection and (sync_token is not None or ctag is None):
            listing = self._sync_collection(calendar_url, sync_token)
            if listing is not None:
                listing.requests = self.requests - start
                return listing
        listing = self._by_ctag(calendar_url, ctag, known)
        listing.requests = self.requests - start
        return listing

    def _sync_collection(self, calendar_url: str, token: str | None) -> Listing | None:
        body = SYNC_BODY.format(token=escape(token or ""))
        try:
            answer = self.client.report(calendar_url, body, depth=None)
            self.requests += 1
            if answer.status == 412 or (answer.status == 403 and token):
                raise error.ReportError("invalid sync token")
            result = answer.parse_sync_collection()
        except error.AuthorizationError as exc:
            self.requests += 1
            if token:  # Radicale answers 403 to a token it no longer knows: start afresh
                return self._sync_collection(calendar_url, None)
            if getattr(exc, "status", None) == 401:
                raise
            return None
        except (error.ReportError, error.ResponseError):
            if token:
                return self._sync_collection(calendar_url, None)
            return None  # the server has no sync-collection: ctag and ETags then
        if result.sync_token is None:
            return None
        changed = [(r.href, r.etag) for r in result.changed if not r.href.endswith("/")]
        return Listing(changed, list(result.deleted), result.sync_token, None, full=not token)

    def ctag(self, calendar_url: str) -> str | None:
        answer = self._request(calendar_url, "PROPFIND", CTAG_BODY, {"Depth": "0"})
        for result in answer.parse_propfind():
            for name, value in result.properties.items():
                if name.endswith("getctag") and value:
                    return str(value)
        return None

    def _by_ctag(self, calendar_url: str, ctag: str | None,
                 known: dict[str, str | None] | None) -> Listing:
        current = self.ctag(calendar_url)
        if current is not None and current == ctag:
            return Listing(ctag=current)
        answer = self._request(calendar_url, "PROPFIND", ETAGS_BODY, {"Depth": "1"})
        listed: dict[str, str | None] = {}
        own = path_of(calendar_url).rstrip("/")
        for result in answer.parse_propfind():
            if result.href.rstrip("/") == own or result.href.endswith("/"):
                continue
            etag = next((str(v) for k, v in result.properties.items() if k.endswith("getetag")),
                        None)
            listed[result.href] = etag
        known = known or {}
        changed = [(h, e) for h, e in listed.items() if known.get(h, "") != e or e is None]
        deleted = [h for h in known if h not in listed]
        return Listing(changed, deleted, None, current or "", full=True)

    def fetch(self, calendar_url: str, hrefs: list[str]) -> dict[str, tuple[str | None, str]]:
        """href -> (ETag, iCalendar text) of the objects that still exist, by multiget."""
        found: dict[str, tuple[str | None, str]] = {}
        for chunk in range(0, len(hrefs), 100):
            part = hrefs[chunk:chunk + 100]
            body = MULTIGET_HEAD + "".join(
                f"<D:href>{escape(h)}</D:href>" for h in part) + "</C:calendar-multiget>"
            answer = self.client.report(calendar_url, body, depth=1)
            self.requests += 1
            for result in answer.parse_calendar_query():
                if result.status == 200 and result.calendar_data:
                    found[result.href] = (result.etag, result.calendar_data)
        return found

    def all_objects(self, calendar_url: str) -> dict[str, tuple[str | None, str]]:
        """Every event of a calendar with its text (dedupe and reset only)."""
        answer = self.client.report(calendar_url, QUERY_BODY, depth=1)
        self.requests += 1
        return {r.href: (r.etag, r.calendar_data) for r in answer.parse_calendar_query()
                if r.calendar_data}

    def get(self, href: str) -> tuple[str | None, str] | None:
        answer = self._request(self.url(href), "GET")
        status = answer.status
        if status == 404:
            return None
        if status != 200:
            raise RemoteError(f"GET {href} answered {status}")
        return (answer.headers.get("ETag"),
                answer.raw)

    # --- push ---

    def put(self, href: str, text: str, if_match: str | None) -> str | None:
        """Create (``if_match`` None) or replace the object; its new ETag if the server
        says. PreconditionFailed when it exists (create) or changed (replace)."""
        headers = dict(ICAL)
        headers["If-Match" if if_match else "If-None-Match"] = if_match or "*"
        try:
            answer = self._request(self.url(href), "PUT", text, headers)
        except error.AuthorizationError as exc:
            raise RemoteError(f"PUT {href} refused: {exc.reason}") from None
        status = answer.status
        if status == 412:
            raise PreconditionFailed(f"{href} changed on the account")
        if status not in (200, 201, 204):
            raise RemoteError(f"PUT {href} answered {status}")
        etag = answer.headers.get("ETag")
        return str(etag) if etag else None

    def delete(self, href: str, if_match: str | None) -> bool:
        """Delete the object; False if it was already gone."""
        headers = {"If-Match": if_match} if if_match else {}
        try:
            answer = self._request(self.url(href), "DELETE", "", headers)
        except error.AuthorizationError as exc:
            raise RemoteError(f"DELETE {href} refused: {exc.reason}") from None
        status = answer.status
        if status == 412:
            raise PreconditionFailed(f"{href} changed on the account")
        if status == 404:
            return False
        if status not in (200, 204):
            raise RemoteError(f"DELETE {href} answered {status}")
        return True
