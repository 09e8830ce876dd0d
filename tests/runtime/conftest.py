"""Fixtures for the runtime tests: the real Redis at 127.0.0.1:6379, one key prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

REDIS_URL = os.environ.get("CRMSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis[Any]]:
    """A client of the real Redis (a clear failure, never a skip, when it is down)."""
    client: redis.Redis[Any] = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis[Any]) -> Iterator[str]:
    """A key prefix of this test alone; every key under it is deleted afterwards."""
    name = f"crmsync-test-{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(redis_client.scan_iter(f"{name}:*"))
    if keys:
        redis_client.delete(*keys)
