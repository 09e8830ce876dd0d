"""Fixtures shared by the connector tests (one block per vendor, additive).

Connectors are built the way the runtime builds them (``build_connector`` from a
``SystemConfig``) with the vendor's emulator as the transport and a retry policy of tiny waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sync.config import SystemConfig
from sync.connectors.http import RetryPolicy
from sync.emulators.base import Emulator

#: Real retry behaviour (attempt counts, backoff ordering) in milliseconds instead of seconds.
FAST_RETRY = RetryPolicy(
    attempts=6,
    timeout=10.0,
    wait_initial=0.001,
    wait_max=0.005,
    wait_jitter=0.001,
    max_vendor_wait=0.01,
)


def control(emulator: Emulator, path: str, body: dict[str, Any]) -> None:
    """Call an emulator's control API (``/_emulator/<path>``: faults, rate limits, clock),
    closing the in-process transport (and its event-loop thread) after."""
    transport = emulator.transport()
    with httpx.Client(transport=transport, base_url="http://emulator.test") as client:
        client.post(f"/_emulator/{path}", json=body).raise_for_status()
    transport.close()


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """A retry policy with millisecond waits."""
    return FAST_RETRY


Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """An ``httpx.MockTransport`` handler that records the requests it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


# -- Ruddr -----------------------------------------------------------------------------------
RUDDR_BASE = "http://ruddr.test/api/workspace"


def ruddr_config(token: str = "ruddr-test-token", **extra: Any) -> SystemConfig:
    return SystemConfig(type="ruddr", base_url=RUDDR_BASE, credentials={"token": token}, **extra)


# -- ParsaLink -------------------------------------------------------------------------------
PARSALINK_BASE = "http://parsalink.test/api"


def parsalink_config(credentials: dict[str, str], **extra: Any) -> SystemConfig:
    return SystemConfig(type="parsalink", base_url=PARSALINK_BASE, credentials=credentials, **extra)


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Things with ``close()`` to close after the test (connectors, transports)."""
    items: list[Any] = []
    yield items
    for item in reversed(items):
        item.close()


# -- Close -----------------------------------------------------------------------------------
CLOSE_BASE = "http://close.test/api/v1"
#: The Close custom field that holds the canonical opportunity name (reference data).
CLOSE_NAME_FIELD = "custom.cf_OppName0000000000000000000000000000000001"


def close_config(
    api_key: str = "close-test-key", base_url: str = CLOSE_BASE, **extra: Any
) -> SystemConfig:
    options = {"name_field": CLOSE_NAME_FIELD, **extra.pop("options", {})}
    return SystemConfig(
        type="close",
        base_url=base_url,
        credentials={"api_key": api_key},
        options=options,
        **extra,
    )


# -- Truto -----------------------------------------------------------------------------------
TRUTO_BASE = "http://truto.test/unified/crm"
#: The emulator's integrated accounts (sync.emulators.reference.TRUTO_ACCOUNTS).
TRUTO_ACCOUNTS = {
    "salesforce": "5f0c8f1e-6d0a-4c4e-9a8b-2b8f1f0a5001",
    "capsule": "5f0c8f1e-6d0a-4c4e-9a8b-2b8f1f0a5002",
    "close": "5f0c8f1e-6d0a-4c4e-9a8b-2b8f1f0a5003",
}


def truto_config(
    integration: str = "salesforce", token: str = "truto-test-token", **extra: Any
) -> SystemConfig:
    options = {"integrated_account_id": TRUTO_ACCOUNTS[integration], **extra.pop("options", {})}
    return SystemConfig(
        type="truto", base_url=TRUTO_BASE, credentials={"token": token}, options=options, **extra
    )
