"""Logged mail over the API (read-only: writes are 405), attachments, the inbound queue."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import unquote

from api_peers import Api, problem, unique
from caldav_peer import Gateway

from gateway import inbound_queue
from gateway.activities import record_email
from gateway.clock import utcnow
from gateway.logging_policy import FREE_MAIL_DOMAINS, LoggingPolicy
from gateway.mail.parse import parse_message
from gateway.users import create_user

POLICY = LoggingPolicy(
    logging_address="log@crm.example", internal_domains=frozenset({"crm.example"}),
    never_log=frozenset(), auto_create_contacts=True, free_mail_domains=FREE_MAIL_DOMAINS)
PDF = b"%PDF-1.4 a quote\n"


def logged_mail(gateway: Gateway) -> tuple[str, str]:
    """A rep's mail to a customer with a PDF, logged as the BCC path does: (rep, customer)."""
    rep, customer = unique("rep"), f"hank@{unique('globex')}.example"
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = f"{rep}@crm.example", customer, "Quote"
    mail["Message-ID"] = f"<{rep}@crm.example>"
    mail["Date"] = "Mon, 07 Dec 2026 09:00:00 +0000"
    mail.set_content("The quote, attached.")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename="Angebot ä.pdf")
    raw = mail.as_bytes()
    with gateway.store.transaction() as session:
        user = create_user(session, rep, f"{rep}@crm.example")
        record_email(session, parse_message(raw), raw=raw, user=user, source="bcc",
                     policy=POLICY)
    return rep, customer


def test_logged_mail_is_listed_read_and_its_attachment_downloaded(api_gateway: Gateway,
                                                                  api: Api) -> None:
    rep, customer = logged_mail(api_gateway)
    [item] = api.get(f"/activities?user={rep}").json()["items"]
    assert item["subject"] == "Quote" and item["direction"] == "sent"
    assert item["links"] is None
    one = api.get(f"/activities/{item['id']}").json()
    assert one["links"]["users"] == [rep] and one["links"]["contacts"] == [customer]
    [attachment] = one["attachments"]
    download = api.get(f"/activities/{item['id']}/attachments/{attachment['id']}")
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["Content-Type"] == "application/pdf"
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "Angebot ä.pdf"
    problem(api.get(f"/activities/{item['id']}/attachments/999999"), 404, "not-found")
    dated = api.get(f"/activities?user={rep}&since=2026-12-08T00:00:00Z").json()["items"]
    assert dated == []


def test_activities_refuse_every_write_with_405(api_gateway: Gateway, api: Api) -> None:
    rep, _ = logged_mail(api_gateway)
    [item] = api.get(f"/activities?user={rep}").json()["items"]
    refused = problem(api.post("/activities", {"subject": "forged"}), 405,
                      "method-not-allowed")
    assert "GET" in refused["detail"]
    for method in ("PUT", "PATCH", "DELETE"):
        answer = api.call(method, f"/activities/{item['id']}", json={"subject": "x"})
        problem(answer, 405, "method-not-allowed")
        assert "GET" in answer.headers["Allow"]
    assert api.get(f"/activities/{item['id']}").json()["subject"] == "Quote"


def test_activity_filters_take_one_target(api: Api) -> None:
    problem(api.get("/activities?user=nobody-here"), 404, "not-found")
    problem(api.get("/activities?contact_id=1&account_id=1"), 422, "invalid")
    problem(api.get("/activities?since=yesterday"), 422, "validation")


def test_the_inbound_queue_is_listed_shown_and_a_failed_message_retried(
        api_gateway: Gateway, api: Api) -> None:
    with api_gateway.store.transaction() as session:
        sender = create_user(session, unique("rep"), "sender@crm.example")
        [message_id] = inbound_queue.enqueue(
            session, raw=b"Subject: x\r\n\r\nbody\r\n", user_ids=[sender.id],
            peer="127.0.0.1", mail_from="sender@crm.example", rcpt_tos=["log@crm.example"])
    queued = [m["id"] for m in api.get("/inbound?status=queued&limit=200").json()["items"]]
    assert message_id in queued
    shown = api.get(f"/inbound/{message_id}").json()
    assert shown["status"] == "queued" and shown["rcpt_tos"] == ["log@crm.example"]
    refused = problem(api.post(f"/inbound/{message_id}/retry"), 409, "conflict")
    assert "already queued" in refused["detail"]
    with api_gateway.store.transaction() as session:
        claim = inbound_queue.claim_next(session, utcnow(), lease_seconds=60, max_attempts=1)
        assert claim is not None
        inbound_queue.record_failure(session, claim, "boom", utcnow(), max_attempts=1,
                                     retry_delay=1)
    failed = [m["id"] for m in api.get("/inbound?status=failed").json()["items"]]
    assert claim.id in failed
    assert api.get(f"/inbound/{claim.id}").json()["last_error"] == "boom"
    retried = api.post(f"/inbound/{claim.id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    problem(api.get("/inbound?status=lost"), 422, "validation")
