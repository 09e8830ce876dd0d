"""One scheduler leads: the leader holds a Redis lock with a token and keeps renewing it.

Every scheduler calls :meth:`Leadership.check` before it enqueues anything. The leader renews
its lock there (and from a background thread); a follower tries to take the lock, which only
succeeds once the leader stopped renewing (crashed or shut down) and the lock expired. So
there is at most one leader at any moment, and a dead leader is replaced within ``ttl``.

Belt and braces against the moment a paused leader has not yet noticed it lost the lock:
:func:`claim_slot` marks each job as enqueued with ``SET NX PX``, so even two schedulers that
both believe they lead enqueue a given period's tick only once.
"""

from __future__ import annotations

import math
from typing import Any

import redis
import structlog
from redis.exceptions import RedisError

from sync.runtime.locks import RenewedLock

log = structlog.get_logger("crmsync.leader")


class Leadership:
    """Leader election among schedulers sharing one Redis and prefix."""

    def __init__(
        self, client: redis.Redis[Any], *, prefix: str = "crmsync", ttl: float = 15.0
    ) -> None:
        self._lock = RenewedLock(client, f"{prefix}:scheduler:leader", ttl=ttl)
        self._leading = False

    @property
    def leading(self) -> bool:
        return self._leading

    def check(self) -> bool:
        """Whether this scheduler leads right now (renewing, or taking over a free lock)."""
        try:
            if self._leading and self._lock.renew():
                return True
            if self._leading:
                log.warning("leadership_lost")
                self._lock.release()
                self._leading = False
            if self._lock.acquire():
                log.info("leadership_taken")
                self._leading = True
        except RedisError as exc:
            log.warning("leadership_check_failed", error=str(exc))
            self._leading = False
        return self._leading

    def resign(self) -> None:
        """Step down now (on shutdown) so another scheduler takes over without waiting."""
        if self._leading:
            self._lock.release()
        self._leading = False


def claim_slot(
    client: redis.Redis[Any], job: str, every: float, *, prefix: str = "crmsync"
) -> bool:
    """True if nobody enqueued ``job`` in the last ``0.8 * every`` seconds, cluster-wide.

    The leader's own ticks are ``every`` apart and always pass; a second scheduler ticking in
    the same period (two leaders for a moment) is refused.
    """
    key = f"{prefix}:scheduler:last:{job}"
    window_ms = max(1, math.floor(every * 800))
    return bool(client.set(key, "1", nx=True, px=window_ms))
