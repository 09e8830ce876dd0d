"""Worlds more than one engine test starts from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.engine.cycle import poll
from tests.e2e.conftest import World, make_world

#: The deals of the backlog ``ruddr_backlog`` owes Ruddr.
BACKLOG = [f"Backlog deal {n:02d}" for n in range(30)]


@pytest.fixture
def ruddr_backlog(tmp_path: Path) -> Iterator[World]:
    """A synced world, then 30 deals made in Close and captured: the outbox owes Ruddr a
    create for each, a backlog for one drain to spread or slice."""
    world = make_world(tmp_path)
    world.cycle()
    for name in BACKLOG:
        world.users["close"].create(name)
    poll(world.engine, "close")
    try:
        yield world
    finally:
        world.engine.close()
