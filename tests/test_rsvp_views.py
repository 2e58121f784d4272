"""An attendee's answer seen where people look, on a real ``serve``: a CalDAV client (the
``caldav`` library), the API with ``entry.updated`` in the outbox, and the entry page."""

from __future__ import annotations

import re

import caldav
import requests
from api_peers import Api
from caldav_peer import Gateway, new_rep
from imip import imip_reply
from sqlalchemy import select

from gateway import web_logins
from gateway.activities import record_email
from gateway.logging_policy import FREE_MAIL_DOMAINS, LoggingPolicy
from gateway.mail.parse import parse_message
from gateway.models import WebhookEvent
from gateway.secrets import SecretBox
from gateway.users import get_user
from gateway.webhooks import add_endpoint

HANK = "hank@globex.example"
POLICY = LoggingPolicy(logging_address="log@acme.example",
                       internal_domains=frozenset({"acme.example"}), never_log=frozenset(),
                       auto_create_contacts=True, free_mail_domains=FREE_MAIL_DOMAINS)


def test_an_answer_shows_in_caldav_the_api_the_outbox_and_the_page(
        api_gateway: Gateway, api: Api) -> None:
    rep = new_rep(api_gateway.store)
    with api_gateway.store.transaction() as session:
        add_endpoint(session, "https://crm.example/hooks", ["entry.updated"],
                     box=SecretBox("the test suite's secret key"))
        web_logins.set_password(session, get_user(session, rep.username), "a web password")
    made = api.post("/entries", {
        "type": "Meeting", "title": "Pricing", "organizer": rep.username,
        "start": "2026-12-09T09:00:00Z", "end": "2026-12-09T10:00:00Z", "attendees": [HANK]})
    assert made.status_code == 201, made.text
    entry = made.json()

    raw = imip_reply(HANK, rep.email, entry["uid"], "DECLINED",
                     message_id=f"no-{entry['id']}@globex.example")
    with api_gateway.store.transaction() as session:
        outcome = record_email(session, parse_message(raw), raw=raw,
                               user=get_user(session, rep.username), source="bcc",
                               policy=POLICY)
    assert outcome.status == "logged"
    assert f"reply applied: {HANK} DECLINED on entry {entry['id']}" in outcome.reason

    with caldav.DAVClient(url=api_gateway.url, username=rep.username, password=rep.password,
                          enable_rfc6764=False, require_tls=False) as client:
        [calendar] = [c for c in client.principal().calendars()
                      if str(c.url).rstrip("/").endswith("/meeting")]
        [event] = [e for e in calendar.events()
                   if str(e.icalendar_component["UID"]) == entry["uid"]]
        attendee = event.icalendar_component["ATTENDEE"]
        assert str(attendee).lower() == f"mailto:{HANK}"
        assert attendee.params["PARTSTAT"] == "DECLINED"

    now = api.get(f"/entries/{entry['id']}").json()
    assert [(p["email"], p["partstat"]) for p in now["participants"]] == [(HANK, "DECLINED")]
    assert now["etag"] != entry["etag"]
    with api_gateway.store.reading() as session:
        [event_row] = [e for e in session.scalars(select(WebhookEvent).where(
            WebhookEvent.type == "entry.updated")) if e.payload["data"]["id"] == entry["id"]]
        assert event_row.payload["data"]["origin"] == "mail"

    with requests.Session() as browser:
        csrf = re.search(r'name="csrf" value="([^"]+)"',
                         browser.get(api_gateway.url + "account/", timeout=10).text)
        assert csrf is not None
        browser.post(api_gateway.url + "account/sign-in", timeout=10, data={
            "login": rep.username, "password": "a web password", "csrf": csrf.group(1)})
        page = browser.get(f"{api_gateway.url}account/entries/{entry['id']}", timeout=10)
    assert page.status_code == 200
    assert f'<td>{HANK}</td><td data-partstat="DECLINED">declined</td>' in page.text
