"""Naming and resolving the time zones that calendar clients write in TZID parameters.

Clients do not all use IANA names: Outlook (and CalDav Synchronizer) writes Windows names
such as ``W. Europe Standard Time``, some writers add trailing spaces, libical writes
"globally unique" ``/vendor/.../Europe/Berlin`` ids (RFC 5545 3.2.19) and Outlook may send a
``Customized Time Zone`` whose only meaning is its own VTIMEZONE. :class:`ZoneResolver`
turns any of those into a ``tzinfo`` (to compute UTC) and, where there is one, an IANA name
(for the CRM column).
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo

from icalendar import Timezone
from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from gateway.ical.model import InvalidCalendarObject

# Names that mean UTC itself: a TZID with one of them is stored as tzid None, like "Z".
UTC_NAMES = frozenset(
    name.lower()
    for name in (
        "UTC", "Etc/UTC", "Z", "Zulu", "Etc/Zulu", "Universal", "Etc/Universal", "UCT",
        "Etc/UCT", "GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "GMT+0", "GMT-0", "Etc/GMT+0",
        "Etc/GMT-0", "Greenwich", "Etc/Greenwich", "Coordinated Universal Time",
    )
)

_WINDOWS_BY_LOWER = {name.lower(): iana for name, iana in WINDOWS_TO_OLSON.items()}


@functools.cache
def _iana_names() -> frozenset[str]:
    # Looked up once: zoneinfo.ZoneInfo() would also accept file paths and raise
    # assorted OSErrors for odd client strings.
    return frozenset(zoneinfo.available_timezones())


def is_iana(name: str) -> bool:
    """Whether ``name`` is a zone of the installed IANA database (exact spelling)."""
    return name in _iana_names()


def windows_to_iana(name: str) -> str | None:
    """The IANA zone for a Windows time zone name (CLDR windowsZones, territory 001).

    Surrounding whitespace and letter case are ignored; ``None`` when the name is not a
    Windows zone name.
    """
    cleaned = name.strip()
    iana = WINDOWS_TO_OLSON.get(cleaned) or _WINDOWS_BY_LOWER.get(cleaned.lower())
    if iana is None or not is_iana(iana):
        return None
    return iana


def iana_name(tzid: str) -> str | None:
    """The IANA name a client's TZID stands for, or ``None`` if it names no known zone.

    Tries, in order: the name itself (whitespace trimmed), a Windows name, and the
    trailing ``Area/City`` of a globally unique ``/vendor/.../Area/City`` id.
    """
    cleaned = tzid.strip().strip('"').strip()
    if is_iana(cleaned):
        return cleaned
    windows = windows_to_iana(cleaned)
    if windows is not None:
        return windows
    if cleaned.startswith("/"):
        parts = [part for part in cleaned.split("/") if part]
        for first in range(1, len(parts)):
            candidate = "/".join(parts[first:])
            if is_iana(candidate):
                return candidate
    return None


def is_utc_name(name: str) -> bool:
    """Whether a TZID (or IANA name) means UTC itself."""
    return name.strip().lower() in UTC_NAMES


def output_tzid(tzid: str | None) -> str | None:
    """The TZID to write for a CRM-side zone: ``None`` (UTC) for UTC names.

    Raises ``ValueError`` for a name that is not an IANA zone: CRM-made entries always
    carry IANA TZIDs with their VTIMEZONE.
    """
    if tzid is None or is_utc_name(tzid):
        return None
    if not is_iana(tzid):
        raise ValueError(f"unknown IANA time zone {tzid!r}")
    return tzid


@dataclass(frozen=True)
class Zone:
    """A resolved TZID: the ``tzinfo`` to compute with and the IANA name, if any."""

    tzinfo: tzinfo
    iana: str | None


UTC_ZONE = Zone(UTC, None)


@functools.lru_cache(maxsize=256)
def _zone_from_definition(vtimezone_text: bytes) -> tzinfo:
    # Keyed on the definition's bytes, not its TZID: two objects may both call their
    # zone "Customized Time Zone" and mean different things.
    component = Timezone.from_ical(vtimezone_text)
    return tzp.create_timezone(component)


class ZoneResolver:
    """Resolves the TZIDs of one calendar object, using its own VTIMEZONEs as a fallback.

    Order: IANA name, Windows name, globally unique id, then the object's VTIMEZONE with
    that TZID (its X-LIC-LOCATION, when an IANA name, becomes the zone's name).
    """

    def __init__(self, vtimezones: Mapping[str, Timezone]) -> None:
        self._definitions = {tzid.strip(): component for tzid, component in vtimezones.items()}
        self._cache: dict[str, Zone] = {}

    def resolve(self, tzid: str) -> Zone:
        """The zone a TZID parameter means; InvalidCalendarObject when nothing defines it."""
        zone = self._cache.get(tzid)
        if zone is None:
            zone = self._resolve(tzid)
            self._cache[tzid] = zone
        return zone

    def _resolve(self, tzid: str) -> Zone:
        if is_utc_name(tzid):
            return UTC_ZONE
        name = iana_name(tzid)
        if name is not None:
            if is_utc_name(name):
                return UTC_ZONE
            return Zone(zoneinfo.ZoneInfo(name), name)
        definition = self._definitions.get(tzid.strip())
        if definition is None:
            raise InvalidCalendarObject(
                f"time zone {tzid!r} is neither a known zone nor defined by a VTIMEZONE"
            )
        try:
            info = _zone_from_definition(definition.to_ical())
        except (ValueError, TypeError, KeyError, IndexError) as error:
            raise InvalidCalendarObject(
                f"the VTIMEZONE {tzid!r} cannot be used: {error}"
            ) from error
        location = definition.get("X-LIC-LOCATION")
        location_name = str(location).strip() if location is not None else ""
        return Zone(info, location_name if is_iana(location_name) else None)
