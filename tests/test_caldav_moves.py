"""Moving an event between calendars the way clients do it, against the running gateway.

Thunderbird PUTs the event into the target calendar, then DELETEs it from the source; DAVx5
syncs each calendar on its own, so the DELETE may come first or the PUT. Either way the CRM
entry survives with its id, participants and history and takes the target's type; the old
resource is a 404 and a tombstone in its calendar's sync-collection report.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from caldav_peer import Gateway, Rep, event, new_rep
from sqlalchemy import select

from gateway.entries import EntryDraft, create_entry
from gateway.models import DiaryEntry
from gateway.users import get_user

DAV = "{DAV:}"
SYNC = (b'<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
        b"<D:sync-token>%s</D:sync-token><D:sync-level>1</D:sync-level>"
        b"<D:prop><D:getetag/></D:prop></D:sync-collection>")


@dataclass(frozen=True)
class Snapshot:
    id: int
    type: str
    deleted: bool
    origin: str
    created_at: datetime
    revision: int
    participants: list[tuple[str, str]]


def snapshot(gateway: Gateway, entry_id: int) -> Snapshot:
    with gateway.store.reading() as session:
        entry = session.get_one(DiaryEntry, entry_id)
        return Snapshot(entry.id, entry.type.name, entry.deleted_at is not None, entry.origin,
                        entry.created_at, entry.revision,
                        sorted((p.email, p.partstat) for p in entry.participants))


def entry_ids(gateway: Gateway, uid: str) -> list[int]:
    with gateway.store.reading() as session:
        return list(session.scalars(select(DiaryEntry.id).where(DiaryEntry.uid == uid)))


def sync(gateway: Gateway, rep: Rep, slug: str, token: str = "") -> tuple[str, dict[str, int]]:
    """A sync-collection REPORT: the new token and each reported resource's status."""
    answer = requests.request(
        "REPORT", f"{gateway.url}{rep.username}/{slug}/", auth=rep.auth, timeout=30,
        headers={"Depth": "1", "Content-Type": "application/xml"},
        data=SYNC % token.encode())
    assert answer.status_code == 207, answer.text
    root = ET.fromstring(answer.content)
    seen: dict[str, int] = {}
    for response in root.iter(f"{DAV}response"):
        href = (response.findtext(f"{DAV}href") or "").rsplit("/", 1)[1]
        status = response.findtext(f"{DAV}status") or response.findtext(
            f"{DAV}propstat/{DAV}status") or ""
        seen[href] = int(status.split()[1])
    return root.findtext(f"{DAV}sync-token") or "", seen


def invited(rep: Rep, uid: str, summary: str = "Pricing review") -> str:
    """The rep's event with an outside attendee who has answered (a participant to keep)."""
    return event(uid, summary).replace(
        "END:VEVENT", f"ORGANIZER:mailto:{rep.email}\r\n"
        "ATTENDEE;CN=Buyer;PARTSTAT=ACCEPTED:mailto:buyer@globex.example\r\nEND:VEVENT")


def put(gateway: Gateway, rep: Rep, path: str, body: str, **headers: str) -> requests.Response:
    return requests.put(f"{gateway.url}{rep.username}/{path}", data=body.encode(),
                        auth=rep.auth, headers=headers, timeout=30)


def delete(gateway: Gateway, rep: Rep, path: str, **headers: str) -> requests.Response:
    return requests.delete(f"{gateway.url}{rep.username}/{path}", auth=rep.auth,
                           headers=headers, timeout=30)


def get(gateway: Gateway, rep: Rep, path: str) -> requests.Response:
    return requests.get(f"{gateway.url}{rep.username}/{path}", auth=rep.auth, timeout=30)


def test_thunderbird_move_put_into_target_then_delete_from_source(
    gateway: Gateway, rep: Rep
) -> None:
    body = invited(rep, "tb-move@test")
    made = put(gateway, rep, "meeting/tb-move.ics", body, **{"If-None-Match": "*"})
    assert made.status_code == 201, made.text
    [entry_id] = entry_ids(gateway, "tb-move@test")
    before = snapshot(gateway, entry_id)
    source_token, _ = sync(gateway, rep, "meeting")
    target_token, _ = sync(gateway, rep, "call")

    moved = put(gateway, rep, "call/tb-move-2.ics", body, **{"If-None-Match": "*"})
    assert moved.status_code == 201, moved.text
    gone = delete(gateway, rep, "meeting/tb-move.ics", **{"If-Match": made.headers["ETag"]})
    assert gone.status_code == 404, gone.text  # already moved: the DELETE changes nothing

    after = snapshot(gateway, entry_id)
    assert entry_ids(gateway, "tb-move@test") == [entry_id]
    assert (after.type, after.deleted, after.origin, after.created_at) == (
        "Call", False, before.origin, before.created_at)
    assert after.participants == before.participants == [("buyer@globex.example", "ACCEPTED")]
    assert after.revision > before.revision
    assert get(gateway, rep, "meeting/tb-move.ics").status_code == 404
    shown = get(gateway, rep, "call/tb-move-2.ics")
    assert shown.status_code == 200 and shown.headers["ETag"] == moved.headers["ETag"]
    assert sync(gateway, rep, "meeting", source_token)[1] == {"tb-move.ics": 404}
    assert sync(gateway, rep, "call", target_token)[1] == {"tb-move-2.ics": 200}


