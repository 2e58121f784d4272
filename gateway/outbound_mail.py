"""The messages the gateway sends, built with the stdlib ``email`` package and ``icalendar``.

Two kinds: a short notification to a rep ("added to the CRM") and iMIP (RFC 6047) mail to an
attendee, ``METHOD:REQUEST`` with the event or ``METHOD:CANCEL``. Each message gets its
Message-ID here, once, before it is queued, so every attempt at sending it is the same mail.
Bodies are 7-bit (quoted-printable where needed): any smarthost takes them as they are.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from gateway.clock import utcnow
from gateway.models import DiaryEntry, User
from gateway.outbound import OutboundSettings

POLICY = SMTP.clone(cte_type="7bit")
PRODID = "-//crm-gateway//iMIP//EN"


def _message(settings: OutboundSettings, subject: str, to: Address) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["Subject"] = subject
    message["To"] = to
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=settings.domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    return message


def _address(email: str, name: str | None = None) -> Address:
    local, _, domain = email.rpartition("@")
    return Address(display_name=name or "", username=local, domain=domain)


def when(entry: DiaryEntry) -> str:
    """The entry's time as a rep reads it, in its own time zone (UTC when it has none)."""
    if entry.all_day:
        first = entry.start_utc.date()
        last = (entry.end_utc - timedelta(days=1)).date()
        days = first.strftime("%a %d %b %Y")
        return days if last <= first else f"{days} - {last.strftime('%a %d %b %Y')} (all day)"
    try:
        zone = ZoneInfo(entry.tzid) if entry.tzid else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    start = entry.start_utc.astimezone(zone)
    end = entry.end_utc.astimezone(zone)
    label = entry.tzid or "UTC"
    if start.date() == end.date():
        return f"{start:%a %d %b %Y, %H:%M}-{end:%H:%M} ({label})"
    return f"{start:%a %d %b %Y, %H:%M} - {end:%a %d %b %Y, %H:%M} ({label})"


def entry_link(settings: OutboundSettings, entry: DiaryEntry) -> str | None:
    """The entry's page in the web pages."""
    return f"{settings.public_url}account/entries/{entry.id}" if settings.public_url else None


def notification(settings: OutboundSettings, user: User, entry: DiaryEntry) -> EmailMessage:
    """"Added to the CRM": what of the rep's new calendar event the CRM now holds."""
    title = entry.title or "(no title)"
    message = _message(settings, f"Added to the CRM: {title}",
                       _address(user.email.lower(), user.name or None))
    message["From"] = _address(settings.from_address, "CRM gateway")
    lines = [
        "The event you added in your calendar is now in the CRM:",
        "",
        f"  {title}",
        f"  When: {when(entry)}",
        f"  Type: {entry.type.name if entry.type is not None else '-'}",
    ]
    if entry.location:
        lines.append(f"  Where: {entry.location}")
    link = entry_link(settings, entry)
    if link:
        lines += ["", f"See it in the CRM: {link}"]
    lines += ["", "You get this mail for events made in your calendar app; turn it off on "
              "the My sync page."]
    message.set_content("\n".join(lines) + "\n")
    return message


# --- iMIP (RFC 6047) ----------------------------------------------------------------------------


def _organiser_headers(message: EmailMessage, settings: OutboundSettings, user: User) -> None:
    """From the organiser when the smarthost may send as them, else from the gateway under the
    organiser's name with Reply-To the organiser (replies and RSVPs reach them either way)."""
    organiser = _address(user.email.lower(), user.name or None)
    if settings.send_as_organizer:
        message["From"] = organiser
        message["Sender"] = _address(settings.from_address)
    else:
        message["From"] = _address(settings.from_address, user.name or user.username)
        message["Reply-To"] = organiser


def _request_event(entry: DiaryEntry) -> icalendar.Calendar:
    """The stored event as an iMIP REQUEST: VTIMEZONEs and the VEVENT, without alarms (they
    are the organiser's), every attendee asked to reply."""
    stored = icalendar.Calendar.from_ical(entry.ical)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    for component in stored.subcomponents:
        if component.name == "VTIMEZONE":
            calendar.add_component(component)
        elif component.name == "VEVENT":
            component.subcomponents = [c for c in component.subcomponents
                                       if c.name != "VALARM"]
            attendees = component.get("ATTENDEE")
            for attendee in attendees if isinstance(attendees, list) else [attendees]:
                if attendee is not None:
                    attendee.params["RSVP"] = "TRUE"
            component.pop("DTSTAMP", None)
            component.add("dtstamp", utcnow().replace(microsecond=0))
            calendar.add_component(component)
    return calendar


def _cancel_event(entry: DiaryEntry, sequence: int, attendees: list[tuple[str, str | None]],
                  user: User) -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL")
    event = icalendar.Event()
    event.add("uid", entry.uid)
    event.add("dtstamp", utcnow().replace(microsecond=0))
    event.add("sequence", sequence)
    event.add("summary", entry.title)
    if entry.all_day:
        event.add("dtstart", entry.start_utc.date())
    else:
        event.add("dtstart", entry.start_utc)
    event.add("status", "CANCELLED")
    organiser = icalendar.vCalAddress(f"mailto:{user.email.lower()}")
    if user.name:
        organiser.params["CN"] = user.name
    event.add("organizer", organiser)
    for email, name in attendees:
        attendee = icalendar.vCalAddress(f"mailto:{email}")
        if name:
            attendee.params["CN"] = name
        event.add("attendee", attendee)
    calendar.add_component(event)
    return calendar


def _with_calendar(message: EmailMessage, text: str, calendar: icalendar.Calendar,
                   method: str) -> EmailMessage:
    """A text part for people, the ``text/calendar; method=…`` part for calendar apps
    (RFC 6047 section 2.4: multipart/alternative)."""
    message.set_content(text)
    message.add_alternative(calendar.to_ical().decode("utf-8"), subtype="calendar",
                            params={"method": method})
    return message


def request(settings: OutboundSettings, user: User, entry: DiaryEntry, to: str,
            name: str | None, *, update: bool) -> EmailMessage:
    """An invitation (``update``: a changed one) to ``to`` for the entry as it stands."""
    title = entry.title or "(no title)"
    subject = f"{'Updated invitation' if update else 'Invitation'}: {title}"
    message = _message(settings, subject, _address(to, name))
    _organiser_headers(message, settings, user)
    lines = [f"{user.name or user.email} invites you{' (changed)' if update else ''}:", "",
             f"  {title}", f"  When: {when(entry)}"]
    if entry.location:
        lines.append(f"  Where: {entry.location}")
    return _with_calendar(message, "\n".join(lines) + "\n", _request_event(entry), "REQUEST")


def cancel(settings: OutboundSettings, user: User, entry: DiaryEntry, to: str,
           name: str | None, *, sequence: int) -> EmailMessage:
    """The entry is cancelled for ``to`` (deleted, or ``to`` taken off it)."""
    title = entry.title or "(no title)"
    message = _message(settings, f"Cancelled: {title}", _address(to, name))
    _organiser_headers(message, settings, user)
    text = f"{user.name or user.email} cancelled:\n\n  {title}\n  When: {when(entry)}\n"
    return _with_calendar(message, text, _cancel_event(entry, sequence, [(to, name)], user),
                          "CANCEL")

