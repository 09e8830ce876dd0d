"""Liveness for worker and scheduler: the heartbeat file and its check, and the init
container's wait for the migration."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sync.runtime import heartbeat, schema_wait
from sync.store.db import upgrade


def test_a_fresh_heartbeat_passes_a_stale_or_missing_one_fails_with_the_reason(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run" / "worker.alive"
    assert "no heartbeat" in (heartbeat.check(path, 60) or "")
    heartbeat.Heartbeat(path).beat()
    assert heartbeat.check(path, 60) is None
    old = time.time() - 300
    os.utime(path, (old, old))
    assert "is 300s old (limit 60s)" in (heartbeat.check(path, 60) or "")
    assert heartbeat.main([str(path), "60"]) == 1
    assert heartbeat.main([str(path), "600"]) == 0
    assert heartbeat.main([]) == 2


def test_beats_are_spaced_by_the_interval(tmp_path: Path) -> None:
    """A loop calling beat() twice a second touches the file once per interval, not each time."""
    path = tmp_path / "alive"
    beat = heartbeat.Heartbeat(path, interval=10)
    beat.beat(now=100.0)
    old = time.time() - 50
    os.utime(path, (old, old))
    beat.beat(now=105.0)  # within the interval: untouched
    assert heartbeat.check(path, 40) is not None
    beat.beat(now=111.0)
    assert heartbeat.check(path, 40) is None


def test_from_env_only_when_a_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(heartbeat.HEARTBEAT_ENV, raising=False)
    assert heartbeat.Heartbeat.from_env() is None
    monkeypatch.setenv(heartbeat.HEARTBEAT_ENV, "/tmp/x.alive")
    beat = heartbeat.Heartbeat.from_env()
    assert beat is not None and beat.path == Path("/tmp/x.alive")


def test_schema_wait_is_ready_only_at_the_newest_migration(tmp_path: Path) -> None:
    """Before the migration the wait says where the store is; after it, it is ready."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    ready, state = schema_wait.schema_at_head(url)
    assert not ready and "no revision" in state
    upgrade(url)
    ready, state = schema_wait.schema_at_head(url)
    assert ready, state
