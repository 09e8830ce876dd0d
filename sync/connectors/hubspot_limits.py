"""HubSpot's two allowances, as its answers announce them (``X-HubSpot-RateLimit-*``,
https://developers.hubspot.com/docs/api/usage-details; vendors.md §5.4).

- **The burst window** (``-Max`` requests per ``-Interval-Milliseconds``, ``-Remaining`` left):
  the shared limiter is sized to ``Max`` per interval, whatever ``rate_limit`` in config says —
  a Starter portal (100 / 10 s) is not run at a Professional's 190, and a capacity pack's 250 is
  used. The portal's other apps draw on the same window, so when ``-Remaining`` falls under a
  low-water mark every worker holds off until the window has had time to refill that far,
  instead of running into 429s.
- **The daily allowance** (``-Daily``, ``-Daily-Remaining``): nearly spent (all but
  ``options.api_reserve``, default 20 %), the system pauses as Salesforce's does
  (``sync.connectors.reserve``): every call is ``RateLimited`` saying so, ``status`` shows it.

Search answers carry none of these headers (it has its own 4–5 per second); nothing changes then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from sync.connectors.http.stats import hubspot_budgets, window_seconds
from sync.connectors.ratelimit import Adaptive, RateLimiter
from sync.connectors.reserve import DailyReserve

#: the share of the window kept unspent: requests in flight (their answers not yet counted)
#: and the portal's other apps still find room, so our own stay clear of 429s
LOW_WATER = 0.1
#: the bucket's capacity as a share of the window: HubSpot's window rolls, so a full-size
#: burst followed by the steady rate could pass ``Max`` within one interval
BURST_SHARE = 0.5
DEFAULT_INTERVAL = 10.0  # seconds, when the answer names none
#: seconds to wait per 429 policy when the answer gives nothing better
POLICY_WAIT = {"SECONDLY": 1.0, "TEN_SECONDLY_ROLLING": 10.0, "DAILY": 3600.0}


def policy_wait(response: httpx.Response) -> float | None:
    """The wait a 429's ``policyName`` implies (None: it names none we know)."""
    try:
        policy = response.json().get("policyName")
    except (ValueError, AttributeError):
        return None
    return POLICY_WAIT.get(str(policy))


class Pacing:
    """What one HubSpot system's answers said of its allowances, applied to its limiter."""

    def __init__(self, system: str, options: Mapping[str, Any]) -> None:
        self.system = system
        self.daily = DailyReserve(system, options, "portal")
        self._size: tuple[float, float] | None = None

    def note(self, response: httpx.Response, limiter: RateLimiter | None) -> None:
        """Size and slow ``limiter`` from one answer's headers; note the daily usage."""
        burst, daily = hubspot_budgets(response.headers)
        if daily is not None:
            self.daily.note(daily.limit - daily.remaining, daily.limit)
        if burst is None or not isinstance(limiter, Adaptive):
            return
        rate = burst.limit / (window_seconds(burst) or DEFAULT_INTERVAL)
        size = (rate, max(1.0, burst.limit * BURST_SHARE))
        if size != self._size:
            limiter.resize(self.system, *size)
            self._size = size
        low = burst.limit * LOW_WATER
        if burst.remaining < low:
            limiter.hold(self.system, (low - burst.remaining) / rate)