def test_davx5_delete_first_then_put_into_target_keeps_the_entry(
    gateway: Gateway, rep: Rep
) -> None:
    body = invited(rep, "dx-delete-first@test")
    made = put(gateway, rep, "meeting/dx1.ics", body)
    assert made.status_code == 201, made.text
    [entry_id] = entry_ids(gateway, "dx-delete-first@test")
    before = snapshot(gateway, entry_id)
    source_token, _ = sync(gateway, rep, "meeting")

    # DAVx5 syncs the source calendar first: the event left it.
    gone = delete(gateway, rep, "meeting/dx1.ics", **{"If-Match": made.headers["ETag"]})
    assert gone.status_code in (200, 204), gone.text
    assert sync(gateway, rep, "meeting", source_token)[1] == {"dx1.ics": 404}
    target_token, _ = sync(gateway, rep, "call")
    # Then the target calendar: the same event arrives under a new name.
    arrived = put(gateway, rep, "call/dx1-moved.ics", body, **{"If-None-Match": "*"})
    assert arrived.status_code == 201, arrived.text

    after = snapshot(gateway, entry_id)
    assert entry_ids(gateway, "dx-delete-first@test") == [entry_id]
    assert (after.type, after.deleted, after.created_at) == ("Call", False, before.created_at)
    assert after.participants == before.participants
    assert sync(gateway, rep, "call", target_token)[1] == {"dx1-moved.ics": 200}
    assert get(gateway, rep, "meeting/dx1.ics").status_code == 404


def test_davx5_put_first_then_delete_moves_a_crm_entry(gateway: Gateway, rep: Rep) -> None:
    with gateway.store.transaction() as session:
        entry = create_entry(session, EntryDraft(
            type_name="Meeting", title="Quarterly review", organizer=rep.username,
            start=datetime(2026, 12, 9, 14, tzinfo=UTC), end=datetime(2026, 12, 9, 15, tzinfo=UTC),
            attendees=("buyer@globex.example",)))
        entry_id, href = entry.id, entry.href
        user_id = get_user(session, rep.username).id
    before = snapshot(gateway, entry_id)
    source = get(gateway, rep, f"meeting/{href}")
    assert source.status_code == 200
    source_token, _ = sync(gateway, rep, "meeting")

    arrived = put(gateway, rep, f"call/{href}", source.text, **{"If-None-Match": "*"})
    assert arrived.status_code == 201, arrived.text
    assert sync(gateway, rep, "meeting", source_token)[1] == {href: 404}
    # Later DAVx5 syncs the source calendar and removes what it still holds there.
    gone = delete(gateway, rep, f"meeting/{href}", **{"If-Match": source.headers["ETag"]})
    assert gone.status_code == 404

    after = snapshot(gateway, entry_id)
    assert (after.id, after.type, after.deleted, after.origin) == (entry_id, "Call", False, "crm")
    assert after.participants == before.participants
    with gateway.store.reading() as session:
        assert session.get_one(DiaryEntry, entry_id).owner_user_id == user_id
    assert get(gateway, rep, f"call/{href}").text == source.text


def test_the_uid_of_another_users_entry_is_refused_with_a_reason(
    gateway: Gateway, rep: Rep
) -> None:
    guest = new_rep(gateway.store)
    with gateway.store.transaction() as session:
        entry = create_entry(session, EntryDraft(
            type_name="Meeting", title="Demo for Globex", organizer=rep.username,
            start=datetime(2026, 12, 10, 9, tzinfo=UTC), end=datetime(2026, 12, 10, 10, tzinfo=UTC),
            attendees=(guest.username,)))
        entry_id, uid, href = entry.id, entry.uid, entry.href
    invitation = get(gateway, guest, f"invitations/{href}")
    assert invitation.status_code == 200
    before = snapshot(gateway, entry_id)

    # The guest's client files the invitation into one of the guest's own calendars.
    refused = put(gateway, guest, "meeting/accepted.ics", invitation.text)
    assert refused.status_code == 409
    assert "no-uid-conflict" in refused.text and rep.username in refused.text
    assert "only its organiser" in refused.text
    assert f"/{guest.username}/invitations/{href}" in refused.text
    assert entry_ids(gateway, uid) == [entry_id]
    assert snapshot(gateway, entry_id) == before
    assert get(gateway, guest, "meeting/accepted.ics").status_code == 404
