"""The mass-delete guard's threshold and its configuration."""

from __future__ import annotations

import pytest

from sync.config import ConfigError, DeleteGuardConfig, parse_config
from sync.engine.guard import trips

BASE = """\
sync:
  delete_guard: {guard}
systems:
  ruddr:
    type: ruddr
    base_url: http://127.0.0.1:8711/api/workspace
"""


def test_share_count_and_minimum() -> None:
    """Trips above the share or the count, never below the minimum, never when disabled."""
    guard = DeleteGuardConfig()
    assert not trips(guard, 2, 10)  # 20 % but fewer than min_count
    assert trips(guard, 5, 42)  # 12 % of 42
    assert not trips(guard, 4, 42)  # 9.5 %
    assert trips(guard, 51, 10_000)  # more than max_count
    assert not trips(DeleteGuardConfig(enabled=False), 42, 42)


def test_config_accepts_percent_text_and_rejects_nonsense() -> None:
    """`max_share: 25%` and `0.25` mean the same; `lots` is a config error at the key."""
    config = parse_config(BASE.format(guard="{max_share: 25%, max_count: 7}"), env={})
    assert config.sync.delete_guard.max_share == pytest.approx(0.25)
    assert config.sync.delete_guard.max_count == 7
    assert config.systems["ruddr"].delete_guard is None
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE.format(guard="{max_share: lots}"), env={})
    assert "sync.delete_guard.max_share" in str(caught.value)
