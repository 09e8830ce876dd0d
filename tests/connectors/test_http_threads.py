"""A system's client over real sockets gives each thread its own connections: no thread's
request can be closed under it by another thread's pool bookkeeping (encode/httpcore#1110,
seen as ``ReadError: [Errno 9] Bad file descriptor`` on Close creates in the 200,000 load)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import httpx
import pytest

from sync.connectors.http import build_client
from sync.connectors.http.threads import ThreadTransports

from .conftest import FAST_RETRY


class KeepAlive(ThreadingHTTPServer):
    """An HTTP/1.1 server keeping connections alive; notes the client port of each request
    and of each connection the client closed."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ports: list[int] = []
        self.closed: set[int] = set()
        self.changed = threading.Condition()

    def note(self, into: str, port: int) -> None:
        with self.changed:
            if into == "ports":
                self.ports.append(port)
            else:
                self.closed.add(port)
            self.changed.notify_all()

    def wait_closed(self, ports: set[int]) -> bool:
        """Whether the client closed every connection in ``ports`` (waits up to 10 s)."""
        with self.changed:
            return self.changed.wait_for(lambda: ports <= self.closed, timeout=10)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: KeepAlive

    def do_GET(self) -> None:
        self.server.note("ports", self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def finish(self) -> None:
        super().finish()
        self.server.note("closed", self.client_address[1])

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[KeepAlive]:
    served = KeepAlive()
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()


@pytest.fixture
def client(server: KeepAlive) -> Iterator[httpx.Client]:
    """A system's client as connectors build it, on the network (its default transport)."""
    host, port = server.server_address[:2]
    built = build_client(
        system="test",
        base_url=f"http://{host!s}:{port}",
        auth=None,
        timeout=10,
        limiter=None,
        retry=FAST_RETRY,
        retry_after=lambda _: None,
    )
    yield built
    built.close()


def _in_thread(client: httpx.Client, requests: int) -> None:
    def send() -> None:
        for _ in range(requests):
            client.get("/deal").raise_for_status()

    thread = threading.Thread(target=send)
    thread.start()
    thread.join()


def _transports(client: httpx.Client) -> ThreadTransports:
    stack = client._transport
    while not isinstance(stack, ThreadTransports):
        stack = stack._inner  # type: ignore[attr-defined]
    return stack


def test_a_thread_keeps_its_connection_and_another_thread_never_gets_it(
    server: KeepAlive, client: httpx.Client
) -> None:
    """Two requests of one thread go over one kept-alive connection; a second thread,
    sending after the first left that connection idle, gets a connection of its own (a pool
    shared across threads hands it the idle one: both threads' requests on one socket)."""
    _in_thread(client, 2)
    client.get("/deal").raise_for_status()
    client.get("/deal").raise_for_status()
    first, again, other, other_again = server.ports
    assert first == again and other == other_again
    assert other != first


def test_the_connections_of_ended_threads_are_closed(
    server: KeepAlive, client: httpx.Client
) -> None:
    """A thread that ended (a drain's push threads end with the drain) leaves no connection
    open once another thread sends: its pool is closed by the newcomer, which cannot be
    using it; until then it stays as it was."""
    for _ in range(3):
        _in_thread(client, 1)
    first, second, last = server.ports
    assert server.wait_closed({first, second})  # closed as the second and third arrived
    assert last not in server.closed and _transports(client).threads() == 1
    client.get("/deal").raise_for_status()
    assert server.wait_closed({last})
    assert _transports(client).threads() == 1  # this thread's own


def test_closing_the_client_closes_every_threads_connections(
    server: KeepAlive, client: httpx.Client
) -> None:
    """``close`` (a connector's, the engine's) closes the connections of every thread."""
    client.get("/deal").raise_for_status()
    _in_thread(client, 1)
    client.close()
    assert server.wait_closed(set(server.ports))
    assert _transports(client).threads() == 0


def test_a_connection_expiring_as_a_thread_starts_on_it_is_not_closed_under_it(
    server: KeepAlive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 200,000 load's ``ReadError: [Errno 9] Bad file descriptor``, replayed in order:
    thread A is handed a kept-alive connection; before it starts on it the connection's
    keep-alive runs out; thread B's request sweeps the pool and closes what expired, after A
    wrote its create and before A reads the answer. A pool shared by the threads closes A's
    socket under it (the create made, its answer lost); a pool per thread closes only B's own
    connection, and A reads its answer. The hooks only order the two threads."""
    host, port = server.server_address[:2]
    url = f"http://{host!s}:{port}/opportunity/"
    short = httpx.Limits(keepalive_expiry=0.2)
    client = httpx.Client(transport=ThreadTransports(lambda: httpx.HTTPTransport(limits=short)))
    client.post(url, json={}).raise_for_status()  # a connection, idle, expiring in 0.2 s
    a_started, decided, written, closed = (threading.Event() for _ in range(4))

    pool = httpcore.ConnectionPool
    start_connection = httpcore.HTTPConnection.handle_request
    sweep = pool._close_connections  # type: ignore[attr-defined]

    def start(self: httpcore.HTTPConnection, request: httpcore.Request) -> httpcore.Response:
        if threading.current_thread() is a:
            a_started.set()
            decided.wait(5)  # handed a connection, not on it until B's sweep decided
        return start_connection(self, request)

    def close(self: httpcore.ConnectionPool, closing: list[object]) -> None:
        if closing and threading.current_thread() is not a:
            decided.set()
            written.wait(5)  # B closes what it swept once A wrote its create
            sweep(self, closing)
            closed.set()
            return
        sweep(self, closing)

    def trace(event: str, info: dict[str, object]) -> None:
        if event == "http11.send_request_body.complete":
            written.set()
            closed.wait(5)  # A reads its answer after B's close

    answers: list[int | str] = []

    def create() -> None:
        try:
            response = client.post(url, json={"name": "A"}, extensions={"trace": trace})
            answers.append(response.status_code)
        except httpx.TransportError as exc:
            answers.append(f"{type(exc).__name__}: {exc}")

    monkeypatch.setattr(httpcore.HTTPConnection, "handle_request", start)
    monkeypatch.setattr(pool, "_close_connections", close)
    a = threading.Thread(target=create)
    a.start()
    assert a_started.wait(5)
    time.sleep(0.3)  # the connection kept alive expires while A is about to use it
    client.post(url, json={"name": "B"}).raise_for_status()
    a.join(10)
    client.close()
    assert answers == [201]
