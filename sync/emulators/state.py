"""The state every emulator keeps besides its vendor's records: the clock it stamps with,
the tables it orders, the faults and rate limits switched through its control API."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any


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
