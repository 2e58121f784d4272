"""``/diary-types``, ``/accounts`` (with domains) and ``/contacts`` (with emails, account)."""

from __future__ import annotations

from gateway.contacts import (
    create_account,
    create_contact,
    get_account_by_id,
    get_contact,
    page_accounts,
    page_contacts,
)
from gateway.diary_types import create_type, get_type_by_id, page_types, update_type
from gateway.models import Account, Contact, DiaryType
from gateway.publication import publish_type
from gateway.web.api.fields import encode_cursor
from gateway.web.api.models import (
    AccountCreate,
    AccountOut,
    ContactCreate,
    ContactOut,
    ContactQuery,
    DiaryTypeCreate,
    DiaryTypeOut,
    DiaryTypePatch,
    Page,
    PageQuery,
)
from gateway.web.api.routing import Call, Reply, entity_path, route

TYPE = f"/diary-types/{entity_path('type_id')}"
ACCOUNT = f"/accounts/{entity_path('account_id')}"
CONTACT = f"/contacts/{entity_path('contact_id')}"
CREATED = {"status": 201, "request_headers": ("Idempotency-Key",),
           "response_headers": ("Location",)}


def type_out(row: DiaryType) -> DiaryTypeOut:
    return DiaryTypeOut(id=row.id, name=row.name, slug=row.slug, color=row.color,
                        syncable=row.syncable, kind="task" if row.kind == "task" else "event")


def account_out(row: Account) -> AccountOut:
    return AccountOut(id=row.id, name=row.name, domains=[d.domain for d in row.domains],
                      created_at=row.created_at)


def contact_out(row: Contact) -> ContactOut:
    return ContactOut(id=row.id, name=row.name, emails=[e.email for e in row.emails],
                      account_id=row.account_id,
                      account=row.account.name if row.account else None,
                      created_at=row.created_at)


@route("GET", "/diary-types", summary="List diary types", tag="diary-types",
       response=Page[DiaryTypeOut], query=PageQuery)
def list_diary_types(call: Call) -> Page[DiaryTypeOut]:
    found = page_types(call.session, limit=call.query.limit, after=call.query.after)
    return Page[DiaryTypeOut](items=[type_out(t) for t in found.items],
                              next_cursor=encode_cursor(found.next_after))


@route("POST", "/diary-types", summary="Create a diary type (syncable: published as a "
       "calendar)", tag="diary-types", response=DiaryTypeOut, body=DiaryTypeCreate, **CREATED)
def create_diary_type(call: Call) -> Reply:
    body: DiaryTypeCreate = call.body
    row = create_type(call.session, body.name, syncable=body.syncable, color=body.color,
                      kind=body.kind)
    return Reply(type_out(row), headers={"Location": f"/api/v1/diary-types/{row.id}"})


@route("GET", TYPE, summary="Get a diary type", tag="diary-types", response=DiaryTypeOut)
def get_diary_type(call: Call) -> DiaryTypeOut:
    return type_out(get_type_by_id(call.session, call.params["type_id"]))


@route("PATCH", TYPE, summary="Change a diary type (the calendar's URL stays on rename)",
       tag="diary-types", response=DiaryTypeOut, body=DiaryTypePatch)
def update_diary_type(call: Call) -> DiaryTypeOut:
    body: DiaryTypePatch = call.body
    row = get_type_by_id(call.session, call.params["type_id"])
    if update_type(call.session, row, rename=body.name, color=body.color,
                   syncable=body.syncable, kind=body.kind):
        publish_type(call.session, row)
    return type_out(row)


@route("GET", "/accounts", summary="List accounts with their domains", tag="accounts",
       response=Page[AccountOut], query=PageQuery)
def list_accounts(call: Call) -> Page[AccountOut]:
    found = page_accounts(call.session, limit=call.query.limit, after=call.query.after)
    return Page[AccountOut](items=[account_out(a) for a in found.items],
                            next_cursor=encode_cursor(found.next_after))


@route("POST", "/accounts", summary="Create an account with its email domains",
       tag="accounts", response=AccountOut, body=AccountCreate, **CREATED)
def create_account_(call: Call) -> Reply:
    body: AccountCreate = call.body
    row = create_account(call.session, body.name, list(body.domains))
    call.session.refresh(row, ["domains"])
    return Reply(account_out(row), headers={"Location": f"/api/v1/accounts/{row.id}"})


@route("GET", ACCOUNT, summary="Get an account", tag="accounts", response=AccountOut)
def get_account_(call: Call) -> AccountOut:
    return account_out(get_account_by_id(call.session, call.params["account_id"]))


@route("GET", "/contacts", summary="List contacts with their emails and account",
       tag="contacts", response=Page[ContactOut], query=ContactQuery)
def list_contacts(call: Call) -> Page[ContactOut]:
    query: ContactQuery = call.query
    found = page_contacts(call.session, account_id=query.account_id, limit=query.limit,
                          after=query.after)
    return Page[ContactOut](items=[contact_out(c) for c in found.items],
                            next_cursor=encode_cursor(found.next_after))


@route("POST", "/contacts", summary="Create a contact (its account: the one given, or the "
       "account of the email's domain)", tag="contacts", response=ContactOut,
       body=ContactCreate, **CREATED)
def create_contact_(call: Call) -> Reply:
    body: ContactCreate = call.body
    account = (get_account_by_id(call.session, body.account_id)
               if body.account_id is not None else None)
    row = create_contact(call.session, body.email, name=body.name, account=account)
    call.session.refresh(row, ["emails", "account"])
    return Reply(contact_out(row), headers={"Location": f"/api/v1/contacts/{row.id}"})


@route("GET", CONTACT, summary="Get a contact", tag="contacts", response=ContactOut)
def get_contact_(call: Call) -> ContactOut:
    return contact_out(get_contact(call.session, call.params["contact_id"]))
