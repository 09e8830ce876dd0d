"""A system's request budget, shared by rule (issue 25).

Capture's listing and the pushes owed to a system are the sync's own work; what a scan spends
besides — the rechecks that read unconfirmed summaries in full (``capture.page``) — takes
only what they leave: up to ``systems.NAME.recheck_share`` of the system's allowance per poll
interval (``rate_limit.rate`` × ``poll_every``), less one request per push owed to the system.
Pushes are never starved by it: a backlog of pushes takes the rechecks' share first.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlmodel import Session

from sync.config.models import SystemConfig
from sync.connectors.http.stats import REQUEST_STATS, Budget
from sync.store import outbox
from sync.timefmt import format_iso, parse_timestamp, utcnow

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


def announced(system: str) -> dict[str, Any] | None:
    """What the vendor's rate-limit headers last said is left (``cursors.budget``): counted
    by the transport in this process, stored with the poll's commit so other processes (the
    admin, ``status``) can show it. None when the system announced nothing yet."""
    seen = REQUEST_STATS.latest_budget(system)
    return as_stored(seen.budget, seen.seen_at) if seen is not None else None


def as_stored(budget: Budget | None, seen_at: dt.datetime | None = None) -> dict[str, Any] | None:
    """A budget in the form ``cursors.budget`` keeps it (and :func:`describe` reads), seen at
    ``seen_at`` (default: now); None for None."""
    if budget is None:
        return None
    seen_at = seen_at or utcnow()
    reset_at = None
    if budget.reset_in is not None:
        reset_at = format_iso(seen_at + dt.timedelta(seconds=budget.reset_in))
    return {
        "remaining": budget.remaining,
        "limit": budget.limit,
        "reset_at": reset_at,
        "window": budget.window,
        "seen_at": format_iso(seen_at),
    }


def describe(budget: dict[str, Any] | None) -> str | None:
    """One line for people: ``58/60 requests left, full again at 04:01:09 UTC (as of
    04:01:02)``; None when the vendor reported nothing. Times are the stored UTC stamps, as
    every other time ``status`` and the console show."""
    if not budget:
        return None
    text = f"{budget['remaining']:g}/{budget['limit']:g} requests left"
    window = budget.get("window")
    if window == "day":
        text += " of the daily allowance"
    elif window:
        text += f" per {window}"
    if budget.get("reset_at"):
        text += f", full again at {_clock(budget['reset_at'])} UTC"
    return f"{text} (as of {_clock(budget['seen_at'])})"


def _clock(stamp: str) -> str:
    """The stored stamp's time of day, with its date when it is not today's."""
    at = parse_timestamp(stamp)
    today = at.date() == utcnow().date()
    return at.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S")
