"""One diary entry as its organiser or a participant sees it, and its ``.ics`` download.

``/account/entries/<id>`` shows the entry (title, time, type, organiser, participants with
their answers, the busy time it overlapped when last written: a colleague's only as "busy")
to the user who organises it or takes part in it, and to no one else: to anyone else the
entry does not exist (404). The Download button fetches
``/account/entries/<id>.ics``: the export of ``gateway.export`` for the signed-in user,
so the organiser is left out when they made the entry; a recurring entry or one of a type
that is not synced gets the reason instead of a button (409 if fetched anyway).
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from gateway.conflicts import recorded
from gateway.export import NotExportable, check_exportable, download_name, entry_ics
from gateway.models import DiaryEntry
from gateway.web.pages.account import signed_in
from gateway.web.pages.page import Page


def visible_entry(session: Session, user_id: int, entry_id: int) -> DiaryEntry:
    """The live entry if ``user_id`` organises it or takes part in it; else 404."""
    entry = session.get(DiaryEntry, entry_id)
    if entry is None or entry.deleted_at is not None or not (
            user_id in (entry.owner_user_id, entry.organizer_user_id)
            or any(p.user_id == user_id for p in entry.participants)):
        raise NotFound("No such entry (or it is not one of yours).")
    return entry


def show_entry(page: Page, entry_id: int) -> Response:
    user_id = signed_in(page)
    with page.app.store.reading() as session:
        entry = visible_entry(session, user_id, entry_id)
        try:
            check_exportable(entry)
            refusal = None
        except NotExportable as exc:
            refusal = str(exc)
        organiser = (entry.organizer.name or entry.organizer.username) if entry.organizer \
            else entry.organizer_email or ("an automation" if entry.automation else "nobody")
        participants = [
            (p.contact.name if p.contact is not None and p.contact.name
             else p.user.name if p.user is not None and p.user.name else p.name or "",
             p.email, p.partstat)
            for p in entry.participants]
        return page.render("entry.html", title=entry.title or "(no title)", entry=entry,
                           type_name=entry.type.name, organiser=organiser,
                           participants=participants, refusal=refusal,
                           is_task=entry.type.kind == "task",
                           conflicts=[
                               c if c.user_id == user_id else replace(c, title="busy",
                                                                      calendar="")
                               for c in recorded(session, entry.id)])


def download_entry(page: Page, entry_id: int) -> Response:
    user_id = signed_in(page)
    with page.app.store.reading() as session:
        entry = visible_entry(session, user_id, entry_id)
        try:
            text = entry_ics(entry, user_id)
        except NotExportable as exc:
            return page.render("error.html", 409, title="Cannot export",
                               message=str(exc))
        name = download_name(entry)
    return Response(text.encode(), content_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


ROUTES = (
    ("/account/entries/<int:entry_id>", "show_entry", ["GET"], show_entry),
    ("/account/entries/<int:entry_id>.ics", "download_entry", ["GET"], download_entry),
)
