"""``/availability``, ``/users/{username}/freebusy``, ``/users/{username}/freebusy-url`` and
``/conflicts``: when people are free, and which bookings overlapped busy time (issue 13).

Every answer costs O(busy instances in the window) (``gateway.busy``); windows are capped by
``availability.max_days`` (a longer one is a 422, not cut).
"""

from __future__ import annotations

from datetime import timedelta

from gateway import freebusy
from gateway.availability import check_window, find_availability
from gateway.busy import busy_periods
from gateway.config import public_base_url
from gateway.conflicts import recent_conflicts
from gateway.errors import NotFound
from gateway.users import get_user
from gateway.web.api.fields import encode_cursor
from gateway.web.api.models import (
    AvailabilityOut,
    AvailabilityQuery,
    BusyOut,
    ConflictQuery,
    FeedOut,
    Page,
    RecordedConflictOut,
    SlotOut,
    WindowQuery,
)
from gateway.web.api.resources.entries import conflict_out
from gateway.web.api.routing import Call, Reply, route

TAG = "availability"


@route("GET", "/availability", summary="The free windows of at least `duration` minutes "
       "common to the users, inside each one's working hours", tag=TAG,
       response=AvailabilityOut, query=AvailabilityQuery)
def get_availability(call: Call) -> AvailabilityOut:
    query: AvailabilityQuery = call.query
    users = [name.strip() for name in query.users.split(",") if name.strip()]
    slots = find_availability(
        call.session, users, query.start, query.end, timedelta(minutes=query.duration),
        default_hours=call.config.get("availability", "working_hours"),
        max_days=call.config.get("availability", "max_days"))
    return AvailabilityOut(users=list(dict.fromkeys(users)), duration=query.duration,
                           slots=[SlotOut(start=s, end=e) for s, e in slots])


@route("GET", "/users/<username>/freebusy", summary="A user's merged busy periods in a window",
       tag=TAG, response=BusyOut, query=WindowQuery)
def get_freebusy(call: Call) -> BusyOut:
    query: WindowQuery = call.query
    user = get_user(call.session, call.params["username"])
    check_window(query.start, query.end, call.config.get("availability", "max_days"))
    periods = busy_periods(call.session, user.id, query.start, query.end)
    return BusyOut(user=user.username, start=query.start, end=query.end,
                   busy=[SlotOut(start=s, end=e) for s, e in periods])


@route("POST", "/users/<username>/freebusy-url", summary="Make the user's secret free/busy "
       "URL (shown only in this answer; an earlier one stops working)", tag=TAG,
       response=FeedOut, status=201)
def create_freebusy_url(call: Call) -> FeedOut:
    user = get_user(call.session, call.params["username"])
    token = freebusy.create_token(call.session, user)
    return FeedOut(username=user.username,
                   url=freebusy.token_url(public_base_url(call.config), token))


@route("DELETE", "/users/<username>/freebusy-url", summary="Revoke the user's secret "
       "free/busy URL (404 from its next request)", tag=TAG, response=None, status=204)
def revoke_freebusy_url(call: Call) -> Reply:
    user = get_user(call.session, call.params["username"])
    if not freebusy.revoke_token(call.session, user):
        raise NotFound(f"user {user.username} has no free/busy URL")
    return Reply(status=204)


@route("GET", "/conflicts", summary="Recorded overlaps with busy time, newest first "
       "(optionally of one user's busy time)", tag=TAG, response=Page[RecordedConflictOut],
       query=ConflictQuery)
def list_conflicts(call: Call) -> Page[RecordedConflictOut]:
    query: ConflictQuery = call.query
    user_id = get_user(call.session, query.user).id if query.user else None
    rows = recent_conflicts(call.session, user_id, limit=query.limit + 1, after=query.after)
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    return Page[RecordedConflictOut](
        items=[RecordedConflictOut(id=r.id, entry_id=r.entry_id,
                                   source="calendar" if r.source == "calendar" else "crm",
                                   created_at=r.created_at, conflict=conflict_out(r.clash))
               for r in rows],
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None)
