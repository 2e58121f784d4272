"""schemathesis against the live OpenAPI document: every operation, no 5xx, no answer that
breaks the documented schema. Examples per operation are bounded to keep the run short."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from api_peers import Api
from caldav_peer import Gateway, new_rep
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

EXAMPLES = 12


@pytest.fixture(scope="module")
def api_schema(api_gateway: Gateway, api: Api) -> schemathesis.BaseSchema:
    # Something to find: a user with an entry, a contact at an account.
    rep = new_rep(api_gateway.store)
    api.post("/accounts", {"name": f"Globex {rep.username}",
                           "domains": [f"{rep.username}.example"]})
    api.post("/contacts", {"email": f"hank@{rep.username}.example"})
    api.post("/entries", {"type": "Meeting", "title": "Call", "organizer": rep.username,
                          "start": "2026-12-07T09:00:00Z", "end": "2026-12-07T10:00:00Z"})
    return schemathesis.openapi.from_url(api.base + "/openapi.json")


def test_every_operation_answers_as_documented_without_a_server_error(
        api_schema: schemathesis.BaseSchema, api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.token}"}
    checks = [not_a_server_error, response_schema_conformance]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate])
        def answers(case: schemathesis.Case) -> None:
            # Sent with plain requests: schemathesis' own transport trips over the
            # urllib3 that the caldav library's niquests installs.
            sent = case.as_transport_kwargs(base_url=api.base, headers=headers)
            sent.pop("session", None)
            answer = requests.request(**sent, timeout=30)
            case.validate_response(answer, checks=checks)

        answers()
