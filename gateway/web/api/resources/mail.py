"""``/users/<name>/mail-account``: a rep's mailbox polled over IMAP, and its connectivity
test. The secret is stored encrypted and never answered."""

from __future__ import annotations

from typing import Any

from gateway import mail_probe
from gateway.mail_accounts import (
    describe,
    find_account,
    get_account,
    pause_account,
    remove_account,
    resolve_settings,
    resume_account,
    set_account,
)
from gateway.secrets import SecretBox
from gateway.users import get_user
from gateway.web.api.models import MailAccountOut, MailAccountSet, MailTestOut, ProbeStepOut
from gateway.web.api.routing import Call, Reply, route

TAG = "mail-accounts"
ACCOUNT = "/users/<username>/mail-account"


def account_out(call: Call) -> MailAccountOut:
    user = get_user(call.session, call.params["username"])
    data: dict[str, Any] = describe(call.session, user, get_account(call.session, user))
    data.pop("lease_owner", None)
    data.pop("lease_until", None)
    return MailAccountOut.model_validate(data)


@route("GET", ACCOUNT, summary="Get a user's mailbox settings and polling state", tag=TAG,
       response=MailAccountOut)
def get_mail_account(call: Call) -> MailAccountOut:
    return account_out(call)


@route("PUT", ACCOUNT, summary="Connect or change a user's mailbox (provider presets)",
       tag=TAG, response=MailAccountOut, body=MailAccountSet)
def set_mail_account(call: Call) -> Reply:
    body: MailAccountSet = call.body
    settings = resolve_settings(provider=body.provider, host=body.host, port=body.port,
                                tls=body.tls, login=body.login, password=body.password,
                                folders=body.folders)
    user = get_user(call.session, call.params["username"])
    created = find_account(call.session, user) is None
    set_account(call.session, user, settings, SecretBox(call.config.get("security",
                                                                        "secret_key")))
    return Reply(account_out(call), status=201 if created else 200)


@route("DELETE", ACCOUNT, summary="Disconnect a user's mailbox (logged mail stays)", tag=TAG,
       response=None, status=204)
def remove_mail_account(call: Call) -> Reply:
    remove_account(call.session, get_user(call.session, call.params["username"]))
    return Reply(status=204)


@route("POST", f"{ACCOUNT}/pause", summary="Stop polling a user's mailbox", tag=TAG,
       response=MailAccountOut)
def pause_mail_account(call: Call) -> MailAccountOut:
    pause_account(call.session, get_user(call.session, call.params["username"]))
    return account_out(call)


@route("POST", f"{ACCOUNT}/resume", summary="Poll a paused mailbox again", tag=TAG,
       response=MailAccountOut)
def resume_mail_account(call: Call) -> MailAccountOut:
    resume_account(call.session, get_user(call.session, call.params["username"]))
    return account_out(call)


@route("POST", f"{ACCOUNT}/test", summary="Test the connection step by step (DNS, TCP, TLS, "
       "login, folders); a refused login pauses polling", tag=TAG, response=MailTestOut,
       transaction=False)
def test_mail_account(call: Call) -> MailTestOut:
    outcome = mail_probe.test_mailbox(call.store, call.params["username"])
    return MailTestOut(ok=outcome.ok, paused=outcome.paused, steps=[
        ProbeStepOut(name=s.name, status=s.status, detail=s.detail)  # type: ignore[arg-type]
        for s in outcome.steps])
