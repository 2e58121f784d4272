"""The pure iCalendar mapping between calendar objects and CRM diary entries.

No database, no HTTP, no Radicale: plain values in and out (see :mod:`gateway.ical.model`).
"""

from gateway.ical.expand import Occurrences, bounded_occurrences, occurrences, overlaps_window
from gateway.ical.model import (
    KEEP,
    Attendee,
    EventData,
    EventPatch,
    InvalidCalendarObject,
    Keep,
    Organizer,
    PatchRefused,
    RenderInput,
    TaskFields,
    UnsupportedComponent,
)
from gateway.ical.parse import parse_event
from gateway.ical.patch import patch_event
from gateway.ical.render import render_event
from gateway.ical.timezones import windows_to_iana
from gateway.ical.view import view_for

__all__ = [
    "KEEP",
    "Attendee",
    "EventData",
    "EventPatch",
    "InvalidCalendarObject",
    "Keep",
    "Occurrences",
    "Organizer",
    "PatchRefused",
    "RenderInput",
    "TaskFields",
    "UnsupportedComponent",
    "bounded_occurrences",
    "occurrences",
    "overlaps_window",
    "parse_event",
    "patch_event",
    "render_event",
    "view_for",
    "windows_to_iana",
]
