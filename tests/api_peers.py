"""A running gateway for the API tests, its tokens, and a small HTTP client of the API.

The gateway is a real ``crm-gateway serve --only http`` process (``caldav_peer``); tokens
are issued in the database as the CLI does; requests go over a real socket with requests.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from caldav_peer import Gateway, start_gateway, stop_gateway

from gateway import api_tokens
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.models import DiaryType

_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}x{os.getpid()}"


@dataclass
class Api:
    """The API of one gateway, seen with one token."""

    base: str
    token: str

    def call(self, method: str, path: str, *, json: Any = None,
             headers: dict[str, str] | None = None, token: str | None = None,
             **options: Any) -> requests.Response:
        sent = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        return requests.request(method, self.base + path, json=json, headers=sent,
                                timeout=30, **options)

    def get(self, path: str, **options: Any) -> requests.Response:
        return self.call("GET", path, **options)

    def post(self, path: str, json: Any = None, **options: Any) -> requests.Response:
        return self.call("POST", path, json=json, **options)

    def patch(self, path: str, json: Any = None, **options: Any) -> requests.Response:
        return self.call("PATCH", path, json=json, **options)

    def delete(self, path: str, **options: Any) -> requests.Response:
        return self.call("DELETE", path, **options)


def issue_token(store: Store, scope: str = api_tokens.ADMIN) -> str:
    with store.transaction() as session:
        return api_tokens.create_token(session, unique("token"), scope).token


@pytest.fixture(scope="module")
def api_gateway(module_database_url: str, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Gateway]:
    running = start_gateway(module_database_url, tmp_path_factory.mktemp("api-gateway"))
    with running.store.transaction() as session:
        if session.query(DiaryType).filter_by(name="Meeting").first() is None:
            create_type(session, "Meeting", color="#3A87AD", syncable=True)
    yield running
    stop_gateway(running)


@pytest.fixture(scope="module")
def api(api_gateway: Gateway) -> Api:
    """The API with an admin token."""
    return Api(api_gateway.url + "api/v1", issue_token(api_gateway.store))


@pytest.fixture(scope="module")
def reader(api_gateway: Gateway) -> Api:
    """The API with a read-scope token."""
    return Api(api_gateway.url + "api/v1", issue_token(api_gateway.store, api_tokens.READ))


def problem(answer: requests.Response, status: int, kind: str) -> dict[str, Any]:
    """The answer's problem document, checked to be of ``kind`` with ``status``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    document: dict[str, Any] = answer.json()
    assert document["type"] == f"https://crm-gateway.invalid/problems/{kind}", document
    assert document["status"] == status and document["detail"]
    return document
