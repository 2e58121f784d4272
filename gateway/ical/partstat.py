"""An attendee's answer (PARTSTAT) written into a stored calendar object, in place.

An iMIP REPLY (RFC 5546 3.2.3) changes one attendee's participation status and nothing
else: the ATTENDEE lines of that address in every VEVENT (the master and its overrides)
get the new PARTSTAT; every other byte is kept, and SEQUENCE does not change (a reply is
not a new version of the event). ATTENDEE lines inside a VALARM (the addresses an email
alarm goes to) are left alone.
"""

from __future__ import annotations

from icalendar.parser import Contentline

from gateway.ical.contentlines import content_line, fold, line_ending, logical_lines


def _address(value: str) -> str:
    value = value.strip()
    return value[len("mailto:"):].lower() if value.lower().startswith("mailto:") else \
        value.lower()


def set_partstat(text: str, email: str, partstat: str) -> str:
    """``text`` with ``email``'s PARTSTAT set to ``partstat``; the same string when no
    ATTENDEE line of ``email`` needed a change."""
    email = email.lower()
    newline = line_ending(text)
    output: list[str] = []
    stack: list[str] = []
    changed = False
    for line in logical_lines(text):
        name = line.name
        if name == "BEGIN":
            stack.append(line.value.strip().upper())
        elif name == "END" and stack:
            stack.pop()
        elif name == "ATTENDEE" and stack and stack[-1] == "VEVENT":
            _, params, value = Contentline(line.text).parts()
            if _address(value) == email and str(params.get("PARTSTAT", "")).upper() != partstat:
                kept = [(key, str(item)) for key, item in params.items()
                        if key.upper() not in ("PARTSTAT", "RSVP")]
                output.append(fold(content_line("ATTENDEE", value, [*kept,
                                                ("PARTSTAT", partstat)]), newline))
                changed = True
                continue
        output.append(line.raw)
    return "".join(output) if changed else text
