"""The transport stack every connector's client sends through, outermost first:

``RetryTransport`` (stamina: bounded retries with exponential backoff + jitter, vendor wait
signals honoured) -> ``RateLimitTransport`` (one limiter token per attempt) ->
``InstrumentTransport`` (redacted log line + request counters per attempt) ->
``WriteWatchTransport`` (a write that failed before it was written in full says so) -> the inner
transport (a connection pool per thread, or an emulator's in-process transport in tests).

Whether an outcome is retried is decided by the tables in :mod:`sync.connectors.errors`, never
here. One rule is ours: a non-idempotent request (a POST without an ``Idempotency-Key``) is
retried only when it cannot have reached the server (a connect failure) or was refused with
429, or failed before its request was written in full (``RequestNotSent``); after a timeout or
a 5xx its outcome is unknown and it surfaces, so the engine's create recovery (look the record
up, adopt it) runs instead of a blind duplicate. A POST that only reads (HubSpot's ``search``
and ``batch/read``) carries the :data:`READ_ONLY` extension and is retried like a GET: sending
it twice changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import stamina
import structlog

from sync.connectors.errors import Action, RequestNotSent, classify_exception, classify_status
from sync.connectors.http.redact import redact_headers, redact_url
from sync.connectors.http.stats import RequestStats
from sync.connectors.ratelimit import RateLimiter

RetryAfter = Callable[[httpx.Response], "float | None"]

log = structlog.get_logger("sync.connectors.http")

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
#: the request extension (``httpx``'s per-request ``extensions``, never sent) a connector sets
#: on a POST that changes nothing at the vendor: retried like a GET
READ_ONLY = "crmsync.read_only"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry one request. Bounded in attempts *and* total time.

    The defaults follow Ruddr's advice (1 s, 2 s, 4 s, 8 s; https://docs.ruddr.io/guides/errors);
    tests pass tiny waits. ``max_vendor_wait`` caps a wait the vendor asked for (a reset epoch
    far away must not park a worker for an hour: the request surfaces as RateLimited instead).
    """

    attempts: int = 5
    timeout: float = 60.0
    wait_initial: float = 1.0
    wait_max: float = 30.0
    wait_jitter: float = 1.0
    wait_exp_base: float = 2.0
    max_vendor_wait: float = 60.0

    def stamina_kwargs(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "timeout": self.timeout,
            "wait_initial": self.wait_initial,
            "wait_max": self.wait_max,
            "wait_jitter": self.wait_jitter,
            "wait_exp_base": self.wait_exp_base,
        }


def is_idempotent(request: httpx.Request) -> bool:
    """Whether sending ``request`` twice is as good as once (POST only with an idempotency key,
    or marked :data:`READ_ONLY`)."""
    if request.method in _IDEMPOTENT or "idempotency-key" in request.headers:
        return True
    return bool(request.extensions.get(READ_ONLY))


class InstrumentTransport(httpx.BaseTransport):
    """Counts and logs every attempt, with secrets redacted from URL and headers."""

    def __init__(self, inner: httpx.BaseTransport, *, system: str, stats: RequestStats) -> None:
        self._inner = inner
        self._system = system
        self._stats = stats

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            self._stats.record(
                self._system, request.method, type(exc).__name__, time.perf_counter() - started
            )
            log.warning(
                "http.error",
                **self._fields(request),
                error=type(exc).__name__,
                headers=redact_headers(request.headers),
                ms=_ms(started),
            )
            raise
        self._stats.record(
            self._system,
            request.method,
            response.status_code,
            time.perf_counter() - started,
            response.headers,
        )
        if response.status_code >= 400:
            log.info(
                "http.response",
                **self._fields(request),
                status=response.status_code,
                headers=redact_headers(request.headers),
                ms=_ms(started),
            )
        elif log.is_enabled_for(logging.DEBUG):  # else the redacted URL is made for nothing
            fields = self._fields(request)
            log.debug("http.response", **fields, status=response.status_code, ms=_ms(started))
        return response

    def _fields(self, request: httpx.Request) -> dict[str, Any]:
        return {"system": self._system, "method": request.method, "url": redact_url(request.url)}

    def close(self) -> None:
        self._inner.close()


