"""``/webhooks``: the endpoints events are POSTed to, and what was delivered to them.

The same operations as ``crm-gateway webhooks`` (gateway.webhooks); the secret is in the
answer to the create only.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gateway import webhooks
from gateway.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from gateway.secrets import SecretBox
from gateway.web.api.fields import PageQuery, encode_cursor
from gateway.web.api.models import Page
from gateway.web.api.routing import Call, Reply, entity_path, route

TAG = "webhooks"
ENDPOINT = f"/webhooks/{entity_path('endpoint_id')}"
DELIVERY = f"/webhooks/deliveries/{entity_path('delivery_id')}"


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2000, description="http(s) URL the events are POSTed to")
    events: list[str] = Field(min_length=1, max_length=50,
                              description="event types, groups (entry.*) or *")
    description: str | None = Field(None, max_length=500)


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_… signing secret: shown only in this answer")


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="the webhook-id header, the same on every attempt")
    event_type: str
    endpoint_id: int
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryDetail(DeliveryOut):
    payload: dict[str, object]
    attempts_made: list[AttemptOut]


class DeliveryQuery(PageQuery):
    failed: bool = Field(False, description="only deliveries that gave up")
    endpoint_id: int | None = Field(None, ge=1, le=2**31 - 1)


def endpoint_out(row: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(id=row.id, url=row.url, events=list(row.events),
                      description=row.description, created_at=row.created_at)


def delivery_out(delivery: WebhookDelivery, event: WebhookEvent) -> DeliveryOut:
    return DeliveryOut.model_validate(webhooks.describe_delivery(delivery, event))


@route("GET", "/webhooks", summary="List webhook endpoints (one page: they are few)", tag=TAG,
       response=Page[WebhookOut])
def list_endpoints(call: Call) -> Page[WebhookOut]:
    rows = [endpoint_out(row) for row in webhooks.list_endpoints(call.session)]
    return Page[WebhookOut](items=rows, next_cursor=None)


@route("POST", "/webhooks", summary="Add a webhook endpoint (its secret is shown once)", tag=TAG,
       response=WebhookCreated, body=WebhookCreate, status=201,
       request_headers=("Idempotency-Key",), response_headers=("Location",))
def add_endpoint(call: Call) -> Reply:
    body: WebhookCreate = call.body
    box = SecretBox(call.config.get("security", "secret_key"))
    made = webhooks.add_endpoint(call.session, body.url, body.events, body.description, box=box)
    out = WebhookCreated(**endpoint_out(made.endpoint).model_dump(), secret=made.secret)
    return Reply(out, headers={"Location": f"/api/v1/webhooks/{made.endpoint.id}"})


@route("GET", ENDPOINT, summary="Get a webhook endpoint", tag=TAG, response=WebhookOut)
def get_endpoint(call: Call) -> WebhookOut:
    return endpoint_out(webhooks.get_endpoint(call.session, call.params["endpoint_id"]))


@route("DELETE", ENDPOINT, summary="Remove a webhook endpoint (nothing more is sent to it)",
       tag=TAG, response=None, status=204)
def remove_endpoint(call: Call) -> Reply:
    webhooks.remove_endpoint(call.session, call.params["endpoint_id"])
    return Reply(status=204)


@route("GET", "/webhooks/deliveries", summary="List deliveries, newest first", tag=TAG,
       response=Page[DeliveryOut], query=DeliveryQuery)
def list_deliveries(call: Call) -> Page[DeliveryOut]:
    query: DeliveryQuery = call.query
    found = webhooks.list_deliveries(call.session, failed_only=query.failed, limit=query.limit,
                                     cursor=query.after, endpoint_id=query.endpoint_id)
    items = [delivery_out(delivery, event) for delivery, event in found]
    last = found[-1][0].id if len(found) == query.limit else None
    return Page[DeliveryOut](items=items, next_cursor=encode_cursor(last))


@route("GET", DELIVERY, summary="Get a delivery with its event and every attempt", tag=TAG,
       response=DeliveryDetail)
def get_delivery(call: Call) -> DeliveryDetail:
    delivery, event, attempts = webhooks.get_delivery(call.session, call.params["delivery_id"])
    return DeliveryDetail(**delivery_out(delivery, event).model_dump(), payload=event.payload,
                          attempts_made=[_attempt(attempt) for attempt in attempts])


@route("POST", f"{DELIVERY}/replay", summary="Send a delivery's event again (same webhook-id)",
       tag=TAG, response=DeliveryOut, status=201, request_headers=("Idempotency-Key",))
def replay(call: Call) -> Reply:
    again = webhooks.replay(call.session, call.params["delivery_id"])
    event = call.session.get(WebhookEvent, again.event_id)
    assert event is not None
    return Reply(delivery_out(again, event))


def _attempt(attempt: WebhookAttempt) -> AttemptOut:
    return AttemptOut.model_validate(webhooks.describe_attempt(attempt))

