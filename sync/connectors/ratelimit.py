"""Client-side rate limiting: the ``RateLimiter`` protocol and an in-process token bucket.

The HTTP layer asks the limiter for a token before every send (``acquire``) and tells it when
the vendor answered 429 anyway (``penalize``), so every thread talking to that system slows down,
not just the one that was refused. The protocol is kept tiny on purpose: the Redis-backed
limiter for distributed workers implements the same two methods.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class RateLimiter(Protocol):
    """Per-system admission control shared by every client of a process (or cluster)."""

    def acquire(self, system: str) -> None:
        """Block until ``system`` may be sent one more request."""
        ...

    def penalize(self, system: str, seconds: float) -> None:
        """The vendor refused us (429): let nobody send to ``system`` for ``seconds``."""
        ...


@runtime_checkable
class Adaptive(Protocol):
    """A limiter a connector may size from what the vendor's answers say of its allowance
    (HubSpot's ``X-HubSpot-RateLimit-*``), shared like the configured limit."""

    def resize(self, system: str, rate: float, burst: float) -> None:
        """Limit ``system`` to ``rate``/s and ``burst``, keeping the tokens it has (at most
        ``burst``): every answer may say it, so resizing never refills the bucket."""
        ...

    def hold(self, system: str, seconds: float) -> None:
        """Let nobody send to ``system`` for ``seconds``: the vendor says its window is almost
        spent. Not a refusal: the rate stays as it is (``penalize`` may slow it)."""
        ...


@dataclass(slots=True)
class _Bucket:
    rate: float  # tokens per second
    burst: float  # capacity
    tokens: float
    stamp: float  # monotonic time ``tokens`` was computed at
    blocked_until: float = 0.0


class TokenBucket:
    """Thread-safe token bucket per system, reserving tokens ahead of time.

    ``acquire`` takes a token even when the bucket is empty (it goes negative) and sleeps until
    that token would have arrived: callers are served in arrival order at exactly ``rate``, with
    no busy loop and no thundering herd when a penalty ends. Systems that were never configured
    are not limited.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def configure(self, system: str, rate: float, burst: float | None = None) -> None:
        """Limit ``system`` to ``rate`` requests/s with ``burst`` capacity (default: ``rate``)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        capacity = max(1.0, burst if burst is not None else rate)
        with self._lock:
            self._buckets[system] = _Bucket(rate, capacity, capacity, self._clock())

    def acquire(self, system: str) -> None:
        wait = self.reserve(system)
        if wait > 0:
            self._sleep(wait)

    def reserve(self, system: str) -> float:
        """Take one token now; return how long the caller must wait before using it."""
        with self._lock:
            bucket = self._buckets.get(system)
            if bucket is None:
                return 0.0
            now = self._clock()
            start = max(now, bucket.blocked_until)
            self._refill(bucket, start)
            bucket.tokens -= 1
            wait = start - now
            if bucket.tokens < 0:
                wait += -bucket.tokens / bucket.rate
            return wait

    def delay(self, system: str) -> float:
        """How long a request to ``system`` made now would wait (taking no token): what a
        progress line says when a vendor's rate limit is what a run waits for."""
        with self._lock:
            bucket = self._buckets.get(system)
            if bucket is None:
                return 0.0
            now = self._clock()
            start = max(now, bucket.blocked_until)
            tokens = min(bucket.burst, bucket.tokens + max(0.0, start - bucket.stamp) * bucket.rate)
            return start - now + (max(0.0, 1 - tokens) / bucket.rate if tokens < 1 else 0.0)

    def rate(self, system: str) -> float | None:
        """The configured requests per second of ``system`` (None: not limited)."""
        with self._lock:
            bucket = self._buckets.get(system)
            return bucket.rate if bucket is not None else None

    def resize(self, system: str, rate: float, burst: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        capacity = max(1.0, burst)
        with self._lock:
            bucket = self._buckets.get(system)
            if bucket is None:
                self._buckets[system] = _Bucket(rate, capacity, capacity, self._clock())
                return
            self._refill(bucket, self._clock())
            bucket.rate, bucket.burst = rate, capacity
            bucket.tokens = min(bucket.tokens, capacity)

    def hold(self, system: str, seconds: float) -> None:
        self.penalize(system, seconds)

    def penalize(self, system: str, seconds: float) -> None:
        with self._lock:
            bucket = self._buckets.get(system)
            if bucket is None or seconds <= 0:
                return
            until = self._clock() + seconds
            if until > bucket.blocked_until:
                # Start empty after the penalty: a full burst right then would trip 429 again.
                bucket.blocked_until = until
                bucket.tokens = min(bucket.tokens, 0.0)
                bucket.stamp = until

    @staticmethod
    def _refill(bucket: _Bucket, now: float) -> None:
        if now > bucket.stamp:
            bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.stamp) * bucket.rate)
            bucket.stamp = now
