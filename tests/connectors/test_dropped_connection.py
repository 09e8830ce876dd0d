"""A connector over real HTTP meets a dropped connection: GETs are retried, POSTs are not."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sync.connectors import build_connector
from sync.connectors.base import BaseConnector
from sync.connectors.errors import OutcomeUnknown, Retryable
from sync.emulators.server import Served, running
from tests.connectors.conftest import CLOSE_NAME_FIELD, FAST_RETRY, close_config


@pytest.fixture
def close_served() -> Iterator[Served]:
    """Close's emulator over HTTP, every vendor request hanging 50 ms and then dropped."""
    with running(only="close") as served:
        item = served["close"]
        faults = {"timeout_rate": 1.0, "hang_seconds": 0.05}
        httpx.post(item.root_url + "/_emulator/faults", json=faults, timeout=10).raise_for_status()
        yield item


@pytest.fixture
def close(close_served: Served) -> Iterator[BaseConnector]:
    connector = build_connector(
        "close", close_config(base_url=close_served.base_url), retry=FAST_RETRY
    )
    yield connector
    connector.close()


def _logged(served: Served, method: str) -> list[dict[str, object]]:
    log = httpx.get(served.root_url + "/_emulator/requests", timeout=10).json()["requests"]
    return [r for r in log if r["method"] == method]


def test_the_emulator_drops_the_connection_without_an_answer(close_served: Served) -> None:
    """The timeout fault over HTTP closes the socket with no byte of an answer (not a 500)."""
    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        httpx.get(close_served.base_url + "/opportunity/", headers=close_served.headers)
    assert _logged(close_served, "GET")[0]["status"] == 0  # logged as "no answer"


def test_a_get_is_retried_after_a_dropped_connection(
    close: BaseConnector, close_served: Served
) -> None:
    """A read that met a dropped connection is tried again (FAST_RETRY: 6 attempts), then
    surfaces as a retryable error naming the dropped connection."""
    with pytest.raises(Retryable) as caught:
        close.get("oppo_1")
    assert "RemoteProtocolError" in str(caught.value)
    assert len(_logged(close_served, "GET")) == FAST_RETRY.attempts


def test_a_post_is_never_blindly_retried_after_a_dropped_connection(
    close: BaseConnector, close_served: Served
) -> None:
    """A create whose connection dropped may have been applied: it is sent once and surfaces
    as OutcomeUnknown (the engine then looks the deal up before any new create)."""
    payload = {"lead_id": "lead_1", CLOSE_NAME_FIELD: "Dropped deal", "value": 100}
    with pytest.raises(OutcomeUnknown):
        close.create(payload, idempotency_key="rec_1:close")
    assert len(_logged(close_served, "POST")) == 1
