"""``/activities`` (read-only: logged mail is immutable, any write is a 405) and ``/inbound``
(the mail queue: list by status, one message with its decision, retry)."""

from __future__ import annotations

import re
from urllib.parse import quote

from gateway import inbound_queue
from gateway.activity_queries import (
    ActivityFilter,
    attachment_data,
    get_activity,
    links_of,
    page_activities,
)
from gateway.errors import NotFound
from gateway.models import Activity, InboundMessage
from gateway.web.api.fields import encode_cursor
from gateway.web.api.models import (
    ActivityLinksOut,
    ActivityOut,
    ActivityQuery,
    AttachmentOut,
    InboundOut,
    InboundQuery,
    Page,
)
from gateway.web.api.routing import Call, Reply, entity_path, route

ACTIVITY = f"/activities/{entity_path('activity_id')}"
MESSAGE = f"/inbound/{entity_path('message_id')}"
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


def activity_out(row: Activity, links: ActivityLinksOut | None = None) -> ActivityOut:
    return ActivityOut(
        id=row.id, message_id=row.message_id, direction=row.direction, source=row.source,
        subject=row.subject, sent_at=row.sent_at, from_addr=row.from_addr,
        to_addrs=list(row.to_addrs), cc_addrs=list(row.cc_addrs), text_body=row.text_body,
        html_body=row.html_body, links=links,
        attachments=[AttachmentOut(id=a.id, filename=a.filename, content_type=a.content_type,
                                   size=a.size, inline=a.inline) for a in row.attachments],
    )


def inbound_out(row: InboundMessage) -> InboundOut:
    return InboundOut(
        id=row.id, source=row.source, status=row.status, received_at=row.received_at,
        mail_from=row.mail_from, rcpt_tos=list(row.rcpt_tos), size=row.size,
        attempts=row.attempts, next_attempt_at=row.next_attempt_at, decision=row.decision,
        last_error=row.last_error, activity_id=row.activity_id, processed_at=row.processed_at)


@route("GET", "/activities", summary="List logged mail (by user, contact or account; by "
       "date)", tag="activities", response=Page[ActivityOut], query=ActivityQuery)
def list_activities(call: Call) -> Page[ActivityOut]:
    query: ActivityQuery = call.query
    wanted = ActivityFilter(username=query.user, contact_id=query.contact_id,
                            account_id=query.account_id, since=query.since, until=query.until)
    found = page_activities(call.session, wanted, limit=query.limit, after=query.after)
    return Page[ActivityOut](items=[activity_out(a) for a in found.items],
                             next_cursor=encode_cursor(found.next_after))


@route("GET", ACTIVITY, summary="Get one logged mail with whom it concerns",
       tag="activities", response=ActivityOut)
def get_activity_(call: Call) -> ActivityOut:
    row = get_activity(call.session, call.params["activity_id"])
    links = links_of(call.session, row.id)
    return activity_out(row, ActivityLinksOut(users=links.usernames, contacts=links.contacts,
                                              accounts=links.accounts))


@route("GET", f"{ACTIVITY}/attachments/{entity_path('attachment_id')}",
       summary="Download an attachment", tag="activities", response=None,
       media_type="application/octet-stream",
       response_headers=("Content-Disposition",))
def get_attachment(call: Call) -> Reply:
    row = get_activity(call.session, call.params["activity_id"])
    wanted = call.params["attachment_id"]
    found = [a for a in row.attachments if a.id == wanted]
    if not found:
        raise NotFound(f"activity {row.id} has no attachment {wanted}")
    attachment = found[0]
    media = attachment.content_type.lower()
    if not _MEDIA_TYPE.fullmatch(media):
        media = "application/octet-stream"
    fallback = re.sub(r'[^A-Za-z0-9._ -]', "_", attachment.filename) or "attachment"
    disposition = (f'attachment; filename="{fallback}"; '
                   f"filename*=UTF-8''{quote(attachment.filename, safe='')}")
    return Reply(raw=attachment_data(call.session, attachment), media_type=media,
                 headers={"Content-Disposition": disposition,
                          "X-Content-Type-Options": "nosniff"})


@route("GET", "/inbound", summary="List the inbound mail queue", tag="inbound",
       response=Page[InboundOut], query=InboundQuery)
def list_inbound(call: Call) -> Page[InboundOut]:
    query: InboundQuery = call.query
    found = inbound_queue.page_messages(call.session, status=query.status, limit=query.limit,
                                        after=query.after)
    return Page[InboundOut](items=[inbound_out(m) for m in found.items],
                            next_cursor=encode_cursor(found.next_after))


@route("GET", MESSAGE, summary="Get a queued message with its decision trace", tag="inbound",
       response=InboundOut)
def get_inbound(call: Call) -> InboundOut:
    return inbound_out(inbound_queue.get_message(call.session, call.params["message_id"]))


@route("POST", f"{MESSAGE}/retry", summary="Queue a failed or skipped message again",
       tag="inbound", response=InboundOut)
def retry_inbound(call: Call) -> InboundOut:
    return inbound_out(inbound_queue.retry(call.session, call.params["message_id"]))
