"""The CalDAV client of linked accounts against real servers: listings and preconditions."""

from __future__ import annotations

import pytest
from linked_world import event
from peers.linked_servers import CalServer

from linked.dav import Account, PreconditionFailed


def _account(cal_server: CalServer, *, sync_collection: bool) -> Account:
    return Account(cal_server.url, cal_server.login, cal_server.password, 10,
                   sync_collection=sync_collection)


def test_sync_collection_lists_only_what_changed_in_one_request(cal_server: CalServer) -> None:
    account = _account(cal_server, sync_collection=True)
    url = f"{cal_server.calendar_home}personal/"
    home = url.split("/", 3)[3]
    first = account.put(f"/{home}a.ics", event("a", "A"), None)
    listing = account.changes(url, None, None, None)
    assert listing.sync_token and listing.changed == [(f"/{home}a.ics", first)]
    idle = account.changes(url, listing.sync_token, None, None)
    assert (idle.changed, idle.deleted, idle.requests) == ([], [], 1)
    assert account.delete(f"/{home}a.ics", first)
    gone = account.changes(url, listing.sync_token, None, None)
    assert gone.deleted == [f"/{home}a.ics"] and gone.requests == 1
    # A token the cal_server no longer knows starts afresh instead of failing.
    fresh = account.changes(url, "http://example.invalid/stale-token", None, None)
    assert fresh.full and fresh.changed == []
    account.close()


def test_ctag_and_etag_listing_where_sync_collection_is_not_used(cal_server: CalServer) -> None:
    account = _account(cal_server, sync_collection=False)
    url = f"{cal_server.calendar_home}personal/"
    home = url.split("/", 3)[3]
    etag = account.put(f"/{home}b.ics", event("b", "B"), None)
    listing = account.changes(url, None, None, {})
    assert listing.full and listing.changed == [(f"/{home}b.ics", etag)]
    assert listing.ctag
    idle = account.changes(url, None, listing.ctag, {f"/{home}b.ics": etag})
    assert (idle.changed, idle.deleted, idle.requests) == ([], [], 1)  # one getctag
    account.delete(f"/{home}b.ics", etag)
    gone = account.changes(url, None, listing.ctag, {f"/{home}b.ics": etag})
    assert gone.deleted == [f"/{home}b.ics"] and gone.ctag != listing.ctag
    account.close()


def test_every_write_carries_a_precondition(cal_server: CalServer) -> None:
    account = _account(cal_server, sync_collection=True)
    href = f"/{cal_server.calendar_home.split('/', 3)[3]}personal/c.ics"
    etag = account.put(href, event("c", "C"), None)
    with pytest.raises(PreconditionFailed):  # If-None-Match: * on create
        account.put(href, event("c", "C again"), None)
    newer = account.put(href, event("c", "C edited"), etag)
    with pytest.raises(PreconditionFailed):  # If-Match with an old ETag
        account.put(href, event("c", "C stale"), etag)
    with pytest.raises(PreconditionFailed):
        account.delete(href, etag)
    current = account.get(href)
    assert current is not None and "C edited" in current[1] and current[0] == newer
    account.close()
