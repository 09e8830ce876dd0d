"""What every vendor emulator shares: clock, request log, faults, rate limits, control API.

An emulator is a Starlette app: the vendor's routes under the vendor's path prefix, plus a
control API under ``/_emulator/`` outside the vendor's paths and auth. Tests use it in-process
through :class:`EmulatorTransport` (an ``httpx.BaseTransport``); ``crmsync emulate`` serves it
over real HTTP with uvicorn. Emulators are written from the vendors' docs (shared/vendors.md,
shared/seeds/, shared/specs/) and share no code with ``sync.connectors`` or ``sync.mapping``.

Every vendor request passes, in order: request log -> auth -> rate limit -> faults -> handler.
Faults (all off by default, switched by ``POST /_emulator/faults``):

- ``error_rate``: answer one of ``statuses`` (default 500/502/503) *before* doing anything;
- ``latency_ms``: sleep before answering (concurrency stays possible: handlers are async);
- ``timeout_rate``: never answer. In-process the transport raises ``httpx.ReadTimeout``; over
  HTTP the server hangs ``hang_seconds`` and then drops the connection (the socket is aborted
  with no byte of an answer: the client meets a real dropped connection, or its own read
  timeout first);
- ``fail_after_commit_rate``: run the handler (the write is applied), then answer 502 or drop
  the connection (half each) — the outcome a client cannot know.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio.from_thread
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INPROCESS_HEADER = "x-emulator-inprocess"
DROP_HEADER = "x-emulator-drop"
#: ``scope["state"]`` key of the callable that aborts the request's connection (set by the
#: server, ``sync.emulators.server``; absent under other ASGI servers)
ABORT_STATE = "emulator.abort_connection"


#: A vendor endpoint: request in, the vendor's answer out.
Handler = Callable[[Request], Awaitable[Response]]
#: The methods a vendor route accepts, so a wrong one meets the vendor's 405, not Starlette's.
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class VendorError(Exception):
    """An error answer in the vendor's own shape, raised from deep inside a handler (parsing,
    validation) and rendered by :meth:`Emulator.dispatch`. Subclasses that keep another shape
    override :meth:`response`."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return JSONResponse(self.body, self.status, headers=self.headers or None)


class _Dropped(Exception):
    """The connection was aborted on purpose: send nothing."""


class Clock:
    """Server clock: real time plus an offset, strictly increasing by at least 1 µs per call.

    Vendors format stamps at their own precision (Ruddr ms, Close µs, ParsaLink s), so at a
    coarse precision several writes can share one stamp — as they do on the real APIs.
    """

    def __init__(self) -> None:
        self._offset = dt.timedelta(0)
        self._last = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            candidate = dt.datetime.now(dt.UTC) + self._offset
            if candidate <= self._last:
                candidate = self._last + dt.timedelta(microseconds=1)
            self._last = candidate
            return candidate

    def peek(self) -> dt.datetime:
        """The current time without consuming a tick (for reads and rate limits)."""
        return max(dt.datetime.now(dt.UTC) + self._offset, self._last)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class Ordered:
    """A collection in listing order, and each record id's index in it."""

    rows: list[dict[str, Any]]
    position: dict[str, int]


class Table(dict[str, dict[str, Any]]):
    """A collection (id -> record) that counts the changes to its set of records, so a listing
    order sorted once stays valid until a record is added or deleted — however it is (tests
    delete straight from the dict, behind the API's back)."""

    version = 0

    def touch(self) -> None:
        self.version += 1

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self.touch()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.touch()
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.touch()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, dict[str, Any]]:
        self.touch()
        return super().popitem()

    def clear(self) -> None:
        self.touch()
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.touch()
        super().update(*args, **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.touch()
        return super().setdefault(key, default)


def tables(*names: str) -> dict[str, Table]:
    """Empty collections, one per name (an emulator's ``reset_state``)."""
    return {name: Table() for name in names}


@dataclass
class Faults:
    error_rate: float = 0.0
    statuses: list[int] = field(default_factory=lambda: [500, 502, 503])
    latency_ms: float = 0.0
    timeout_rate: float = 0.0
    fail_after_commit_rate: float = 0.0
    hang_seconds: float = 30.0


@dataclass
class RateLimitState:
    """A token bucket per key. ``rate`` tokens/s, ``burst`` capacity."""

    enabled: bool
    rate: float
    burst: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, t)

    def take(self, key: str) -> tuple[bool, float, float]:
        """Take one token. Returns (allowed, tokens left, seconds until one token is back)."""
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            return True, tokens - 1, 0.0
        self.buckets[key] = (tokens, now)
        return False, tokens, (1 - tokens) / self.rate


