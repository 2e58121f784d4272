"""The XML guard decides on depth, counts and DTDs alone: properties over generated bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.web.xml_guard import MAX_DEPTH, Refused, XmlLimits, check, decode

LIMITS = XmlLimits(max_properties=20, max_hrefs=30)


def _propfind(properties: int, depth: int) -> str:
    # propfind(1) / prop(2) / the properties(3), one of them nested ``depth`` deeper.
    nested = "<D:x>" * depth + "</D:x>" * depth
    names = "".join(f"<D:p{i}>{nested if i == 0 else ''}</D:p{i}>" for i in range(properties))
    return f'<D:propfind xmlns:D="DAV:"><D:prop>{names}</D:prop></D:propfind>'


@given(st.integers(1, 40), st.integers(0, 40))
def test_a_propfind_is_refused_exactly_beyond_the_limits(properties: int, depth: int) -> None:
    deepest = 3 + depth
    try:
        check(_propfind(properties, depth), LIMITS)
    except Refused as refused:
        if deepest > MAX_DEPTH:
            assert refused.status.startswith("400") and "nested deeper" in refused.reason
        else:
            assert properties > LIMITS.max_properties
            assert refused.status.startswith("413") and "http.max_propfind_properties" in (
                refused.reason)
    else:
        assert deepest <= MAX_DEPTH and properties <= LIMITS.max_properties


@given(st.integers(0, 60))
def test_a_multiget_is_refused_exactly_beyond_the_href_limit(count: int) -> None:
    body = ('<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            "<D:prop><D:getetag/></D:prop>"
            + "<D:href>/u/c/e.ics</D:href>" * count + "</C:calendar-multiget>")
    if count > LIMITS.max_hrefs:
        with pytest.raises(Refused, match=r"http\.max_multiget_hrefs"):
            check(body, LIMITS)
    else:
        check(body, LIMITS)


@given(st.sampled_from(['<!DOCTYPE a>', '<!DOCTYPE a [<!ENTITY e "x">]>',
                        '<!DOCTYPE a SYSTEM "http://127.0.0.1:9/a.dtd">',
                        '<!DOCTYPE a [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>']),
       st.sampled_from(["", '<?xml version="1.0" encoding="utf-8"?>']))
def test_any_document_type_declaration_is_refused(doctype: str, declaration: str) -> None:
    with pytest.raises(Refused, match="document type declaration"):
        check(f'{declaration}{doctype}<a xmlns="DAV:"/>', LIMITS)


def test_the_body_is_decoded_as_radicale_decodes_it() -> None:
    assert decode("é".encode("latin-1"), "application/xml; charset=iso-8859-1") == "é"
    assert decode("é".encode(), "application/xml") == "é"
    assert decode(b"\xe9", "application/xml") == "é"  # not UTF-8: ISO-8859-1, as Radicale
    with pytest.raises(Refused, match="unknown charset"):
        decode(b"<a/>", "text/xml; charset=no-such-charset")


_CAL = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'


def test_the_window_radicale_expands_over_is_noted() -> None:
    from datetime import UTC, datetime

    week = (datetime(2090, 1, 2, tzinfo=UTC), datetime(2090, 1, 9, tzinfo=UTC))
    expand = (f'<C:calendar-query {_CAL}><D:prop><C:calendar-data>'
              '<C:expand start="20900102T000000Z" end="20900109T000000Z"/></C:calendar-data>'
              '</D:prop></C:calendar-query>')
    free_busy = (f'<C:free-busy-query {_CAL}>'
                 '<C:time-range start="20900102T000000Z" end="20900109T000000Z"/>'
                 '</C:free-busy-query>')
    open_end = (f'<C:free-busy-query {_CAL}><C:time-range start="20900102T000000Z"/>'
                '</C:free-busy-query>')
    plain = (f'<C:calendar-query {_CAL}><C:filter><C:comp-filter name="VCALENDAR">'
             '<C:comp-filter name="VEVENT"><C:time-range start="20900102T000000Z" '
             'end="20900109T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
             '</C:calendar-query>')
    assert check(expand, LIMITS) == week
    assert check(free_busy, LIMITS) == week
    assert check(open_end, LIMITS) == (week[0], datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert check(plain, LIMITS) is None  # the occurrence index answers it
    assert check(expand.replace("20900109T000000Z", "soon"), LIMITS) is None  # Radicale's 403
