"""How often a scan system can really be polled (issue 25).

A scan system (Ruddr, ParsaLink: no "changed since" filter) lists every deal at every poll.
At size the listing outgrows ``poll_every``: 1,000,000 Ruddr deals are 10,000 pages, 8 min 20 s
at its 20 requests a second. Polled every 30 s anyway, it would list without pause, spend the
whole budget and leave the pushes owed to it nothing. So its *interval stretches*:

    interval = max(poll_every,
                   last listing's wall time × (1 + LISTING_MARGIN),
                   last listing's requests / (rate_limit.rate × scan_share))

The second bound keeps listings from running back to back (a slow vendor, latency); the
third keeps them to ``systems.NAME.scan_share`` of the system's allowance on average, so
pushes and rechecks (``sync.engine.budget``) have the rest. Both come from the last complete
listing, measured by capture and kept in ``cursors.pace``; before any, the deals the store
links there, a page each ``max_page_size``, estimate the requests. The scheduler enqueues no
poll of the system before ``last_poll_at + interval`` (:func:`due`); ``status`` shows the
interval, why, and the *expected lag*: a change waits at most the interval plus one listing
to be read. An incremental system never stretches: its poll reads only what changed.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from sync.config.models import SystemConfig
from sync.connectors import connector_class
from sync.connectors.base import BaseConnector
from sync.connectors.errors import ConnectorError
from sync.engine.context import Engine
from sync.store import cursors, links
from sync.timefmt import format_iso, maybe_utc, utcnow

#: a listing starts again no sooner than its own length and this share of it later
LISTING_MARGIN = 0.25


@dataclass(frozen=True)
class Stretch:
    """A system's poll interval as configured and as its listings allow, and why."""

    configured: float  # poll_every, seconds
    interval: float  # what the scheduler keeps to, seconds
    reason: str | None  # None: not stretched
    listing_seconds: float | None = None  # the last complete listing's wall time
    listing_requests: int | None = None  # its pages
    estimated: bool = False  # no listing measured yet: from the deals the store links there

    @property
    def stretched(self) -> bool:
        return self.interval > self.configured

    @property
    def expected_lag(self) -> float:
        """Seconds a change may wait to be read: the interval, plus the listing that reads it."""
        return self.interval + (self.listing_seconds or 0.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "poll_every_seconds": self.configured,
            "interval_seconds": round(self.interval, 3),
            "stretched": self.stretched,
            "reason": self.reason,
            "expected_lag_seconds": round(self.expected_lag, 3),
            "listing_seconds": _rounded(self.listing_seconds),
            "listing_requests": self.listing_requests,
            "estimated": self.estimated,
        }

    def describe(self, system: str) -> str | None:
        """One line for ``status``; None when the interval is as configured."""
        return describe(system, self.as_json())


def describe(system: str, data: dict[str, Any] | None) -> str | None:
    """:meth:`Stretch.describe` of a ``status --json`` row's ``pace``."""
    if not data or not data.get("stretched"):
        return None
    every, configured = data["interval_seconds"], data["poll_every_seconds"]
    return (
        f"{system} polls every {duration(every)}, not {duration(configured)}: "
        f"{data['reason']}; expected lag up to {duration(data['expected_lag_seconds'])}"
    )


def measured(started: dt.datetime, pages: int, deals: int) -> dict[str, Any]:
    """What ``cursors.pace`` keeps of a complete listing that started at ``started``."""
    return {
        "listing_seconds": round((utcnow() - started).total_seconds(), 3),
        "listing_requests": pages,
        "listed": deals,
        "at": format_iso(started),
    }


