"""Request counters by system, method and status — a plain in-process counter.

Every attempt the transport makes is counted (retries included: that is what the vendor's
limit sees). A transport failure counts under the exception's name instead of a status code.
Each attempt's duration, and the request budget the vendor says is left (rate-limit headers),
go to the ``observers`` (:mod:`sync.metrics` adds one); nothing here knows about Prometheus.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import NamedTuple

from sync.timefmt import utcnow


class RequestKey(NamedTuple):
    system: str
    method: str
    status: str  # "200", "429", or an exception name such as "ReadTimeout"


class Budget(NamedTuple):
    """What a vendor's rate-limit headers said was left of its request allowance.

    ``reset_in``: seconds until the allowance is whole again, when the vendor says;
    ``window``: the allowance's period when the vendor names it (Salesforce's is a day)."""

    remaining: float
    limit: float
    reset_in: float | None = None
    window: str | None = None


class SeenBudget(NamedTuple):
    """The latest budget a system's responses announced, and when (UTC)."""

    budget: Budget
    seen_at: dt.datetime


#: (key, seconds the attempt took, the budget its response announced or None)
Observer = Callable[[RequestKey, float, Budget | None], None]

# IETF draft / Truto: ratelimit-limit + ratelimit-remaining; GitHub-style X-RateLimit-*; Close
# sends one header, ``ratelimit: limit=160, remaining=159, reset=8``.
# ParsaLink's ``X-RateLimit-Reset`` is a Unix second, Truto's ``ratelimit-reset`` a delay;
# HubSpot sends ``X-HubSpot-RateLimit-Remaining/-Max/-Interval-Milliseconds``; Salesforce
# ``Sforce-Limit-Info: api-usage=used/allocation`` (a daily allocation).
_PAIRS = (
    ("ratelimit-remaining", "ratelimit-limit", "ratelimit-reset"),
    ("x-ratelimit-remaining", "x-ratelimit-limit", "x-ratelimit-reset"),
)
_COMBINED = re.compile(r"(limit|remaining|reset)\s*=\s*([0-9.]+)")
_SFORCE_USAGE = re.compile(r"(?<![\w-])api-usage\s*=\s*(\d+)\s*/\s*(\d+)")
_HUBSPOT = "x-hubspot-ratelimit-"
#: a reset above this is a Unix timestamp, not a delay (about 2001-09-09)
_EPOCH_FLOOR = 1_000_000_000


def budget_from_headers(headers: Mapping[str, str]) -> Budget | None:
    """The request budget a response announces, or None when it says nothing usable."""
    lower = {k.lower(): v for k, v in headers.items()}
    for remaining, limit, reset in _PAIRS:
        if remaining in lower and limit in lower:
            return _budget(lower[remaining], lower[limit], lower.get(reset))
    combined = dict(_COMBINED.findall(lower.get("ratelimit", "")))
    if "remaining" in combined and "limit" in combined:
        return _budget(combined["remaining"], combined["limit"], combined.get("reset"))
    usage = sforce_usage(lower.get("sforce-limit-info", ""))
    if usage is not None:
        used, total = usage
        return Budget(max(0, total - used), total, window="day") if total > 0 else None
    return _hubspot_budget(lower)


def sforce_usage(value: str) -> tuple[int, int] | None:
    """(used, allocation) of Salesforce's ``Sforce-Limit-Info: api-usage=N/M`` (the header may
    list other limits too, ``per-app-api-usage=…``); None when it names no api-usage. The one
    parser of that header: the budget above and the Salesforce connector's reserve read it."""
    usage = _SFORCE_USAGE.search(value)
    return (int(usage.group(1)), int(usage.group(2))) if usage is not None else None


def _hubspot_budget(lower: Mapping[str, str]) -> Budget | None:
    """HubSpot's burst window when sent, else its daily allowance (search omits both)."""
    burst, daily = hubspot_budgets(lower)
    return burst or daily


def hubspot_budgets(headers: Mapping[str, str]) -> tuple[Budget | None, Budget | None]:
    """HubSpot's two allowances from its ``X-HubSpot-RateLimit-*`` headers: the burst window
    (``-Max`` / ``-Remaining``, its period ``-Interval-Milliseconds``, e.g. ``10 s``) and the
    daily one (``-Daily`` / ``-Daily-Remaining``); None for one a response does not carry."""
    lower = {k.lower(): v for k, v in headers.items()}
    burst = daily = None
    if _HUBSPOT + "remaining" in lower and _HUBSPOT + "max" in lower:
        burst = _budget(lower[_HUBSPOT + "remaining"], lower[_HUBSPOT + "max"])
        interval = _number(lower.get(_HUBSPOT + "interval-milliseconds"))
        if burst is not None and interval:
            burst = burst._replace(window=f"{interval / 1000:g} s")
    if _HUBSPOT + "daily-remaining" in lower and _HUBSPOT + "daily" in lower:
        daily = _budget(lower[_HUBSPOT + "daily-remaining"], lower[_HUBSPOT + "daily"])
        daily = daily._replace(window="day") if daily is not None else None
    return burst, daily


def window_seconds(budget: Budget) -> float | None:
    """The period of a budget whose window names one in seconds (``10 s``), else None."""
    if budget.window is None or not budget.window.endswith(" s"):
        return None
    return _number(budget.window[:-2])


def _budget(remaining: str, limit: str, reset: str | None = None) -> Budget | None:
    left, total = _number(remaining), _number(limit.split(";")[0])
    if left is None or total is None or total <= 0:
        return None
    return Budget(left, total, _reset_in(_number(reset)))


def _number(text: str | None) -> float | None:
    """The first value of a header (``10, 10;w=1`` lists one per policy), or None."""
    if text is None:
        return None
    try:
        return float(text.split(",")[0].strip())
    except ValueError:
        return None


def _reset_in(reset: float | None) -> float | None:
    if reset is None:
        return None
    if reset > _EPOCH_FLOOR:
        return max(0.0, reset - utcnow().timestamp())
    return max(0.0, reset)


class RequestStats:
    """Thread-safe counter of requests sent, keyed by :class:`RequestKey`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[RequestKey] = Counter()
        self._latest: dict[str, SeenBudget] = {}
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
            if budget is not None:
                with self._lock:
                    self._latest[system] = SeenBudget(budget, utcnow())
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

    def latest_budget(self, system: str) -> SeenBudget | None:
        """The last budget ``system``'s responses announced in this process, or None."""
        with self._lock:
            return self._latest.get(system)

    def snapshot(self) -> dict[RequestKey, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._latest.clear()


#: The process-wide counters every client records into unless given its own.
REQUEST_STATS = RequestStats()
