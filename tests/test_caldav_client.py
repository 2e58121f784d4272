"""A real CalDAV client (the ``caldav`` library) against the running gateway."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import caldav
import pytest
import requests
from caldav.elements import ical as ical_props
from caldav_peer import Gateway, Rep, event, new_rep
from sqlalchemy import select

from gateway.entries import EntryDraft, EntryEdit, create_entry, update_entry
from gateway.models import DiaryEntry, EntryParticipant, User

FIXTURE_TIMES = (datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 14, tzinfo=UTC))


_clients: list[caldav.DAVClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client_for(gateway: Gateway, rep: Rep) -> caldav.DAVClient:
    client = caldav.DAVClient(url=gateway.url, username=rep.username, password=rep.password,
                              enable_rfc6764=False, require_tls=False)
    _clients.append(client)
    return client


def calendar(gateway: Gateway, rep: Rep, slug: str) -> caldav.Calendar:
    principal = client_for(gateway, rep).principal()
    for found in principal.calendars():
        if str(found.url).rstrip("/").endswith(f"/{slug}"):
            return found
    raise AssertionError(f"no calendar {slug}")


def entry_by_uid(gateway: Gateway, uid: str) -> DiaryEntry | None:
    with gateway.store.reading() as session:
        entry = session.scalar(select(DiaryEntry).where(DiaryEntry.uid == uid))
        if entry is not None:
            session.expunge(entry)
        return entry


def test_discovery_lists_syncable_types_and_invitations(gateway: Gateway, rep: Rep) -> None:
    well_known = requests.get(gateway.url + ".well-known/caldav", allow_redirects=False,
                              timeout=10)
    assert well_known.status_code in (301, 302, 308) and well_known.headers["Location"] == "/"
    options = requests.options(gateway.url, timeout=10)
    assert "calendar-access" in options.headers["DAV"]
    assert "calendar-schedule" not in options.headers["DAV"]
    principal = client_for(gateway, rep).principal()
    assert str(principal.url).endswith(f"/{rep.username}/")
    found = {str(c.url).rstrip("/").rsplit("/", 1)[1]: c for c in principal.calendars()}
    assert set(found) == {"meeting", "call", "invitations"}
    assert found["meeting"].get_display_name() == "Meeting"
    color = found["call"].get_property(ical_props.CalendarColor())
    assert color == "#4CAF50"


def test_create_edit_move_delete_land_in_the_crm(gateway: Gateway, rep: Rep) -> None:
    meeting = calendar(gateway, rep, "meeting")
    created = meeting.save_event(event("two-way-1@test", "Kick-off"))
    entry = entry_by_uid(gateway, "two-way-1@test")
    assert entry is not None and entry.origin == "calendar" and entry.title == "Kick-off"
    with gateway.store.reading() as session:
        owner = session.scalar(select(User.username).where(User.id == entry.owner_user_id))
    assert owner == rep.username

    created.data = event("two-way-1@test", "Kick-off (moved)", "20261208T090000Z",
                         "20261208T093000Z")
    created.save()
    entry = entry_by_uid(gateway, "two-way-1@test")
    assert entry is not None and entry.title == "Kick-off (moved)"
    assert entry.start_utc == datetime(2026, 12, 8, 9, tzinfo=UTC)

    href = str(created.url)
    target = href.replace("/meeting/", "/call/")
    moved = requests.request("MOVE", href, headers={"Destination": target}, auth=rep.auth,
                             timeout=10)
    assert moved.status_code in (201, 204), moved.text
    entry = entry_by_uid(gateway, "two-way-1@test")
    assert entry is not None
    with gateway.store.reading() as session:
        assert session.get_one(DiaryEntry, entry.id).type.name == "Call"

    gone = requests.delete(target, auth=rep.auth, timeout=10)
    assert gone.status_code in (200, 204)
    entry = entry_by_uid(gateway, "two-way-1@test")
    assert entry is not None and entry.deleted_at is not None


def test_the_stored_object_is_what_the_client_sent_and_etags_are_stable(
    gateway: Gateway, rep: Rep
) -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//macOS 15//EN\r\n"
        "BEGIN:VEVENT\r\nUID:apple-1@test\r\nDTSTAMP:20261201T090000Z\r\n"
        "DTSTART:20261209T090000Z\r\nDTEND:20261209T100000Z\r\nSUMMARY:Pricing\r\n"
        "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\nX-MOZ-LASTACK:20261201T080000Z\r\n"
        "BEGIN:VALARM\r\nX-WR-ALARMUID:AB12\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\n"
        "DESCRIPTION:Reminder\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    url = f"{gateway.url}{rep.username}/meeting/apple-1.ics"
    put = requests.put(url, data=text.encode(), auth=rep.auth, timeout=10,
                       headers={"Content-Type": "text/calendar; charset=utf-8"})
    assert put.status_code == 201, put.text
    got = requests.get(url, auth=rep.auth, timeout=10)
    assert got.text == text
    assert got.headers["ETag"] == put.headers["ETag"]
    listed = requests.request("PROPFIND", url, auth=rep.auth, headers={"Depth": "0"},
                              timeout=10)
    assert put.headers["ETag"] in listed.text
    # Reading never writes: the same bytes and ETag again.
    again = requests.get(url, auth=rep.auth, timeout=10)
    assert again.text == text and again.headers["ETag"] == put.headers["ETag"]


def test_preconditions_and_uid_conflicts(gateway: Gateway, rep: Rep) -> None:
    url = f"{gateway.url}{rep.username}/meeting/pre-1.ics"
    body = event("pre-1@test").encode()
    first = requests.put(url, data=body, auth=rep.auth, headers={"If-None-Match": "*"},
                         timeout=10)
    assert first.status_code == 201
    again = requests.put(url, data=body, auth=rep.auth, headers={"If-None-Match": "*"},
                         timeout=10)
    assert again.status_code == 412
    stale = requests.put(url, data=event("pre-1@test", "Changed").encode(), auth=rep.auth,
                         headers={"If-Match": '"not-the-etag"'}, timeout=10)
    assert stale.status_code == 412
    stale_delete = requests.delete(url, auth=rep.auth, headers={"If-Match": '"nope"'},
                                   timeout=10)
    assert stale_delete.status_code == 412
    ok = requests.put(url, data=event("pre-1@test", "Changed").encode(), auth=rep.auth,
                      headers={"If-Match": first.headers["ETag"]}, timeout=10)
    assert ok.status_code == 204
    clash = requests.put(f"{gateway.url}{rep.username}/meeting/pre-2.ics", data=body,
                         auth=rep.auth, timeout=10)
    assert clash.status_code == 409 and "no-uid-conflict" in clash.text
    entry = entry_by_uid(gateway, "pre-1@test")
    assert entry is not None and entry.title == "Changed"


def test_sync_tokens_report_client_and_crm_changes(gateway: Gateway, rep: Rep) -> None:
    meeting = calendar(gateway, rep, "meeting")
    meeting.save_event(event("sync-1@test", "First"))
    synced = meeting.objects_by_sync_token(load_objects=True)
    token = synced.sync_token
    assert "/" in token and ":" in token  # a URI (Evolution ignores other tokens)
    assert {o.icalendar_component["uid"] for o in synced} == {"sync-1@test"}
    with gateway.store.transaction() as session:
        made = create_entry(session, EntryDraft(
            type_name="Meeting", title="From the CRM", start=FIXTURE_TIMES[0],
            end=FIXTURE_TIMES[0] + timedelta(hours=1), organizer=rep.username))
        crm_uid = made.uid
    changed = meeting.objects_by_sync_token(sync_token=token, load_objects=True)
    assert [o.icalendar_component["uid"] for o in changed] == [crm_uid]
    token = changed.sync_token
    with gateway.store.transaction() as session:
        entry = session.scalar(select(DiaryEntry).where(DiaryEntry.uid == crm_uid))
        assert entry is not None
        update_entry(session, entry, EntryEdit(title="Renamed in the CRM"))
    changed = meeting.objects_by_sync_token(sync_token=token, load_objects=True)
    assert [str(o.icalendar_component["summary"]) for o in changed] == ["Renamed in the CRM"]
    bogus = requests.request(
        "REPORT", str(meeting.url), auth=rep.auth, timeout=10, headers={"Depth": "1"},
        data=b'<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>'
             b"http://crm-gateway.invalid/ns/sync/99-1</sync-token><sync-level>1</sync-level>"
             b"<prop><getetag/></prop></sync-collection>")
    assert bogus.status_code == 403 and "valid-sync-token" in bogus.text


RECURRING = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VEVENT\r
UID:weekly@test\r
DTSTAMP:20261101T090000Z\r
DTSTART;TZID=Europe/Berlin:20261102T100000\r
DTEND;TZID=Europe/Berlin:20261102T110000\r
RRULE:FREQ=WEEKLY;COUNT=10\r
SUMMARY:Weekly review\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:weekly@test\r
DTSTAMP:20261101T090000Z\r
RECURRENCE-ID;TZID=Europe/Berlin:20261207T100000\r
DTSTART;TZID=Europe/Berlin:20261222T100000\r
DTEND;TZID=Europe/Berlin:20261222T110000\r
SUMMARY:Weekly review (moved)\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_time_range_search_expands_a_series_and_its_override(gateway: Gateway, rep: Rep) -> None:
    meeting = calendar(gateway, rep, "meeting")
    meeting.save_event(RECURRING)
    meeting.save_event(event("single@test", "One-off", "20261208T090000Z", "20261208T100000Z"))

    def uids(start: datetime, end: datetime) -> set[str]:
        found = meeting.search(start=start, end=end, event=True, expand=False)
        return {str(o.icalendar_component["uid"]) for o in found}

    # The week of 7 Dec: the series' instance moved away, the one-off is there.
    assert uids(datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC)) == set()
    assert uids(*FIXTURE_TIMES) == {"single@test"}
    # The override landed on 22 Dec, beside the regular instance of 21 Dec.
    assert uids(datetime(2026, 12, 22, tzinfo=UTC),
                datetime(2026, 12, 23, tzinfo=UTC)) == {"weekly@test"}
    assert uids(datetime(2026, 11, 9, tzinfo=UTC),
                datetime(2026, 11, 10, tzinfo=UTC)) == {"weekly@test"}
    # After the tenth instance (4 Jan 2027) nothing.
    assert uids(datetime(2027, 1, 11, tzinfo=UTC), datetime(2027, 1, 18, tzinfo=UTC)) == set()
    entry = entry_by_uid(gateway, "weekly@test")
    assert entry is not None and entry.rrule == "FREQ=WEEKLY;COUNT=10" and entry.has_overrides


def test_invitations_are_read_only_and_attendees_are_matched(gateway: Gateway, rep: Rep) -> None:
    guest = new_rep(gateway.store)
    text = event("invite-1@test", "Demo for Globex").replace(
        "END:VEVENT",
        f"ORGANIZER;CN=Organiser:mailto:{rep.email}\r\n"
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{guest.email}\r\n"
        "ATTENDEE;CN=Someone:mailto:someone@outside.example\r\nEND:VEVENT")
    calendar(gateway, rep, "meeting").save_event(text)
    with gateway.store.reading() as session:
        kinds = sorted((p.email, p.user_id is not None, p.partstat) for p in session.scalars(
            select(EntryParticipant).join(DiaryEntry).where(DiaryEntry.uid == "invite-1@test")))
    assert kinds == [(guest.email, True, "NEEDS-ACTION"),
                     ("someone@outside.example", False, "NEEDS-ACTION")]
    invitations = calendar(gateway, guest, "invitations")
    shown = invitations.objects_by_sync_token(load_objects=True)
    assert [str(o.icalendar_component["uid"]) for o in shown] == ["invite-1@test"]
    href = str(next(iter(shown)).url)
    refused = requests.put(href, data=text.encode(), auth=guest.auth, timeout=10)
    assert refused.status_code == 403 and "need-privileges" in refused.text
    privileges = requests.request(
        "PROPFIND", str(invitations.url), auth=guest.auth, headers={"Depth": "0"}, timeout=10,
        data=b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop>'
             b"<current-user-privilege-set/></prop></propfind>")
    assert "<write" not in privileges.text and "read" in privileges.text


def test_external_organiser_is_read_only_on_the_crm_side(gateway: Gateway, rep: Rep) -> None:
    text = event("ext-1@test", "Customer's meeting").replace(
        "END:VEVENT", "ORGANIZER:mailto:boss@customer.example\r\n"
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{rep.email}\r\nEND:VEVENT")
    calendar(gateway, rep, "meeting").save_event(text)
    entry = entry_by_uid(gateway, "ext-1@test")
    assert entry is not None
    assert entry.organizer_user_id is None and entry.organizer_email == "boss@customer.example"
    with gateway.store.reading() as session:
        partstats = [p.partstat for p in session.get_one(DiaryEntry, entry.id).participants]
    assert partstats == ["NEEDS-ACTION"]  # the rep's own, not yet answered: still recorded


@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE", "PROPFIND", "PROPPATCH", "REPORT",
                                  "MKCALENDAR", "MOVE"])
def test_no_access_to_another_users_calendars(gateway: Gateway, rep: Rep, verb: str) -> None:
    other = new_rep(gateway.store)
    calendar(gateway, other, "meeting").save_event(event(f"private-{verb}@test", "Private"))
    target = f"{gateway.url}{other.username}/meeting/"
    url = target + f"private-{verb}.ics" if verb in ("GET", "PUT", "DELETE", "MOVE") else target
    headers = {"Depth": "1", "Destination": f"{gateway.url}{rep.username}/meeting/x.ics"}
    answer = requests.request(verb, url, auth=rep.auth, headers=headers, timeout=10,
                              data=event(f"private-{verb}@test").encode())
    assert answer.status_code in (403, 404), (verb, answer.status_code)
    assert other.username not in answer.text
    # And the owner still has it, unchanged.
    entry = entry_by_uid(gateway, f"private-{verb}@test")
    assert entry is not None and entry.deleted_at is None and entry.title == "Private"
    listing = requests.request("PROPFIND", gateway.url, auth=rep.auth, headers={"Depth": "1"},
                               timeout=10)
    assert other.username not in listing.text


def test_calendars_are_provisioned_and_cosmetics_kept_per_user(
    gateway: Gateway, rep: Rep
) -> None:
    made = requests.request("MKCALENDAR", f"{gateway.url}{rep.username}/mine/", auth=rep.auth,
                            timeout=10)
    assert made.status_code == 403 and "need-privileges" in made.text
    for slug in ("meeting", "invitations"):
        patch = requests.request(
            "PROPPATCH", f"{gateway.url}{rep.username}/{slug}/", auth=rep.auth, timeout=10,
            data=b'<?xml version="1.0"?><propertyupdate xmlns="DAV:" '
                 b'xmlns:I="http://apple.com/ns/ical/"><set><prop>'
                 b"<I:calendar-color>#FF2968FF</I:calendar-color>"
                 b"<I:calendar-order>3</I:calendar-order></prop></set></propertyupdate>")
        assert patch.status_code == 207 and "200 OK" in patch.text, patch.text
        colour = calendar(gateway, rep, slug).get_property(ical_props.CalendarColor())
        assert colour == "#FF2968FF"
    other = new_rep(gateway.store)
    assert calendar(gateway, other, "meeting").get_property(
        ical_props.CalendarColor()) == "#3A87AD"


def test_diary_sync_off_fails_the_login_with_a_reason_in_the_log(gateway: Gateway) -> None:
    rep = new_rep(gateway.store, diary_sync=False)
    answer = requests.request("PROPFIND", f"{gateway.url}{rep.username}/", auth=rep.auth,
                              timeout=10)
    assert answer.status_code == 401
    assert f"diary sync is off for user {rep.username!r}" in gateway.log()


def test_sync_reports_deletions_as_404_and_getctag_follows_changes(
    gateway: Gateway, rep: Rep
) -> None:
    url = f"{gateway.url}{rep.username}/meeting/"
    requests.put(url + "gone.ics", data=event("gone@test").encode(), auth=rep.auth,
                 timeout=10).raise_for_status()
    ctag_query = (b'<?xml version="1.0"?><propfind xmlns="DAV:" '
                  b'xmlns:CS="http://calendarserver.org/ns/"><prop><CS:getctag/></prop>'
                  b"</propfind>")

    def ctag() -> str:
        answer = requests.request("PROPFIND", url, auth=rep.auth, headers={"Depth": "0"},
                                  data=ctag_query, timeout=10)
        return answer.text.split("getctag>")[1]

    body = (b'<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>%s</sync-token>'
            b"<sync-level>1</sync-level><prop><getetag/></prop></sync-collection>")
    first = requests.request("REPORT", url, auth=rep.auth, data=body % b"", timeout=10)
    token = first.text.split("<sync-token>")[1].split("</sync-token>")[0].encode()
    before = ctag()
    assert ctag() == before  # reading changes nothing
    requests.delete(url + "gone.ics", auth=rep.auth, timeout=10).raise_for_status()
    assert ctag() != before
    changes = requests.request("REPORT", url, auth=rep.auth, data=body % token, timeout=10)
    assert changes.status_code == 207
    response = changes.text.split("<response>")[1]
    assert "gone.ics" in response and "404" in response


def test_http_keep_alive_serves_several_requests_on_one_connection(
    gateway: Gateway, rep: Rep
) -> None:
    import socket

    host, port = gateway.url.split("//")[1].rstrip("/").split(":")
    auth = requests.auth._basic_auth_str(*rep.auth)  # type: ignore[attr-defined]
    request = (f"PROPFIND /{rep.username}/ HTTP/1.1\r\nHost: {host}\r\nDepth: 0\r\n"
               f"Authorization: {auth}\r\nContent-Length: 0\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(request + request)  # pipelined on one connection
        received = b""
        while received.count(b"HTTP/1.1 207") < 2:
            data = raw.recv(65536)
            assert data, received
            received += data
    assert received.count(b"HTTP/1.1 207") == 2


def test_a_client_round_trip_keeps_alarms_and_x_properties_and_the_etag(
    gateway: Gateway, rep: Rep
) -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mozilla.org/NONSGML Mozilla Calendar "
        "V1.1//EN\r\nBEGIN:VEVENT\r\nUID:moz-1@test\r\nDTSTAMP:20261201T090000Z\r\n"
        "DTSTART:20261210T090000Z\r\nDTEND:20261210T100000Z\r\nSUMMARY:Review\r\n"
        "X-MOZ-LASTACK:20261201T080000Z\r\nX-MOZ-SNOOZE-TIME:20261210T084500Z\r\n"
        "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\n"
        "TRIGGER:-PT15M\r\nDESCRIPTION:Review\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    meeting = calendar(gateway, rep, "meeting")
    saved = meeting.save_event(text)
    fetched = meeting.event_by_url(saved.url)
    fetched.load()
    # The library re-serialises before sending; the server keeps exactly what it sent.
    assert fetched.data == saved.data
    for kept in ("X-MOZ-LASTACK", "X-MOZ-SNOOZE-TIME", "X-APPLE-TRAVEL", "BEGIN:VALARM"):
        assert kept in fetched.data
    etag = requests.head(str(saved.url), auth=rep.auth, timeout=10).headers["ETag"]
    again = meeting.objects_by_sync_token(load_objects=True)
    assert any("X-MOZ-SNOOZE-TIME" in o.data for o in again)
    assert requests.head(str(saved.url), auth=rep.auth, timeout=10).headers["ETag"] == etag


def test_updating_an_event_with_attendees_keeps_them_in_step(gateway: Gateway, rep: Rep) -> None:
    url = f"{gateway.url}{rep.username}/meeting/attendees.ics"
    first = event("attendees@test", "Demo").replace(
        "END:VEVENT", "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:hank@customer.example\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:mindy@customer.example\r\nEND:VEVENT")
    assert requests.put(url, data=first.encode(), auth=rep.auth, timeout=10).status_code == 201
    # Hank accepted, Mindy was dropped, Frank was added.
    second = event("attendees@test", "Demo").replace(
        "END:VEVENT", "ATTENDEE;PARTSTAT=ACCEPTED:mailto:hank@customer.example\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:frank@customer.example\r\nEND:VEVENT")
    updated = requests.put(url, data=second.encode(), auth=rep.auth, timeout=10)
    assert updated.status_code == 204, updated.text
    with gateway.store.reading() as session:
        rows = session.scalars(select(EntryParticipant).join(DiaryEntry).where(
            DiaryEntry.uid == "attendees@test"))
        assert sorted((p.email, p.partstat) for p in rows) == [
            ("frank@customer.example", "NEEDS-ACTION"), ("hank@customer.example", "ACCEPTED")]


def put_event(gateway: Gateway, rep: Rep, name: str, body: str) -> requests.Response:
    return requests.put(f"{gateway.url}{rep.username}/meeting/{name}", data=body.encode(),
                        auth=rep.auth, timeout=10,
                        headers={"Content-Type": "text/calendar; charset=utf-8"})


def title_and_object(gateway: Gateway, uid: str) -> tuple[str, str] | None:
    entry = entry_by_uid(gateway, uid)
    return None if entry is None else (entry.title, entry.ical)


def test_oversize_bodies_get_413_declared_or_chunked(gateway: Gateway, rep: Rep) -> None:
    assert put_event(gateway, rep, "big.ics", event("big@test", "Small")).status_code == 201
    huge = event("big@test", "x" * 300_000)
    answer = put_event(gateway, rep, "big.ics", huge)
    assert answer.status_code == 413

    def chunks() -> object:
        for _ in range(40):
            yield b"X" * 10_000

    host, port = gateway.url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        auth = requests.auth._basic_auth_str(*rep.auth)  # type: ignore[attr-defined]
        raw.sendall(f"PUT /{rep.username}/meeting/big.ics HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        reply = b""
        try:
            for chunk in chunks():  # type: ignore[attr-defined]
                raw.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server closed the connection after answering
        while True:
            data = raw.recv(4096)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 413")
    assert title_and_object(gateway, "big@test") == ("Small", event("big@test", "Small"))
