"""A system's request budget, shared by rule (issue 25).

Capture's listing and the pushes owed to a system are the sync's own work; what a scan spends
besides — the rechecks that read unconfirmed summaries in full (``capture.page``) — takes
only what they leave: up to ``systems.NAME.recheck_share`` of the system's allowance per poll
interval (``rate_limit.rate`` × ``poll_every``), less one request per push owed to the system.
Pushes are never starved by it: a backlog of pushes takes the rechecks' share first.
"""

from __future__ import annotations

import math

from sqlmodel import Session

from sync.config.models import SystemConfig
from sync.store import outbox

#: without a configured rate limit the allowance is unknown: the share applies to a page's
#: worth of deals a scan (0.25 -> 25 rechecks a scan)
UNLIMITED_BASE = 100


def allowance(cfg: SystemConfig) -> float | None:
    """Requests the system's limit allows per poll interval (None: no limit configured)."""
    if cfg.rate_limit is None:
        return None
    return cfg.rate_limit.rate * cfg.poll_every.total_seconds()


def rechecks_per_scan(cfg: SystemConfig, owed: int) -> int:
    """How many unconfirmed deals one scan may read in full, with ``owed`` pushes waiting."""
    allowed = allowance(cfg)
    base = UNLIMITED_BASE if allowed is None else allowed
    return max(0, math.floor(cfg.recheck_share * base) - owed)


def recheck_budget(session: Session, cfg: SystemConfig, system: str) -> int:
    """:func:`rechecks_per_scan` with the pushes the store owes ``system`` now."""
    return rechecks_per_scan(cfg, outbox.open_per_system(session).get(system, 0))
