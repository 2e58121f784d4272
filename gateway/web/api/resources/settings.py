"""``/sync-profile`` (the global default), ``/users/<name>/sync-profile`` (a user's, with
what it inherits) and ``/health`` (what /healthz says, plus queue depth and poller lag)."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import text

from gateway import inbound_queue
from gateway.clock import utcnow
from gateway.mail_accounts import poller_facts
from gateway.models import User
from gateway.profiles import (
    ProfileChanges,
    effective_profile,
    global_profile,
    overridden_fields,
)
from gateway.sync_admin import change_profile
from gateway.users import get_user
from gateway.web.api.models import (
    HealthOut,
    PollerState,
    ProfileOut,
    ProfilePatch,
    QueueDepth,
)
from gateway.web.api.routing import Call, route

TAG = "sync-profiles"
FIELDS = ("records", "direction", "sync_invitees", "paused", "invitations")


def profile_out(call: Call, user: User | None) -> ProfileOut:
    if user is None:
        values, inherited = asdict(global_profile(call.session)), []
    else:
        values = asdict(effective_profile(call.session, user.id))
        own = overridden_fields(call.session, user.id)
        inherited = [name for name in FIELDS if name not in own]
    return ProfileOut(**values, user=user.username if user else None, inherited=inherited)


def _change(call: Call, user: User | None) -> ProfileOut:
    body: ProfilePatch = call.body
    changes = ProfileChanges(records=body.records, direction=body.direction,
                             sync_invitees=body.sync_invitees, paused=body.paused,
                             invitations=body.invitations)
    change_profile(call.session, user, changes)
    return profile_out(call, user)


@route("GET", "/sync-profile", summary="Get the global default sync profile", tag=TAG,
       response=ProfileOut)
def get_global_profile(call: Call) -> ProfileOut:
    return profile_out(call, None)


@route("PATCH", "/sync-profile", summary="Change the global default (every user who "
       "inherits a field follows)", tag=TAG, response=ProfileOut, body=ProfilePatch)
def update_global_profile(call: Call) -> ProfileOut:
    return _change(call, None)


@route("GET", "/users/<username>/sync-profile", summary="Get a user's effective sync profile "
       "and which fields it inherits", tag=TAG, response=ProfileOut)
def get_user_profile(call: Call) -> ProfileOut:
    return profile_out(call, get_user(call.session, call.params["username"]))


@route("PATCH", "/users/<username>/sync-profile", summary="Override fields of a user's sync "
       "profile", tag=TAG, response=ProfileOut, body=ProfilePatch)
def update_user_profile(call: Call) -> ProfileOut:
    return _change(call, get_user(call.session, call.params["username"]))


@route("GET", "/health", summary="The database answers; queue depth and poller lag",
       tag="health", response=HealthOut)
def get_health(call: Call) -> HealthOut:
    call.session.execute(text("SELECT 1"))
    facts = poller_facts(call.session, utcnow())
    depth = inbound_queue.queue_depth(call.session)
    return HealthOut(status="ok", database="ok",
                     inbound_queue=QueueDepth(queued=depth["queued"], failed=depth["failed"]),
                     poller=PollerState(accounts=facts.accounts, failing=facts.failing,
                                        lag_seconds=facts.lag_seconds))
