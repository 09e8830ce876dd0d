"""A daily allowance nearly spent pauses the system (Salesforce's org allocation, HubSpot's
portal allowance): every call is ``RateLimited`` with a message saying why, so the run fails
with it and ``status`` shows it as the system's last error, until usage falls.

The allowance is shared with the account's other tools: ``options.api_reserve`` (0..1,
default 0.2) of it is left to them. While paused, one request a ``reserve_probe_seconds``
(default 60) still goes out: its answer's headers are how the connector learns that usage
fell (a new day) and the system may resume.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sync.connectors.errors import RateLimited

DEFAULT_RESERVE = 0.2
#: how long a paused system waits before it looks at the allowance again
RESERVE_WAIT = 900.0


class DailyReserve:
    """The latest ``(used, allocation)`` of a daily allowance and the share kept back.

    ``owner`` names whose allowance it is in messages ("org", "portal")."""

    def __init__(self, system: str, options: Mapping[str, Any], owner: str) -> None:
        self.system = system
        self.options = options
        self.owner = owner
        self.fraction = float(options.get("api_reserve", DEFAULT_RESERVE))
        #: (used, allocation) from the latest answer that said; None until one did
        self.usage: tuple[int, int] | None = None
        self._probed_at = time.monotonic()

    def note(self, used: float, allocation: float) -> None:
        self.usage = (int(used), int(allocation))

    def check(self) -> None:
        """Raise ``RateLimited`` once only the reserve is left (a probe now and then passes)."""
        if self.usage is None or self.fraction <= 0:
            return
        used, allocation = self.usage
        if not allocation or used < allocation * (1 - self.fraction):
            return
        now = time.monotonic()
        if now - self._probed_at >= float(self.options.get("reserve_probe_seconds", 60)):
            self._probed_at = now
            return
        raise RateLimited(
            f"paused: {used:,} of the {self.owner}'s {allocation:,} daily API requests are used "
            f"and {self.fraction:.0%} is kept for other tools (options.api_reserve); resuming "
            "when usage falls below that",
            retry_after=RESERVE_WAIT,
            system=self.system,
        )
