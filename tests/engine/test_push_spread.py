"""A drain spreads a backlog (issue 25): the first time one of its claims comes back full —
more rows are likely due than it holds — it asks once for another drain of its system (the
Celery drain queues one, which an idle worker runs beside it); a claim that empties the
backlog asks for nothing."""

from __future__ import annotations

from sync.engine.push import drain
from tests.e2e.conftest import World
from tests.e2e.test_scenarios import count_named
from tests.engine.conftest import BACKLOG


def test_a_full_claim_asks_once_for_another_drain(ruddr_backlog: World) -> None:
    """Three full claims of 10: ``spread`` is called once, and every deal is created once."""
    world = ruddr_backlog
    asked: list[str] = []
    counts = drain(world.engine, "ruddr", batch=10, spread=lambda: asked.append("ruddr"))
    assert counts["created"] == len(BACKLOG)
    assert asked == ["ruddr"]
    for name in BACKLOG:
        assert count_named(world, "ruddr", name) == 1


def test_a_claim_that_takes_the_whole_backlog_asks_for_nothing(ruddr_backlog: World) -> None:
    """One claim holds every due row: no other drain would find work."""
    world = ruddr_backlog
    asked: list[str] = []
    counts = drain(world.engine, "ruddr", batch=200, spread=lambda: asked.append("ruddr"))
    assert counts["created"] == len(BACKLOG)
    assert asked == []


def test_a_drain_that_cannot_ask_for_help_goes_on_alone(ruddr_backlog: World) -> None:
    """The broker refusing the extra drain costs speed only: every deal is still created."""
    world = ruddr_backlog

    def broker_down() -> None:
        raise ConnectionError("Redis is down")

    counts = drain(world.engine, "ruddr", batch=10, spread=broker_down)
    assert counts["created"] == len(BACKLOG)
    for name in BACKLOG:
        assert count_named(world, "ruddr", name) == 1
