"""``/users/<name>/linked-calendars``: a rep's own CalDAV accounts, linked through the API.

The same flow as ``crm-gateway calendars`` (``gateway.linked_ops``): the account is tested
step by step before anything is stored, the password is stored encrypted and never
answered. The routes that talk to the account run outside the request's transaction.
"""

from __future__ import annotations

from typing import Any

from gateway import linked_ops
from gateway.connectivity import StepResult
from gateway.linked_calendars import describe, links_of, reset_link
from gateway.users import get_user
from gateway.web.api.models import (
    AccountProbe,
    AccountTestOut,
    DedupeBody,
    DedupeOut,
    LinkCreate,
    LinkedAccountList,
    LinkedAccountOut,
    ProbeStepOut,
    RemoteCalendarOut,
    ResetOut,
    SyncPassList,
    SyncPassOut,
    UnlinkOut,
    UnlinkQuery,
)
from gateway.web.api.problems import Problem
from gateway.web.api.routing import Call, Reply, route

TAG = "linked-calendars"
LINKS = "/users/<username>/linked-calendars"
ONE = LINKS + "/<int:link_id>"


def steps_out(result: StepResult) -> list[ProbeStepOut]:
    return [ProbeStepOut(name=s.name, status=s.status, detail=s.detail)  # type: ignore[arg-type]
            for s in result.steps]


def link_out(call: Call, link_id: int) -> LinkedAccountOut:
    with call.store.reading() as session:
        link = linked_ops.chosen_link(session, call.params["username"], link_id)
        data: dict[str, Any] = describe(session, link)
    data["id"] = data.pop("link")
    return LinkedAccountOut.model_validate(data)


@route("GET", LINKS, summary="List a user's linked calendar accounts, their calendars, counts "
       "and sync state", tag=TAG, response=LinkedAccountList)
def list_linked_accounts(call: Call) -> LinkedAccountList:
    user = get_user(call.session, call.params["username"])
    items = []
    for link in links_of(call.session, user):
        data: dict[str, Any] = describe(call.session, link)
        data["id"] = data.pop("link")
        items.append(LinkedAccountOut.model_validate(data))
    return LinkedAccountList(items=items)


@route("GET", ONE, summary="Get one linked calendar account", tag=TAG,
       response=LinkedAccountOut)
def get_linked_account(call: Call) -> LinkedAccountOut:
    return link_out(call, call.params["link_id"])


@route("POST", f"{LINKS}/test", summary="Test an account before linking it (resolve, "
       "connect, TLS, auth, discovery, calendar list); nothing is stored", tag=TAG,
       response=AccountTestOut, body=AccountProbe, transaction=False)
def probe_linked_account(call: Call) -> AccountTestOut:
    body: AccountProbe = call.body
    get_user(call.session, call.params["username"])
    url, check = linked_ops.probe_account(call.config, provider=body.provider, url=body.url,
                                          login=body.login, password=body.password)
    return AccountTestOut(ok=check.ok, url=url, steps=steps_out(check), calendars=[
        RemoteCalendarOut(url=c.url, name=c.name, role=None) for c in check.calendars])


@route("POST", LINKS, summary="Link a CalDAV account: tested first (422 naming the failing "
       "step, nothing stored); the target calendar is made when missing", tag=TAG,
       response=LinkedAccountOut, status=201, body=LinkCreate, transaction=False)
def link_account(call: Call) -> Reply:
    body: LinkCreate = call.body
    request = linked_ops.LinkRequest(
        username=call.params["username"], login=body.login, password=body.password,
        provider=body.provider, url=body.url, target=body.target, sources=tuple(body.sources),
        diary_type=body.diary_type)
    try:
        linked = linked_ops.link_account(call.config, call.store, request)
    except linked_ops.LinkRefused as exc:
        raise Problem("account-test-failed", f"nothing was stored: the test {exc}",
                      errors=[{"loc": ["step", s.name], "msg": f"{s.status}: {s.detail}"}
                              for s in exc.check.steps]) from None
    return Reply(link_out(call, linked.link_id), status=201,
                 headers={"Location": f"/api/v1/users/{request.username}/linked-calendars/"
                                      f"{linked.link_id}"})


@route("POST", f"{ONE}/test", summary="Test a linked account again, step by step", tag=TAG,
       response=AccountTestOut, transaction=False)
def test_linked_account(call: Call) -> AccountTestOut:
    check, calendars = linked_ops.remote_calendars(call.config, call.store,
                                                   call.params["username"],
                                                   call.params["link_id"])
    with call.store.reading() as session:
        url = linked_ops.chosen_link(session, call.params["username"],
                                     call.params["link_id"]).url
    return AccountTestOut(ok=check.ok, url=url, steps=steps_out(check), calendars=[
        RemoteCalendarOut(url=c.url, name=c.name, role=role)  # type: ignore[arg-type]
        for c, role in calendars])


@route("DELETE", ONE, summary="Unlink an account (what was pushed stays unless "
       "remove_pushed)", tag=TAG, response=UnlinkOut, query=UnlinkQuery, transaction=False)
def unlink_account(call: Call) -> UnlinkOut:
    query: UnlinkQuery = call.query
    link_id, removal = linked_ops.unlink(call.config, call.store, call.params["username"],
                                         call.params["link_id"],
                                         remove_pushed=query.remove_pushed)
    return UnlinkOut(link=link_id, removed=removal.removed if removal else [],
                     kept=removal.kept if removal else [])


@route("POST", f"{LINKS}/sync", summary="Sync now: one pass over each of the user's links",
       tag=TAG, response=SyncPassList, transaction=False)
def sync_linked_accounts(call: Call) -> SyncPassList:
    reports = linked_ops.sync_links(call.config, call.store, call.params["username"])
    return SyncPassList(items=[SyncPassOut(
        link=r.link_id, error=r.error, pushed=r.pushed, deleted=r.deleted, fetched=r.fetched,
        removed=r.removed, busy=r.busy, conflicts=r.conflicts, refused=r.refused,
        requests=r.requests) for r in reports])


@route("POST", f"{ONE}/reset", summary="Forget the link's sync state; the next pass "
       "reconciles by UID without duplicating", tag=TAG, response=ResetOut)
def reset_linked_account(call: Call) -> ResetOut:
    link = linked_ops.chosen_link(call.session, call.params["username"],
                                  call.params["link_id"])
    return ResetOut(link=link.id, forgotten=reset_link(call.session, link))


@route("POST", f"{ONE}/dedupe", summary="Remove duplicates on the account (same UID, or "
       "title, start and end), keeping the one the CRM knows", tag=TAG, response=DedupeOut,
       body=DedupeBody, transaction=False)
def dedupe_linked_account(call: Call) -> DedupeOut:
    body: DedupeBody = call.body
    link_id, hrefs = linked_ops.dedupe_link(call.config, call.store, call.params["username"],
                                            call.params["link_id"], dry_run=body.dry_run)
    return DedupeOut(link=link_id, dry_run=body.dry_run, duplicates=hrefs)
