"""A system's budget shared by rule (issue 25): rechecks of unconfirmed summaries spend a
configured share of the system's allowance per poll, and yield to the pushes owed to it."""

from __future__ import annotations

import datetime as dt

from sync.config import load_config
from sync.config.models import RateLimitConfig, SystemConfig
from sync.engine.budget import allowance, rechecks_per_scan
from tests.e2e.conftest import ROOT


def parsalink(**changes: object) -> SystemConfig:
    cfg = load_config(ROOT / "config.yaml", env={}).systems["parsalink"]
    return cfg.model_copy(update=changes)


def test_rechecks_take_the_configured_share_of_the_allowance_per_poll() -> None:
    """ParsaLink as shipped: 1.5 requests/s × 60 s = 90 a poll, a quarter of it 22."""
    assert allowance(parsalink()) == 90
    assert rechecks_per_scan(parsalink(), owed=0) == 22
    assert rechecks_per_scan(parsalink(recheck_share=0.5), owed=0) == 45
    assert rechecks_per_scan(parsalink(recheck_share=0.0), owed=0) == 0


def test_pushes_owed_to_the_system_come_first() -> None:
    """Every push waiting takes one recheck's place: a backlog leaves none."""
    assert rechecks_per_scan(parsalink(), owed=10) == 12
    assert rechecks_per_scan(parsalink(), owed=500) == 0


def test_the_allowance_follows_the_rate_limit_and_the_poll_interval() -> None:
    faster = parsalink(
        rate_limit=RateLimitConfig(rate=10, burst=20), poll_every=dt.timedelta(seconds=30)
    )
    assert rechecks_per_scan(faster, owed=0) == 75
    assert rechecks_per_scan(parsalink(rate_limit=None), owed=0) == 25  # no limit known
