"""Time zone names from clients, and the VTIMEZONEs written for CRM-made entries."""

from __future__ import annotations

import io
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from dateutil.tz import tzical
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ical import windows_to_iana
from gateway.ical.timezones import iana_name, is_utc_name, output_tzid
from gateway.ical.vtimezone import vtimezone_lines

# Zones whose current rules repeat yearly, plus ones without DST, with half-hour DST
# (Lord Howe), negative DST (Dublin) and abolished DST (Sao Paulo, Moscow).
ZONES = [
    "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Australia/Sydney",
    "Australia/Lord_Howe", "Pacific/Auckland", "Asia/Tokyo", "Asia/Kolkata",
    "Europe/Dublin", "America/Sao_Paulo", "Europe/Moscow", "America/Santiago",
]


@pytest.mark.parametrize(
    ("windows", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Eastern Standard Time", "America/New_York"),
        ("GMT Standard Time", "Europe/London"),
        ("Romance Standard Time", "Europe/Paris"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("W. Europe Standard Time ", "Europe/Berlin"),
        ("w. europe standard time", "Europe/Berlin"),
    ],
)
def test_windows_names_map_to_iana(windows: str, iana: str) -> None:
    assert windows_to_iana(windows) == iana


@pytest.mark.parametrize("name", ["Europe/Berlin", "Customized Time Zone", "", "Mars"])
def test_non_windows_names_are_not_mapped(name: str) -> None:
    assert windows_to_iana(name) is None


@pytest.mark.parametrize(
    ("tzid", "iana"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("Europe/Berlin ", "Europe/Berlin"),
        ("Central European Standard Time", "Europe/Warsaw"),
        ("/freeassociation.sourceforge.net/Tzfile/Europe/Berlin", "Europe/Berlin"),
        ("/mozilla.org/20050126_1/America/Argentina/Salta", "America/Argentina/Salta"),
        ("Customized Time Zone", None),
        ("../../etc/passwd", None),
    ],
)
def test_client_tzids_resolve_to_iana_names(tzid: str, iana: str | None) -> None:
    assert iana_name(tzid) == iana


def test_utc_names() -> None:
    assert is_utc_name("UTC") and is_utc_name("Etc/UTC") and is_utc_name(" GMT ")
    assert not is_utc_name("Europe/London")
    assert output_tzid("Etc/UTC") is None and output_tzid(None) is None
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        output_tzid("W. Europe Standard Time")


def _definition(tzid: str, year: int) -> tzical:
    text = "\r\n".join(vtimezone_lines(tzid, year)) + "\r\n"
    return tzical(io.StringIO(text))


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    year=st.integers(min_value=2000, max_value=2035),
    offset=st.integers(min_value=0, max_value=60 * 366 * 24 * 3600),
)
def test_generated_vtimezone_matches_the_tz_database(zone: str, year: int, offset: int) -> None:
    """Any instant from the start year on gets the tz database's offset, past 2040 too."""
    definition = _definition(zone, year).get()
    instant = datetime(year, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    expected = instant.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
    assert instant.astimezone(definition).utcoffset() == expected


def test_vtimezone_uses_yearly_rules() -> None:
    lines = vtimezone_lines("Europe/Berlin", 2025)
    assert lines[:2] == ("BEGIN:VTIMEZONE", "TZID:Europe/Berlin")
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU" in lines
    assert "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU" in lines
    assert len(lines) == 17  # one DAYLIGHT and one STANDARD observance


def test_vtimezone_of_zone_without_dst() -> None:
    assert vtimezone_lines("Asia/Tokyo", 2025) == (
        "BEGIN:VTIMEZONE",
        "TZID:Asia/Tokyo",
        "BEGIN:STANDARD",
        "DTSTART:20240101T000000",
        "TZNAME:JST",
        "TZOFFSETFROM:+0900",
        "TZOFFSETTO:+0900",
        "END:STANDARD",
        "END:VTIMEZONE",
    )


def test_vtimezone_of_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        vtimezone_lines("Mars/Olympus_Mons", 2025)


@pytest.mark.parametrize(
    "zone",
    ["Asia/Jerusalem", "America/Santiago", "America/Nuuk", "Africa/Cairo",
     "Africa/Casablanca", "Asia/Gaza", "Europe/Dublin"],
)
def test_irregular_zones_match_the_tz_database_through_the_scanned_years(zone: str) -> None:
    definition = _definition(zone, 2025).get()
    expected_zone = zoneinfo.ZoneInfo(zone)
    instant = datetime(2025, 1, 1, tzinfo=UTC)
    while instant < datetime(2041, 1, 1, tzinfo=UTC):
        expected = instant.astimezone(expected_zone).utcoffset()
        assert instant.astimezone(definition).utcoffset() == expected, instant
        instant += timedelta(hours=7)


def test_weekday_on_or_after_rules_become_monthday_windows() -> None:
    # Israel starts DST on the Friday on or after 23 March (tz rule "Fri>=23").
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=23,24,25,26,27,28,29;BYDAY=FR" in (
        vtimezone_lines("Asia/Jerusalem", 2025)
    )
