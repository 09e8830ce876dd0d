"""``ThreadTransports``: a connection pool per thread, so no thread ever touches a socket
another thread is sending on.

One system's client is shared by every thread that talks to it (a drain's push threads, the
capture, recoveries). httpcore's pool (1.0.9) shared across threads closes connections it
takes for idle — surplus keep-alives, expired ones, ones whose socket reads as closed —
without looking at whether another thread's request was just handed that connection and is
already writing on it (encode/httpcore#1110, open). The sender then fails on a socket closed
under it: ``ReadError: [Errno 9] Bad file descriptor``, after its request may have reached the
vendor, so a create's outcome became unknown (two in the 200,000-deal load, three in a
100,000 probe) and cost a recovery listing every deal created since. A pool used by one thread
only is never swept by another: its passes, its connections and its closes are that thread's.

A thread sends one request at a time (responses are read whole before the next request), so
its pool keeps one connection alive; connections are reused across the thread's requests as
before, not across threads. The pools of threads that ended (a drain's pool threads end with
the drain) are closed when the next thread arrives, by a thread that no longer can be using
them, and every pool on :meth:`close`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx


class ThreadTransports(httpx.BaseTransport):
    """Sends each request through the calling thread's own transport, built on its first
    request by ``build`` (an ``httpx.HTTPTransport``)."""

    def __init__(self, build: Callable[[], httpx.BaseTransport]) -> None:
        self._build = build
        self._local = threading.local()
        #: every thread's transport, by the thread that owns it (closed when it has ended)
        self._owned: dict[threading.Thread, httpx.BaseTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport: httpx.BaseTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = self._local.transport = self._adopt()
        return transport.handle_request(request)

    def _adopt(self) -> httpx.BaseTransport:
        """The calling thread's new transport; the transports of threads that ended are
        closed now (nobody can be using their connections any more)."""
        mine = self._build()
        with self._lock:
            ended = [thread for thread in self._owned if not thread.is_alive()]
            left = [self._owned.pop(thread) for thread in ended]
            self._owned[threading.current_thread()] = mine
        for transport in left:
            transport.close()
        return mine

    def threads(self) -> int:
        """How many threads' transports are open (ended threads' until the next arrives)."""
        with self._lock:
            return len(self._owned)

    def close(self) -> None:
        with self._lock:
            owned, self._owned = list(self._owned.values()), {}
        for transport in owned:
            transport.close()
        self._local = threading.local()  # a thread sending after close builds a new one
