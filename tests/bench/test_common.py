"""The benches' shared pieces (bench/common.py): the shipped config without client-side rate
limits, whole or cut to some systems, still loads."""

from __future__ import annotations

from pathlib import Path

from bench.common import ENV_OF, unlimited_config
from sync.config import load_config


def _env(systems: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}_BASE_URL": f"http://127.0.0.1:1/{name}" for name, prefix in systems.items()}


def test_the_unlimited_config_keeps_every_system_and_limits_none(tmp_path: Path) -> None:
    """Every shipped system is kept and none is rate limited on our side (the scaleout and
    recovery benches time the code, not ParsaLink's 100 requests a minute)."""
    config = load_config(unlimited_config(tmp_path), env=_env(ENV_OF))
    assert len(config.systems) == len(ENV_OF)  # one system per vendor the shipped config uses
    assert all(cfg.rate_limit is None for cfg in config.systems.values())


def test_the_unlimited_config_cut_to_two_systems_still_loads(tmp_path: Path) -> None:
    """Cut to Close and Ruddr, the mapping and the conflict priorities name no other system
    (the config would not load otherwise)."""
    only = {"close": "CLOSE", "ruddr": "RUDDR"}
    config = load_config(unlimited_config(tmp_path, only=only), env=_env(only))
    assert list(config.systems) == ["close", "ruddr"]
    assert all(cfg.rate_limit is None for cfg in config.systems.values())
