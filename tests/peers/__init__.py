"""Real network peers that the test suite starts on loopback (see docs/TESTING.md).

`dovecot` runs a private Dovecot IMAP server per test; `tls` makes the throw-away certificates
those peers present; `imap_ops` holds the IMAP commands the helpers use to fill a mailbox.
"""

from __future__ import annotations

import os

import pytest

# Every gateway process a test starts on one database must share the key (docs: Scaling out).
TEST_SECRET_KEY = "the test suite's secret key"


def peer_missing(what: str) -> None:
    """Skip locally, fail in CI: CI must run every test against its real peer."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: the test suite needs it; .ci/run installs it)",
                    pytrace=False)
    pytest.skip(what)