class WriteWatchTransport(httpx.BaseTransport):
    """Tells a write that failed before its request was written in full from one that may
    have reached the vendor: the only failures where a create may be sent again.

    httpx cannot say: httpcore swallows a failed write and reads on (a server may answer
    early), so a connection that failed under the write surfaces as the *read* failing
    (``ReadError``, ``RemoteProtocolError``) — the same exception as a connection lost after
    the vendor got the whole request. httpcore's ``trace`` extension does say which write
    steps failed; a failure after one did is raised as :class:`RequestNotSent`. Only the
    writes a retry depends on are traced (reads are retried anyway), and a transport that
    traces nothing (an emulator's in-process one) leaves every failure as it was."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if is_idempotent(request):
            return self._inner.handle_request(request)
        extensions = request.extensions
        watch = _WriteWatch(extensions.get("trace"))
        request.extensions = {**extensions, "trace": watch}
        try:
            return self._inner.handle_request(request)
        except httpx.TransportError as exc:
            # as it was: no write failed, the table does not know it (our own bug, as a
            # LocalProtocolError is), or it says "never sent" already
            if watch.failed is None or classify_exception(exc) in (None, (Action.RETRY, False)):
                raise
            raise RequestNotSent(
                f"{type(exc).__name__}: {exc} (after {watch.failed} failed: not sent in full)",
                request=request,
            ) from exc
        finally:
            request.extensions = extensions  # a retry is traced afresh

    def close(self) -> None:
        self._inner.close()


class _WriteWatch:
    """httpcore's ``trace`` callback for one attempt: notes the write step that failed
    (``send_request_headers`` or ``send_request_body``), and passes every event on to the
    callback the request already had."""

    __slots__ = ("_then", "failed")

    def __init__(self, then: Callable[[str, dict[str, Any]], None] | None) -> None:
        self.failed: str | None = None
        self._then = then

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        step, _, outcome = event.rpartition(".")
        if outcome == "failed" and step.endswith(("send_request_headers", "send_request_body")):
            self.failed = self.failed or step
        if self._then is not None:
            self._then(event, info)


class RateLimitTransport(httpx.BaseTransport):
    """Waits for a limiter token for its system before every attempt."""

    def __init__(
        self, inner: httpx.BaseTransport, *, system: str, limiter: RateLimiter | None
    ) -> None:
        self._inner = inner
        self._system = system
        self._limiter = limiter

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._limiter is not None:
            self._limiter.acquire(self._system)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class _RetryResponse(Exception):
    """A response the table says to retry; carries it so the last one can be returned."""

    def __init__(
        self, request: httpx.Request, response: httpx.Response, wait: float | None
    ) -> None:
        # stamina logs repr(exc) on every retry: say what failed, secrets redacted.
        super().__init__(f"HTTP {response.status_code} {request.method} {redact_url(request.url)}")
        self.response = response
        self.wait = wait


class RetryTransport(httpx.BaseTransport):
    """Retries what the tables call retryable, with stamina's backoff or the vendor's wait.

    When retries run out, the last response is returned as is (the connector turns it into a
    typed error) and the last transport exception is re-raised.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        system: str,
        policy: RetryPolicy,
        limiter: RateLimiter | None,
        retry_after: RetryAfter,
    ) -> None:
        self._inner = inner
        self._system = system
        self._policy = policy
        self._limiter = limiter
        self._retry_after = retry_after

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        idempotent = is_idempotent(request)
        try:
            for attempt in stamina.retry_context(
                on=lambda exc: self._backoff(exc, idempotent), **self._policy.stamina_kwargs()
            ):
                with attempt:
                    response = self._inner.handle_request(request)
                    self._raise_if_retryable(request, response, idempotent)
                    return response
        except _RetryResponse as exhausted:
            return exhausted.response
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    def _raise_if_retryable(
        self, request: httpx.Request, response: httpx.Response, idempotent: bool
    ) -> None:
        action = classify_status(response.status_code)
        rate_limited = action is Action.RATE_LIMITED
        if not (rate_limited or (action is Action.RETRY and idempotent)):
            return
        # Buffer the body first: the vendor's wait may live in it (Close's error.rate_reset),
        # and the last response is handed back as is when retries run out.
        response.read()
        response.close()
        wait = self._vendor_wait(response)  # 429, or 503 + Retry-After
        if rate_limited and self._limiter is not None:
            self._limiter.penalize(self._system, wait or self._policy.wait_initial)
        raise _RetryResponse(request, response, wait)

    def _vendor_wait(self, response: httpx.Response) -> float | None:
        try:
            wait = self._retry_after(response)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None  # a malformed signal falls back to exponential backoff
        if wait is None:
            return None
        return min(max(wait, 0.0), self._policy.max_vendor_wait)

    @staticmethod
    def _backoff(exc: Exception, idempotent: bool) -> bool | float:
        """stamina's hook: False = give up, True = exponential backoff, float = wait that long."""
        if isinstance(exc, _RetryResponse):
            return True if exc.wait is None else exc.wait
        classified = classify_exception(exc)
        if classified is None:
            return False
        action, maybe_sent = classified
        return action is Action.RETRY and (idempotent or not maybe_sent)

    def close(self) -> None:
        self._inner.close()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
