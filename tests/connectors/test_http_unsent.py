"""A create whose request was not written in full is sent again; one written in full and
then left unanswered is not (its outcome is unknown). Over real sockets: httpx reports both
as the read failing, only httpcore's trace of the write tells them apart."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.connectors import build_connector
from sync.connectors.base import BaseConnector
from sync.connectors.errors import (
    Action,
    OutcomeUnknown,
    RequestNotSent,
    Retryable,
    classify_exception,
)
from sync.connectors.http import build_client

from .conftest import CLOSE_NAME_FIELD, FAST_RETRY, close_config

#: far more than the kernel buffers between the two ends on one host (4 MB send buffer, an
#: unread receive window): the write is still going when the server hangs up
BIG = 32 * 1024 * 1024


class HangUp:
    """A server that reads each request's head and closes the connection: the body still
    unread, the client's write of it fails (the kernel answers with a reset)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                head += chunk
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def hang_up() -> Iterator[HangUp]:
    server = HangUp()
    yield server
    server.close()


@pytest.fixture
def close(hang_up: HangUp) -> Iterator[BaseConnector]:
    connector = build_connector("close", close_config(base_url=hang_up.url), retry=FAST_RETRY)
    yield connector
    connector.close()


def test_a_create_cut_off_while_being_written_is_sent_again(
    close: BaseConnector, hang_up: HangUp
) -> None:
    """The connection failed under the create's write: the vendor cannot have made the deal,
    so it is tried again like a connect failure (every attempt of the policy), and surfaces
    as a plain retryable error — never as an outcome unknown, which costs a recovery."""
    payload = {"lead_id": "lead_1", CLOSE_NAME_FIELD: "x" * BIG, "value": 100}
    with pytest.raises(Retryable) as caught:
        close.create(payload, idempotency_key="rec_1:close")
    assert not isinstance(caught.value, OutcomeUnknown)
    assert "not sent in full" in str(caught.value)
    assert isinstance(caught.value.__cause__, RequestNotSent)
    assert hang_up.accepted == FAST_RETRY.attempts


def test_the_trace_a_request_already_had_still_hears_every_event(hang_up: HangUp) -> None:
    """Watching the write does not take the ``trace`` extension from a caller that set one."""
    heard: list[str] = []

    def trace(event: str, info: dict[str, Any]) -> None:
        heard.append(event)

    client = build_client(
        system="test",
        base_url=hang_up.url,
        auth=None,
        timeout=10,
        limiter=None,
        retry=FAST_RETRY,
        retry_after=lambda _: None,
    )
    with client, pytest.raises(RequestNotSent):
        client.post("/deals", content=b"x" * BIG, extensions={"trace": trace})
    assert "http11.send_request_body.failed" in heard


def test_not_sent_is_classified_as_never_reaching_the_vendor() -> None:
    """The table retries ``RequestNotSent`` even for a create (it cannot have been applied)."""
    assert classify_exception(RequestNotSent("x")) == (Action.RETRY, False)
    assert classify_exception(httpx.ReadError("x")) == (Action.RETRY, True)
