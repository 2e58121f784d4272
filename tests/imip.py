"""An attendee's iMIP REPLY (RFC 6047) as a calendar app mails it, for the RSVP tests."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime

from gateway.clock import utcnow


def imip_reply(sender: str, to: str, uid: str, partstat: str, *, sequence: int = 0,
               attendee: str | None = None, message_id: str) -> bytes:
    """What a calendar app sends when its user answers an invitation (RFC 6047)."""
    message = EmailMessage()
    message["From"], message["To"] = sender, to
    message["Subject"] = f"{partstat.title()}: Pricing"
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = f"<{message_id}>"
    message.set_content(f"{sender} has answered {partstat.lower()}.")
    ics = "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Tests//Replies//EN", "METHOD:REPLY",
        "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20261201T120000Z", f"SEQUENCE:{sequence}",
        "DTSTART:20261207T090000Z", f"ORGANIZER:mailto:{to}",
        f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee or sender}",
        "END:VEVENT", "END:VCALENDAR", ""])
    message.add_alternative(ics, subtype="calendar", params={"method": "REPLY"})
    return bytes(message).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
