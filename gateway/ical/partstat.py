"""An attendee's answer (PARTSTAT) written into a stored calendar object, in place.

An iMIP REPLY (RFC 5546 3.2.3) changes one attendee's participation status and nothing
else: the ATTENDEE lines of that address in every VEVENT (the master and its overrides)
get the new PARTSTAT; every other byte is kept, and SEQUENCE does not change (a reply is
not a new version of the event). ATTENDEE lines inside a VALARM (the addresses an email
alarm goes to) are left alone.
"""

from __future__ import annotations

from icalendar.parser import Contentline

from gateway.ical.contentlines import fold, line_ending, logical_lines

_REPLACED = ("PARTSTAT", "RSVP")  # RSVP=TRUE asked for this answer: it is given now


def _address(value: str) -> str:
    value = value.strip()
    return value[len("mailto:"):].lower() if value.lower().startswith("mailto:") else \
        value.lower()


def _segments(head: str) -> list[str]:
    """The name and each ``;PARAM=value`` of a content line's head, split outside quotes."""
    parts, current, quoted = [], "", False
    for char in head:
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return parts


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
                # Only the two parameters change; the others stay exactly as written.
                kept = [part for part in _segments(line.head)
                        if part.partition("=")[0].strip().upper() not in _REPLACED]
                head = ";".join([*kept, f"PARTSTAT={partstat}"])
                output.append(fold(f"{head}:{line.value}", newline))
                changed = True
                continue
        output.append(line.raw)
    return "".join(output) if changed else text
