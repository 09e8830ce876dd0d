"""Request counters by system, method and status — a plain in-process counter for now.

Every attempt the transport makes is counted (retries included: that is what the vendor's
limit sees). A transport failure counts under the exception's name instead of a status code.
The runtime exports these to Prometheus later; nothing here knows about Prometheus.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import NamedTuple


class RequestKey(NamedTuple):
    system: str
    method: str
    status: str  # "200", "429", or an exception name such as "ReadTimeout"


class RequestStats:
    """Thread-safe counter of requests sent, keyed by :class:`RequestKey`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[RequestKey] = Counter()

    def record(self, system: str, method: str, status: int | str) -> None:
        with self._lock:
            self._counts[RequestKey(system, method.upper(), str(status))] += 1

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
