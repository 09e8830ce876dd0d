"""The ASGI plumbing every emulator shares: the in-process transport tests use
(:class:`EmulatorTransport`), a request body replayed to the vendor app, an answer captured whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from typing import Any

import anyio
import anyio.from_thread
import httpx
from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INPROCESS_HEADER = "x-emulator-inprocess"
DROP_HEADER = "x-emulator-drop"
#: ``scope["state"]`` key of the callable that aborts the request's connection (set by the
#: server, ``sync.emulators.server``; absent under other ASGI servers)
ABORT_STATE = "emulator.abort_connection"


async def render(
    response: Response, extra: dict[str, str] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = list(response.raw_headers)
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    return response.status_code, headers, bytes(response.body)


def replay(body: bytes) -> Receive:
    """An ASGI ``receive`` that hands over a request body already read."""
    given = False

    async def receive() -> Message:
        nonlocal given
        if given:
            return {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def capture(
    inner: Any, scope: Scope, receive: Receive
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await inner(scope, receive, send)
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    body = b"".join(chunks)
    headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, body


class LoopThread:
    """An event loop thread with a blocking portal into it, which any thread can stop.

    Not ``anyio.from_thread.start_blocking_portal``: a transport dropped unclosed left that
    context manager's generator to the garbage collector, whose ``close()`` calls
    ``portal.call(stop)`` and ``thread.join()`` — blocking work inside whichever thread the
    collector happened to run in. That thread may hold a lock the loop thread needs to end
    (``threading.enumerate()`` holds ``threading._active_limbo_lock`` while it allocates; a
    thread's exit takes that lock): a deadlock. On the loop thread itself, the join raised
    and the loop thread leaked. :meth:`stop_soon` only schedules the stop, never waits.
    """

    def __init__(self) -> None:
        ready: Future[tuple[anyio.from_thread.BlockingPortal, asyncio.AbstractEventLoop]] = Future()
        self._stop: Callable[[], None] | None = None  # set on the loop, before ``ready``
        self._thread = threading.Thread(
            target=self._run, args=(ready,), daemon=True, name="emulator-loop"
        )
        self._thread.start()
        self.portal, self._loop = ready.result()

    def _run(self, ready: Future[Any]) -> None:
        async def serve() -> None:
            async with anyio.from_thread.BlockingPortal() as portal:
                stop = asyncio.Event()
                self._stop = stop.set  # only ever called on this loop (call_soon_threadsafe)
                ready.set_result((portal, asyncio.get_running_loop()))
                await stop.wait()
                # calls still running finish first (the portal's exit waits for them), as with
                # ``start_blocking_portal``'s normal exit; a dropped transport has none

        try:
            anyio.run(serve)
        except BaseException as exc:
            if ready.done():
                raise
            ready.set_exception(exc)  # the loop never started: raised in ``__init__``

    def stop_soon(self) -> None:
        """Ask the loop to end; returns at once, from any thread (a GC finalizer included)."""
        if self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self._loop.call_soon_threadsafe(self._stop)

    def close(self) -> None:
        """Stop the loop and wait for its thread (unless called on that thread)."""
        self.stop_soon()
        if threading.current_thread() is not self._thread:
            self._thread.join()


class EmulatorTransport(httpx.BaseTransport):
    """Runs an emulator in-process for a synchronous ``httpx.Client``.

    One event loop thread per transport (anyio blocking portal) serves every request, so the
    emulator's async handlers never race; latency faults still overlap across client threads.

    ``in_flight`` keeps the (start, end) ``perf_counter`` interval of every call: the stand-in
    for a network round trip, which benchmarks subtract from wall time to get the client's own.
    """

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop: LoopThread | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._lock = threading.Lock()
        self.in_flight: list[tuple[float, float]] = []
        #: the event loop thread(s) that ran the emulator: their CPU is the vendor's, not the
        #: client's (``cpu_seconds``)
        self.loop_threads: set[int] = set()

    def _get_portal(self) -> anyio.from_thread.BlockingPortal:
        with self._lock:
            if self._loop is None:
                self._loop = LoopThread()
                # a transport dropped unclosed: its loop is stopped, never waited for (the
                # finalizer must not block whichever thread the collector runs in)
                self._finalizer = weakref.finalize(self, self._loop.stop_soon)
            return self._loop.portal

    def cpu_seconds(self) -> float:
        """CPU time the emulator's event loop thread(s) used so far (Linux thread clocks)."""
        total = 0.0
        for ident in list(self.loop_threads):
            with contextlib.suppress(OSError, OverflowError):  # a thread that has ended
                total += time.clock_gettime(time.pthread_getcpuclockid(ident))
        return total

    async def _send(self, request: httpx.Request) -> httpx.Response:
        self.loop_threads.add(threading.get_ident())
        response = await self._asgi.handle_async_request(request)
        content = await response.aread()
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        request.headers[INPROCESS_HEADER] = "1"
        body = request.read()
        copy = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        try:
            response: httpx.Response = self._get_portal().call(self._send, copy)
        finally:
            self.in_flight.append((started, time.perf_counter()))  # list.append: thread-safe
        if response.headers.get(DROP_HEADER):
            raise httpx.ReadTimeout("emulator: no answer (injected)", request=request)
        response.request = request
        return response

    def close(self) -> None:
        """Stop the event loop thread and wait for it (the deterministic way: callers close
        what they open; the finalizer is only the safety net)."""
        with self._lock:
            loop, self._loop = self._loop, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
        if loop is not None:
            loop.close()
