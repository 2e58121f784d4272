"""Fixtures of the BCC listener tests: the seeded CRM world and a listener on loopback.

A module that needs other listener settings defines its own ``smtp``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers.bcc_listener import Running, World, running_listener, seed_world, write_config

from gateway.db import Store


@pytest.fixture
def world(store: Store) -> World:
    return seed_world(store)


@pytest.fixture
def smtp(tmp_path: Path, database_url: str, store: Store, world: World) -> Iterator[Running]:
    with running_listener(write_config(tmp_path, database_url), store) as running:
        yield running