def stretch(
    cfg: SystemConfig,
    *,
    scans: bool,
    pace: dict[str, Any] | None,
    known: int = 0,
    page_size: int = 100,
) -> Stretch:
    """The interval ``cfg``'s system keeps to. ``scans``: it lists everything each poll;
    ``pace``: its last listing (``cursors.pace``); ``known``: deals linked there, for an
    estimate before any listing was measured."""
    configured = cfg.poll_every.total_seconds()
    if not scans:
        return Stretch(configured, configured, None)
    rate = cfg.rate_limit.rate if cfg.rate_limit is not None else None
    estimated = not pace
    if pace:
        requests = int(pace["listing_requests"])
        seconds: float | None = float(pace["listing_seconds"])
    else:
        requests = math.ceil(known / max(page_size, 1))
        seconds = requests / rate if rate else None
    bounds: list[tuple[float, str | None]] = [(configured, None)]
    if seconds is not None:
        took = "would take" if estimated else "took"
        why = f"a full listing {took} {duration(seconds)}"
        bounds.append((seconds * (1 + LISTING_MARGIN), why))
    if rate and requests:
        share = cfg.scan_share
        bounds.append(
            (
                requests / (rate * share),
                f"a full listing is {requests:,} requests and may use {share:.0%} of "
                f"{rate:g} requests/s (scan_share)",
            )
        )
    interval, reason = max(bounds, key=lambda bound: bound[0])
    if reason is not None and estimated:
        reason += f", estimated from {known:,} deals"
    return Stretch(configured, interval, reason, seconds, requests or None, estimated)


def of_system(session: Session, cfg: SystemConfig, system: str) -> Stretch:
    """:func:`stretch` from the store: the system's last listing (``cursors.pace``), or
    before one an estimate from the deals linked there, when it is a scan system."""
    cursor = cursors.get(session, system)
    paced = cursor.pace if cursor is not None else None
    if paced:  # only a scan system's regular polls measure one
        return stretch(cfg, scans=True, pace=paced)
    kind = _connector_class(cfg)
    if kind is None or not _declared_scan(cfg, kind):
        return stretch(cfg, scans=False, pace=None)
    known = links.count_live(session, system)
    return stretch(cfg, scans=True, pace=None, known=known, page_size=kind.max_page_size)


def _connector_class(cfg: SystemConfig) -> type[BaseConnector] | None:
    try:
        return connector_class(cfg.type)
    except ConnectorError:  # a broken vendor module: reported where the system is built
        return None


def _declared_scan(cfg: SystemConfig, kind: type[BaseConnector]) -> bool:
    """Whether the system's polls list everything: the vendor only can, or config asks it.
    (Truto decides per account, at run time: its first listing tells.)"""
    declared = getattr(kind, "capture", None)  # Truto's is a property: not a str
    return declared == "scan" or (cfg.capture == "scan" and isinstance(declared, str))


def poll_due(
    engine: Engine,
    system: str,
    now: dt.datetime | None = None,
    cfg: SystemConfig | None = None,
) -> bool:
    """Whether the scheduler may start a poll of ``system`` now (see :func:`due`); ``cfg``:
    the system's configuration when newer than the engine's (a reloaded scheduler)."""
    cfg = cfg or engine.config.systems.get(system)
    if cfg is None:
        return True  # not ours to hold back: the poll reports the unknown system
    with engine.session() as session:
        stretched = of_system(session, cfg, system)
        cursor = cursors.get(session, system)
        last = cursor.last_poll_at if cursor is not None else None
    return due(stretched, last, now or utcnow())


def warning(engine: Engine, system: str) -> str | None:
    """``doctor``'s warning for a system whose interval stretched, or None."""
    with engine.session() as session:
        stretched = of_system(session, engine.config.systems[system], system)
    return stretched.describe(system)


#: what ``doctor`` suggests for a stretched interval
STRETCH_FIX = (
    "expected at this size; to read sooner raise rate_limit (if the vendor's plan allows) or "
    "scan_share (pushes keep less), or accept the lag"
)


def due(stretched: Stretch, last_poll_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a poll may start now: always, unless stretched and its interval has not
    passed since the last poll started."""
    last = maybe_utc(last_poll_at)
    if not stretched.stretched or last is None:
        return True
    return (now - last).total_seconds() >= stretched.interval


def duration(seconds: float) -> str:
    """``45s``, ``8m20s``, ``2h05m``: the figures ``status`` prints."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.3g}s" if seconds < 10 else f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None
