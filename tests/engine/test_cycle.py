"""A cycle (``run --once``) keeps pushing until every push it owes is settled, waiting out the
retries that come due within ``max_wait`` (a 429 storm, a 5xx burst), and otherwise reports
what is left: per system and state, and when the next retry is due."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from sync.engine.cycle import owed
from sync.engine.verify import verify
from sync.store.models import Run
from sync.timefmt import maybe_utc
from tests.e2e.conftest import World, make_world
from tests.engine.test_push_concurrency import seed_ruddr, set_rate_limit

pytestmark = pytest.mark.slow


@pytest.fixture
def edited(tmp_path: Path) -> World:
    """A converged world whose Ruddr deals all had their amount edited since."""
    world = make_world(tmp_path)
    seed_ruddr(world, 10)
    world.cycle()
    assert not owed(world.engine).total
    for number, deal in enumerate(world.users["ruddr"].all()):
        world.users["ruddr"].edit(deal["id"], amount=float(5000 + number))
    world.engine.backoff_base = 0.2
    return world


def refused(world: World, system: str, status: int | None = None) -> int:
    return sum(
        1
        for r in world.emulators[system].requests
        if int(r["status"]) >= 429 and (status is None or int(r["status"]) == status)
    )


def test_a_5xx_burst_is_waited_out_and_the_cycle_ends_with_nothing_owed(edited: World) -> None:
    """Close answers 503 to everything for 1.5 s: the cycle's pushes to Close fail, wait for
    their backoff and go again, and the cycle ends done, with every edit in Close."""
    edited.faults("close", error_rate=1.0, statuses=[503])
    lift = threading.Timer(1.5, edited.faults, args=("close",))
    lift.start()
    report = edited.cycle(systems=["ruddr"], max_wait=60)
    lift.join()
    assert refused(edited, "close", 503) > 0, "the burst never hit a push: proves nothing"
    assert report.status == "done" and not report.left.total, report.left
    assert verify(edited.engine).clean


def test_a_429_storm_is_waited_out_with_the_vendors_retry_after(edited: World) -> None:
    """Close allows 2 requests/s (burst 1) and says when to come back: the cycle sleeps as it
    is told and still ends with every push done."""
    set_rate_limit(edited, "close", rate=2, burst=1)
    report = edited.cycle(systems=["ruddr"], max_wait=60)
    assert refused(edited, "close", 429) > 0, "no 429 happened: proves nothing"
    assert report.status == "done" and not report.left.total, report.left
    control(edited, "close").post("/_emulator/rate_limit", json={"enabled": False})
    assert verify(edited.engine).clean


def test_a_vendor_that_keeps_failing_leaves_the_cycle_incomplete_naming_what_is_left(
    edited: World,
) -> None:
    """Close never recovers: the cycle gives up once the next retry falls past ``max_wait``,
    with status ``incomplete`` and Close's pushes counted as waiting for a retry."""
    edited.faults("close", error_rate=1.0, statuses=[503])
    report = edited.cycle(systems=["ruddr"], max_wait=1.0)
    assert report.status == "incomplete"
    assert set(report.left.states) == {"close"}
    assert report.left.states["close"].get("retry", 0) >= 10
    assert report.left.next_due is not None


def test_without_max_wait_a_cycle_does_not_sleep_but_still_reports(edited: World) -> None:
    """``max_wait=0`` (the default of library callers) never sleeps for a retry."""
    edited.faults("close", error_rate=1.0, statuses=[503])
    report = edited.cycle(systems=["ruddr"])
    assert report.status == "incomplete" and report.left.states["close"]["retry"] >= 10
    assert report.left.next_due is not None and report.left.next_due > report_started(edited)


def control(world: World, system: str) -> httpx.Client:
    return httpx.Client(transport=world.emulators[system].transport(), base_url="http://emu")


def report_started(world: World) -> dt.datetime:
    with world.engine.session() as session:
        run = session.exec(select(Run).order_by(col(Run.started_at).desc())).first()
    assert run is not None
    return maybe_utc(run.started_at) or run.started_at
