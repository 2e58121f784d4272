"""RFC 9457 problem details: every refusal of the API, one stable ``type`` URI per kind.

The kinds (``https://crm-gateway.invalid/problems/<kind>``) are listed in ``KINDS`` and in
README.md; a client branches on ``type``, shows ``detail`` to a person.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

BASE = "https://crm-gateway.invalid/problems/"
MEDIA_TYPE = "application/problem+json"

# kind -> (status, title)
KINDS: dict[str, tuple[int, str]] = {
    "malformed-request": (400, "The request could not be read"),
    "unauthenticated": (401, "A valid API token is needed"),
    "forbidden": (403, "This token's scope does not allow this"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "This resource does not accept this method"),
    "conflict": (409, "The request clashes with what is stored"),
    "read-only": (409, "The resource is read-only on the CRM side"),
    "conflict-refused": (409, "The booking overlaps busy time (the conflicts setting is "
                              "refuse)"),
    "precondition-failed": (412, "The resource changed since it was read (If-Match)"),
    "too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "The request body must be JSON"),
    "invalid": (422, "The request breaks a rule"),
    "validation": (422, "The request does not match the schema"),
    "idempotency-key-reused": (422, "The Idempotency-Key was used for another request"),
    "account-test-failed": (422, "The calendar account failed its connectivity test"),
    "internal": (500, "The gateway failed"),
    "account-unreachable": (502, "The linked calendar account refused or did not answer"),
    "unavailable": (503, "The database is unreachable; try again later"),
}


@dataclass
class Problem(Exception):
    """A refusal the API sends as ``application/problem+json``."""

    kind: str
    detail: str
    errors: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return KINDS[self.kind][0]

    def body(self) -> bytes:
        status, title = KINDS[self.kind]
        document: dict[str, Any] = {"type": BASE + self.kind, "title": title,
                                    "status": status, "detail": self.detail}
        if self.errors is not None:
            document["errors"] = self.errors
        return json.dumps(document).encode()
