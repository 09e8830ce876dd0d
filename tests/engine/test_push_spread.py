"""A drain spreads a backlog (issue 25): the first time one of its claims comes back full —
more rows are likely due than it holds — it asks once for another drain of its system (the
Celery drain queues one, which an idle worker runs beside it); a claim that empties the
backlog asks for nothing."""

from __future__ import annotations

from pathlib import Path

from sync.engine.cycle import poll
from sync.engine.push import drain
from tests.e2e.conftest import make_world
from tests.e2e.test_scenarios import count_named

NAMES = [f"Spread deal {n:02d}" for n in range(30)]


def owed_to_ruddr(tmp_path: Path):  # type: ignore[no-untyped-def]
    world = make_world(tmp_path)
    world.cycle()
    for name in NAMES:
        world.users["close"].create(name)
    poll(world.engine, "close")
    return world


def test_a_full_claim_asks_once_for_another_drain(tmp_path: Path) -> None:
    """Three full claims of 10: ``spread`` is called once, and every deal is created once."""
    world = owed_to_ruddr(tmp_path)
    asked: list[str] = []
    try:
        counts = drain(world.engine, "ruddr", batch=10, spread=lambda: asked.append("ruddr"))
        assert counts["created"] == len(NAMES)
        assert asked == ["ruddr"]
        for name in NAMES:
            assert count_named(world, "ruddr", name) == 1
    finally:
        world.engine.close()


def test_a_claim_that_takes_the_whole_backlog_asks_for_nothing(tmp_path: Path) -> None:
    """One claim holds every due row: no other drain would find work."""
    world = owed_to_ruddr(tmp_path)
    asked: list[str] = []
    try:
        counts = drain(world.engine, "ruddr", batch=200, spread=lambda: asked.append("ruddr"))
        assert counts["created"] == len(NAMES)
        assert asked == []
    finally:
        world.engine.close()


def test_a_drain_that_cannot_ask_for_help_goes_on_alone(tmp_path: Path) -> None:
    """The broker refusing the extra drain costs speed only: every deal is still created."""
    world = owed_to_ruddr(tmp_path)

    def broker_down() -> None:
        raise ConnectionError("Redis is down")

    try:
        counts = drain(world.engine, "ruddr", batch=10, spread=broker_down)
        assert counts["created"] == len(NAMES)
        for name in NAMES:
            assert count_named(world, "ruddr", name) == 1
    finally:
        world.engine.close()
