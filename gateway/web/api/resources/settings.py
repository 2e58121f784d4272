"""``/sync-profile`` (the global default), ``/users/<name>/sync-profile`` (a user's, with
what it inherits) and ``/health`` (what /healthz says, plus how far behind each background
job is)."""

from __future__ import annotations

from dataclasses import asdict

from gateway.clock import utcnow
from gateway.errors import Invalid
from gateway.health import health
from gateway.models import User
from gateway.profiles import (
    ProfileChanges,
    effective_profile,
    global_profile,
    overridden_fields,
    rep_choices,
    set_rep_choices,
)
from gateway.sync_admin import change_profile
from gateway.users import get_user
from gateway.web.api.models import (
    HealthOut,
    LinkedState,
    OutboundState,
    PollerState,
    ProfileOut,
    ProfilePatch,
    QueueDepth,
    WebhookState,
)
from gateway.web.api.routing import Call, route

TAG = "sync-profiles"
FIELDS = ("records", "direction", "sync_invitees", "paused", "invitations", "conflicts")


def profile_out(call: Call, user: User | None) -> ProfileOut:
    if user is None:
        return ProfileOut(**asdict(global_profile(call.session)), user=None, inherited=[],
                          rep_choices=list(rep_choices(call.session)))  # type: ignore[arg-type]
    own = overridden_fields(call.session, user.id)
    return ProfileOut(**asdict(effective_profile(call.session, user.id)), user=user.username,
                      inherited=[name for name in FIELDS if name not in own])


def _change(call: Call, user: User | None) -> ProfileOut:
    body: ProfilePatch = call.body
    changes = ProfileChanges(records=body.records, direction=body.direction,
                             sync_invitees=body.sync_invitees, paused=body.paused,
                             invitations=body.invitations, conflicts=body.conflicts)
    if body.rep_choices is not None:
        if user is not None:
            raise Invalid("rep_choices belongs to the global default (PATCH /sync-profile)")
        set_rep_choices(call.session, body.rep_choices)
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


@route("GET", "/health", summary="The database answers; inbound queue depth, poller lag, "
       "webhook deliveries waiting, linked-calendar sync lag", tag="health", response=HealthOut)
def get_health(call: Call) -> HealthOut:
    facts = health(call.session, utcnow())
    return HealthOut(status="ok", database="ok",
                     inbound_queue=QueueDepth(queued=facts.queued, failed=facts.failed),
                     poller=PollerState(accounts=facts.poller.accounts,
                                        failing=facts.poller.failing,
                                        lag_seconds=facts.poller.lag_seconds),
                     webhooks=WebhookState(pending=facts.webhooks_pending,
                                           failed=facts.webhooks_failed),
                     outbound_mail=OutboundState(pending=facts.outbound_pending,
                                                 failed=facts.outbound_failed),
                     linked=LinkedState(accounts=facts.links.active,
                                        failing=facts.links.failing,
                                        lag_seconds=facts.links.lag_seconds),
                     warnings=facts.warnings)
