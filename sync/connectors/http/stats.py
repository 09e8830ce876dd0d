"""Request counters by system, method and status — a plain in-process counter.

Every attempt the transport makes is counted (retries included: that is what the vendor's
limit sees). A transport failure counts under the exception's name instead of a status code.
Each attempt's duration, and the request budget the vendor says is left (rate-limit headers),
go to the ``observers`` (:mod:`sync.metrics` adds one); nothing here knows about Prometheus.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import NamedTuple


class RequestKey(NamedTuple):
    system: str
    method: str
    status: str  # "200", "429", or an exception name such as "ReadTimeout"


class Budget(NamedTuple):
    """What a vendor's rate-limit headers said was left of its request allowance."""

    remaining: float
    limit: float


#: (key, seconds the attempt took, the budget its response announced or None)
Observer = Callable[[RequestKey, float, Budget | None], None]

# IETF draft / Truto: ratelimit-limit + ratelimit-remaining; GitHub-style X-RateLimit-*; Close
# sends one header, ``ratelimit: limit=160, remaining=159, reset=8``.
_PAIRS = (
    ("ratelimit-remaining", "ratelimit-limit"),
    ("x-ratelimit-remaining", "x-ratelimit-limit"),
)
_COMBINED = re.compile(r"(limit|remaining)\s*=\s*([0-9.]+)")


def budget_from_headers(headers: Mapping[str, str]) -> Budget | None:
    """The request budget a response announces, or None when it says nothing usable."""
    lower = {k.lower(): v for k, v in headers.items()}
    for remaining, limit in _PAIRS:
        if remaining in lower and limit in lower:
            return _budget(lower[remaining], lower[limit])
    combined = dict(_COMBINED.findall(lower.get("ratelimit", "")))
    if "remaining" in combined and "limit" in combined:
        return _budget(combined["remaining"], combined["limit"])
    return None


def _budget(remaining: str, limit: str) -> Budget | None:
    try:
        left, total = float(remaining.split(",")[0]), float(limit.split(",")[0].split(";")[0])
    except ValueError:
        return None
    return Budget(left, total) if total > 0 else None


class RequestStats:
    """Thread-safe counter of requests sent, keyed by :class:`RequestKey`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[RequestKey] = Counter()
        self.observers: list[Observer] = []

    def record(
        self,
        system: str,
        method: str,
        status: int | str,
        seconds: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        key = RequestKey(system, method.upper(), str(status))
        with self._lock:
            self._counts[key] += 1
        if seconds is not None:
            budget = budget_from_headers(headers) if headers is not None else None
            for observe in self.observers:
                observe(key, seconds, budget)

    def count(
        self, system: str | None = None, method: str | None = None, status: int | str | None = None
    ) -> int:
        """How many requests matched every filter given."""
        with self._lock:
            return sum(
                n
                for key, n in self._counts.items()
                if (system is None or key.system == system)
                and (method is None or key.method == method.upper())
                and (status is None or key.status == str(status))
            )

    def snapshot(self) -> dict[RequestKey, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


#: The process-wide counters every client records into unless given its own.
REQUEST_STATS = RequestStats()