class Emulator:
    """Base class of one vendor's emulator. Subclasses set the class attributes and implement
    ``vendor_routes``, ``authenticate``, ``rate_limited_response`` and ``reset_state``."""

    vendor: ClassVar[str] = ""
    prefix: ClassVar[str] = ""  # the vendor's path prefix, e.g. "/api/workspace"
    default_rate: ClassVar[float] = 20.0  # documented limit, requests per second
    default_burst: ClassVar[float] = 20.0

    def __init__(
        self, *, seed: int = 1, seed_opportunities: int = 0, rate_limited: bool = False
    ) -> None:
        self.seed = seed
        self.seed_opportunities = seed_opportunities
        self.clock = Clock()
        self.faults = Faults()
        self.rate_limit = RateLimitState(rate_limited, self.default_rate, self.default_burst)
        self.requests: list[dict[str, Any]] = []
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}
        self._orders: dict[tuple[str, str], tuple[int, int, Ordered]] = {}
        self._fault_rng = random.Random(seed)
        #: Whether renaming a company (Ruddr company, Close lead, ParsaLink account, Truto
        #: account) moves the modified stamp of the deals under it. No vendor documents it
        #: either way, so it is off by default and the tests run both cases.
        self.rename_touches_deals = False
        self.reset_state(seed=seed, opportunities=seed_opportunities)
        self.app = self._build_app()

    # -- to implement ------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    def reset_state(self, *, seed: int, opportunities: int) -> None:
        """Rebuild reference data and ``opportunities`` seeded opportunities from ``seed``."""
        raise NotImplementedError

    def add_opportunities(self, count: int, seed: int) -> None:
        """Add ``count`` realistic random opportunities (``POST /_emulator/seed``)."""
        raise NotImplementedError

    def authenticate(self, request: Request) -> Response | None:
        """None when the request is authenticated, else the vendor's 401 response."""
        raise NotImplementedError

    def rate_limited_response(self, retry_in: float) -> Response:
        """The vendor's 429 answer."""
        raise NotImplementedError

    def rate_limit_key(self, request: Request) -> str:
        """Which bucket a request draws from (Close: per endpoint group)."""
        return "all"

    def rate_limit_headers(self, remaining: float, reset_in: float) -> dict[str, str]:
        """Headers the vendor sends on every answer about its limit (none by default)."""
        return {}

    def check_rate_limit(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        """Draw on the request's budget: (the vendor's 429 or None, the limit headers).
        One token bucket per ``rate_limit_key`` unless a vendor keeps several budgets."""
        allowed, left, reset_in = self.rate_limit.take(self.rate_limit_key(request))
        extra = self.rate_limit_headers(left, reset_in or 1 / self.rate_limit.rate)
        return (None if allowed else self.rate_limited_response(reset_in)), extra

    def control_routes(self) -> list[BaseRoute]:
        """Vendor-specific control endpoints under ``/_emulator/`` (none by default)."""
        return []

    def set_fields(self, collection: str, record_id: str, fields: dict[str, Any]) -> None:
        """Set fields the vendor API treats as read-only (``POST /_emulator/set``)."""
        table = self.collections[collection]
        table[record_id].update(fields)
        if isinstance(table, Table):
            table.touch()  # a stamp the order sorts by may have moved

    def not_found_response(self) -> Response:
        """The vendor's answer to a path it does not have."""
        return JSONResponse({"error": "Not found."}, 404)

    def method_not_allowed(self, method: str) -> Response:
        """The vendor's answer to a method a path does not take."""
        return JSONResponse({"error": f"Method {method} not allowed."}, 405)

    # -- routing -------------------------------------------------------------------------
    def dispatch(self, **handlers: Handler) -> Handler:
        """One endpoint for a path: the handler of the request's method (``get=…``,
        ``post=…``), the vendor's 405 for any other, and a :class:`VendorError` raised
        anywhere below rendered as the vendor's answer."""

        async def endpoint(request: Request) -> Response:
            handler = handlers.get(request.method.lower())
            if handler is None:
                return self.method_not_allowed(request.method)
            try:
                return await handler(request)
            except VendorError as exc:
                return exc.response()

        return endpoint

    async def not_found(self, request: Request) -> Response:
        """The catch-all route's endpoint (``Route("/{path:path}", self.not_found, …)``)."""
        return self.not_found_response()

    # -- listing order -----------------------------------------------------------------
    def ordered(
        self, collection: str, by: str, key: Callable[[dict[str, Any]], Any], *, newest_first: bool
    ) -> Ordered:
        """``collection`` (a :class:`Table`) sorted by ``key`` (``by`` names the order), with
        each id's position. Sorted once per change of the collection instead of on every page
        request: a scan of 100,000 deals reads 1,000 pages. Only for keys fixed at create
        (``createdAt``, id); ``set_fields`` counts as a change."""
        table = self.collections[collection]
        assert isinstance(table, Table), f"{collection} is not a Table"
        cached = self._orders.get((collection, by))
        if cached is not None and cached[:2] == (id(table), table.version):
            return cached[2]
        rows = sorted(table.values(), key=key, reverse=newest_first)
        ordered = Ordered(rows, {row["id"]: index for index, row in enumerate(rows)})
        self._orders[(collection, by)] = (id(table), table.version, ordered)
        return ordered

    # -- in-process use ----------------------------------------------------------------
    def transport(self) -> EmulatorTransport:
        return EmulatorTransport(self.app)

    # -- machinery ---------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        control = [
            Route("/_emulator/reset", self._ctl_reset, methods=["POST"]),
            Route("/_emulator/seed", self._ctl_seed, methods=["POST"]),
            Route("/_emulator/requests", self._ctl_requests, methods=["GET"]),
            Route("/_emulator/faults", self._ctl_faults, methods=["POST", "GET"]),
            Route("/_emulator/rate_limit", self._ctl_rate_limit, methods=["POST"]),
            Route("/_emulator/clock", self._ctl_clock, methods=["POST"]),
            Route("/_emulator/set", self._ctl_set, methods=["POST"]),
            *self.control_routes(),
        ]
        vendor = Starlette(routes=self.vendor_routes())
        vendor.router.redirect_slashes = False
        app = Starlette(routes=[*control, Mount(self.prefix, app=self._guard(vendor))])
        app.router.redirect_slashes = False
        return app

    def _guard(self, inner: Callable[[Scope, Receive, Send], Awaitable[None]]) -> Any:
        """ASGI wrapper around vendor paths: log, auth, rate limit, faults."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            started = time.perf_counter()
            request = Request(scope, receive)
            try:
                status, headers, body = await self._answer(request, inner, scope, receive)
            except _Dropped:
                self._log(request, 0, started)  # 0: no answer at all
                return
            headers = [(k, v) for k, v in headers if k.lower() != b"date"]
            headers.append((b"date", self.http_date().encode()))
            self._log(request, status, started)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return app

    async def _answer(
        self, request: Request, inner: Any, scope: Scope, receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        refused = self.authenticate(request)
        if refused is not None:
            return await _render(refused)
        extra: dict[str, str] = {}
        if self.rate_limit.enabled:
            refused, extra = self.check_rate_limit(request)
            if refused is not None:
                return await _render(refused, extra)
        faults, rng = self.faults, self._fault_rng
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.error_rate and rng.random() < faults.error_rate:
            status = rng.choice(faults.statuses)
            return await _render(JSONResponse({"error": "injected fault"}, status), extra)
        if faults.timeout_rate and rng.random() < faults.timeout_rate:
            return await self._drop(request)
        captured = await _capture(inner, scope, receive)
        writing = request.method in {"POST", "PUT", "PATCH", "DELETE"}
        if writing and faults.fail_after_commit_rate:  # noqa: SIM102 — two draws, on purpose
            if rng.random() < faults.fail_after_commit_rate:
                if rng.random() < 0.5:
                    return await self._drop(request)
                return await _render(JSONResponse({"error": "bad gateway"}, 502), extra)
        status, headers, body = captured
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        return status, headers, body

    async def _drop(self, request: Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if request.headers.get(INPROCESS_HEADER):
            return 599, [(DROP_HEADER.encode(), b"1")], b""
        await asyncio.sleep(self.faults.hang_seconds)
        abort = request.scope.get("state", {}).get(ABORT_STATE)
        if abort is None:  # another ASGI server: the best we can do is fail the request
            raise ConnectionAbortedError("emulator dropped the connection (injected timeout)")
        abort()
        await asyncio.sleep(0)  # let the server see the connection lost, so it answers nothing
        raise _Dropped

    def _log(self, request: Request, status: int, started: float) -> None:
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "started": started,  # time.perf_counter() when the request arrived
            }
        )

    def http_date(self) -> str:
        """The ``Date`` header every answer carries, from the emulator's own clock (so an
        advanced clock shows), in whole seconds as RFC 7231 has it: the fraction is dropped."""
        return email.utils.format_datetime(self.clock.peek(), usegmt=True)

    def request_counts(self) -> dict[str, Any]:
        by_method = Counter(r["method"] for r in self.requests)
        by_status = Counter(str(r["status"]) for r in self.requests)
        by_route = Counter(f"{r['method']} {r['path']}" for r in self.requests)
        return {
            "total": len(self.requests),
            "by_method": dict(by_method),
            "by_status": dict(by_status),
            "by_route": dict(by_route),
        }

    # -- control API ---------------------------------------------------------------------
    async def _ctl_reset(self, request: Request) -> Response:
        self.requests.clear()
        self.faults = Faults()
        self.clock = Clock()
        self.rate_limit.buckets.clear()
        self.reset_state(seed=self.seed, opportunities=self.seed_opportunities)
        return JSONResponse({"ok": True})

    async def _ctl_seed(self, request: Request) -> Response:
        body = await _json(request)
        count = int(body.get("opportunities", 0))
        self.add_opportunities(count, int(body.get("seed", self.seed)))
        return JSONResponse({"ok": True, "added": count})

    async def _ctl_requests(self, request: Request) -> Response:
        return JSONResponse({"requests": self.requests, "counts": self.request_counts()})

    async def _ctl_faults(self, request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            self.faults = Faults(**{**Faults().__dict__, **body})
        return JSONResponse(self.faults.__dict__)

    async def _ctl_rate_limit(self, request: Request) -> Response:
        body = await _json(request)
        rate = float(body.get("rate") or self.default_rate)
        burst = float(body.get("burst") or (self.default_burst * rate / self.default_rate))
        self.rate_limit = RateLimitState(bool(body.get("enabled", True)), rate, burst)
        return JSONResponse({"enabled": self.rate_limit.enabled, "rate": rate, "burst": burst})

    async def _ctl_clock(self, request: Request) -> Response:
        body = await _json(request)
        self.clock.advance(float(body.get("advance_seconds", 0)))
        return JSONResponse({"now": self.clock.peek().isoformat()})

    async def _ctl_set(self, request: Request) -> Response:
        body = await _json(request)
        try:
            self.set_fields(body["collection"], body["id"], dict(body["fields"]))
        except KeyError as exc:
            return JSONResponse({"error": f"unknown {exc}"}, 404)
        return JSONResponse({"ok": True})


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return dict(json.loads(raw)) if raw else {}


async def _render(
    response: Response, extra: dict[str, str] | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = list(response.raw_headers)
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    return response.status_code, headers, bytes(response.body)


async def _capture(
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


class EmulatorTransport(httpx.BaseTransport):
    """Runs an emulator in-process for a synchronous ``httpx.Client``.

    One event loop thread per transport (anyio blocking portal) serves every request, so the
    emulator's async handlers never race; latency faults still overlap across client threads.

    ``in_flight`` keeps the (start, end) ``perf_counter`` interval of every call: the stand-in
    for a network round trip, which benchmarks subtract from wall time to get the client's own.
    """

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._portal_cm: Any = None
        self._portal: Any = None
        self._lock = threading.Lock()
        self.in_flight: list[tuple[float, float]] = []
        #: the event loop thread(s) that ran the emulator: their CPU is the vendor's, not the
        #: client's (``cpu_seconds``)
        self.loop_threads: set[int] = set()

    def _get_portal(self) -> Any:
        with self._lock:
            if self._portal is None:
                self._portal_cm = anyio.from_thread.start_blocking_portal()
                self._portal = self._portal_cm.__enter__()
            return self._portal

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
        with self._lock:
            if self._portal_cm is not None:
                self._portal_cm.__exit__(None, None, None)
                self._portal_cm = self._portal = None
