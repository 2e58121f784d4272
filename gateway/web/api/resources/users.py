"""``/users``: CRM users, their app passwords and BCC logging address."""

from __future__ import annotations

from pydantic import BaseModel

from gateway import app_passwords
from gateway.availability import WorkingHours, set_working_hours
from gateway.bcc_addresses import bcc_address, user_address
from gateway.errors import Conflict, Invalid
from gateway.models import AppPassword, User
from gateway.publication import publish_user
from gateway.users import UserChanges, create_user, get_user, page_users, update_user
from gateway.web.api.fields import encode_cursor
from gateway.web.api.models import (
    AppPasswordCreate,
    AppPasswordIssued,
    AppPasswordOut,
    BccAddressOut,
    Page,
    PageQuery,
    UserCreate,
    UserOut,
    UserPatch,
)
from gateway.web.api.problems import Problem
from gateway.web.api.routing import Call, Reply, entity_path, route

TAG = "users"
USER = "/users/<username>"


class AppPasswordList(BaseModel):
    items: list[AppPasswordOut]


def user_out(user: User) -> UserOut:
    return UserOut(id=user.id, username=user.username, email=user.email, name=user.name,
                   admin=user.is_admin, email_sync=user.email_sync,
                   diary_sync=user.diary_sync, notify_client_adds=user.notify_client_adds,
                   working_hours=str(WorkingHours.from_json(user.working_hours))
                   if user.working_hours else None,
                   created_at=user.created_at)


def password_out(row: AppPassword) -> AppPasswordOut:
    return AppPasswordOut(id=row.id, label=row.label, created_at=row.created_at,
                          last_used_at=row.last_used_at, revoked_at=row.revoked_at)


@route("GET", "/users", summary="List users", tag=TAG, response=Page[UserOut],
       query=PageQuery)
def list_users(call: Call) -> Page[UserOut]:
    found = page_users(call.session, limit=call.query.limit, after=call.query.after)
    return Page[UserOut](items=[user_out(u) for u in found.items],
                         next_cursor=encode_cursor(found.next_after))


@route("POST", "/users", summary="Create a user", tag=TAG, response=UserOut, status=201,
       body=UserCreate, request_headers=("Idempotency-Key",), response_headers=("Location",))
def create_user_(call: Call) -> Reply:
    body: UserCreate = call.body
    user = create_user(call.session, body.username, body.email, name=body.name,
                       admin=body.admin)
    return Reply(user_out(user), headers={"Location": f"/api/v1/users/{user.username}"})


@route("GET", USER, summary="Get a user", tag=TAG, response=UserOut)
def get_user_(call: Call) -> UserOut:
    return user_out(get_user(call.session, call.params["username"]))


@route("PATCH", USER, summary="Change a user (email sync, diary sync: eligibility is a 422 "
       "naming the rule)", tag=TAG, response=UserOut, body=UserPatch)
def update_user_(call: Call) -> UserOut:
    body: UserPatch = call.body
    user = get_user(call.session, call.params["username"])
    changes = UserChanges(email=body.email, name=body.name, email_sync=body.email_sync,
                          diary_sync=body.diary_sync,
                          notify_client_adds=body.notify_client_adds)
    try:
        republish = update_user(call.session, user, changes)
    except (Invalid, Conflict) as exc:  # the diary-sync eligibility rules
        raise Problem("invalid", str(exc)) from None
    if body.working_hours is not None:
        set_working_hours(call.session, user, body.working_hours.strip() or None)
    if republish:
        publish_user(call.session, user)
    return user_out(user)


@route("GET", f"{USER}/app-passwords", summary="List a user's app passwords (never the "
       "passwords)", tag=TAG, response=AppPasswordList)
def list_app_passwords(call: Call) -> AppPasswordList:
    user = get_user(call.session, call.params["username"])
    return AppPasswordList(items=[password_out(p) for p in user.app_passwords])


@route("POST", f"{USER}/app-passwords", summary="Issue an app password (shown only in this "
       "answer)", tag=TAG, response=AppPasswordIssued, status=201, body=AppPasswordCreate,
       request_headers=("Idempotency-Key",))
def create_app_password(call: Call) -> AppPasswordIssued:
    user = get_user(call.session, call.params["username"])
    issued = app_passwords.issue(call.session, user, call.body.label)
    return AppPasswordIssued(id=issued.id, label=issued.label, password=issued.password)


@route("DELETE", f"{USER}/app-passwords/{entity_path('password_id')}",
       summary="Revoke an app password (refused from the next request on)", tag=TAG,
       response=AppPasswordOut)
def revoke_app_password(call: Call) -> AppPasswordOut:
    user = get_user(call.session, call.params["username"])
    return password_out(app_passwords.revoke(call.session, user, call.params["password_id"]))


@route("GET", f"{USER}/bcc-address", summary="Get the user's secret BCC logging address",
       tag=TAG, response=BccAddressOut)
def get_bcc_address(call: Call) -> BccAddressOut:
    user = get_user(call.session, call.params["username"])
    if not user.bcc_token:
        raise Problem("not-found", f"user {user.username!r} has no BCC address yet: rotate")
    address = user_address(user, call.config.get("smtp", "logging_address"))
    return BccAddressOut(username=user.username, address=address)


@route("POST", f"{USER}/bcc-address/rotate", summary="Issue a new BCC address; the old one "
       "is refused from then on", tag=TAG, response=BccAddressOut)
def rotate_bcc_address(call: Call) -> BccAddressOut:
    user = get_user(call.session, call.params["username"])
    address = bcc_address(call.session, user, call.config.get("smtp", "logging_address"),
                          rotate=True)
    return BccAddressOut(username=user.username, address=address)
