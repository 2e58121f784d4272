"""Setting up a calendar client in one step: the Apple profile and the DAVx5 QR code.

The ``.mobileconfig`` carries one ``com.apple.caldav.account`` payload with the server, port,
TLS, login and principal URL, and no password: the device asks for the app password. The QR
code encodes the principal URL, which DAVx5 ("Login with URL") takes as the base URL.
"""

from __future__ import annotations

import io
import plistlib
import uuid
from urllib.parse import urlsplit

import segno
from werkzeug.wrappers import Response

from gateway import web_logins
from gateway.web.pages.account import signed_in
from gateway.web.pages.page import Page

PROFILE_TYPE = "application/x-apple-aspen-config"


def profile_payload(base_url: str, username: str) -> bytes:
    """The configuration profile (an XML plist) for ``username`` on the server at
    ``base_url``."""
    parts = urlsplit(base_url)
    tls = parts.scheme == "https"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if tls else 80)
    principal = f"{base_url}{username}/"
    ident = f"crm-gateway.{host}.{username}"
    account = {
        "PayloadType": "com.apple.caldav.account",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.caldav",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, principal + "#caldav")).upper(),
        "PayloadDisplayName": "CRM calendar",
        "CalDAVAccountDescription": f"CRM calendar ({username})",
        "CalDAVHostName": host,
        "CalDAVPort": port,
        "CalDAVUseSSL": tls,
        "CalDAVUsername": username,
        "CalDAVPrincipalURL": principal,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": ident,
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, principal)).upper(),
        "PayloadDisplayName": f"CRM calendar for {username}",
        "PayloadDescription": "Adds your CRM diary as a calendar account. "
                              "The device asks for an app password.",
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def mobileconfig(page: Page) -> Response:
    user_id = signed_in(page)
    with page.app.store.reading() as session:
        username = web_logins.get_person(session, user_id).username
    body = profile_payload(page.app.base_url, username)
    return Response(body, content_type=PROFILE_TYPE, headers={
        "Content-Disposition": f'attachment; filename="crm-calendar-{username}.mobileconfig"'})


def davx5_qr(page: Page) -> Response:
    user_id = signed_in(page)
    with page.app.store.reading() as session:
        username = web_logins.get_person(session, user_id).username
    out = io.BytesIO()
    segno.make(f"{page.app.base_url}{username}/", error="m").save(out, kind="svg", scale=5)
    return Response(out.getvalue(), content_type="image/svg+xml")


ROUTES = (
    ("/account/calendar.mobileconfig", "mobileconfig", ["GET"], mobileconfig),
    ("/account/davx5.svg", "davx5_qr", ["GET"], davx5_qr),
)
