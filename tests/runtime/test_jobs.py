"""The job runner (sync.runtime.jobs): each job is one ``runs`` row, closed ``done`` (or its
own status) with its counts, or ``failed`` with the error and the counts so far; a job that
names a system feeds that system's Prometheus counters. Driven through the emulators, with
faults switched on in the vendor, as the engine tests do."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlmodel import select
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from sync.engine.cycle import run_cycle
from sync.metrics import REGISTRY
from sync.runtime.jobs import (
    drain_job,
    poll_and_drain_job,
    poll_job,
    queue_run,
    reconcile_job,
    resync_job,
    verify_job,
)
from sync.runtime.starters import HereJobs
from sync.store.models import Run
from tests.e2e.conftest import World, make_world

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path, seed_opportunities=2)


def row(world: World, run_id: str) -> Run:
    with world.engine.session() as session:
        run = session.get(Run, run_id)
    assert run is not None, f"no run row {run_id}"
    return run


def rows(world: World, kind: str) -> list[Run]:
    with world.engine.session() as session:
        found = session.exec(select(Run).where(Run.kind == kind)).all()
    return sorted(found, key=lambda run: run.started_at)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_poll_is_a_done_row_with_its_counts_and_feeds_the_counters(world: World) -> None:
    before = metric("crmsync_records_total", system="ruddr", outcome="fetched")
    counts = poll_job(world.engine, "ruddr")
    (run,) = rows(world, "poll")
    assert (run.system, run.status, run.error) == ("ruddr", "done", None)
    assert run.finished_at is not None
    assert run.counts == counts.values and counts["fetched"] > 0
    after = metric("crmsync_records_total", system="ruddr", outcome="fetched")
    assert after - before == counts["fetched"]


def test_a_failed_poll_is_a_failed_row_naming_the_error_and_counted_as_one(
    world: World,
) -> None:
    world.faults("close", error_rate=1.0, statuses=[503])
    with pytest.raises(Exception) as raised:
        poll_job(world.engine, "close", True, "poll")
    error_type = type(raised.value).__name__
    (run,) = rows(world, "poll")
    assert run.status == "failed" and run.finished_at is not None
    assert run.error == f"{error_type}: {raised.value}"
    assert run.counts == {}
    assert metric("crmsync_errors_total", system="close", error=error_type) >= 1


def test_a_resync_with_a_system_down_is_partial_names_it_and_counts_its_steps(
    world: World,
) -> None:
    world.faults("close", error_rate=1.0, statuses=[503])
    run_id = queue_run(world.engine, None)
    assert row(world, run_id).status == "queued"
    returned, status, counts = resync_job(world.engine, None, False, run_id)
    run = row(world, run_id)
    assert returned == run_id and status == "partial" == run.status
    assert run.error is not None and run.error.startswith("close: ")
    systems = len(world.engine.systems)
    assert counts["systems_total"] == counts["systems_done"] == systems + 1
    assert run.counts == counts.values
    polls = {(poll.system, poll.status) for poll in rows(world, "poll")}
    assert ("close", "failed") in polls and ("ruddr", "done") in polls


def test_a_drain_with_nothing_to_push_writes_no_row(world: World) -> None:
    run_cycle(world.engine)
    counts = drain_job(world.engine, "close")
    assert counts.values == {} and rows(world, "drain") == []


def test_a_drain_that_pushed_is_a_done_row_with_its_counts(world: World) -> None:
    poll_job(world.engine, "ruddr")  # the other systems lack Ruddr's deals: creates are owed
    for system in world.engine.systems:
        poll_job(world.engine, system)  # every system read once: creates may go
    with capture_logs(processors=[merge_contextvars]) as lines:
        pushed = drain_job(world.engine, "close")
    assert pushed["created"] > 0
    (run,) = rows(world, "drain")
    assert (run.system, run.status, run.counts) == ("close", "done", pushed.values)
    assert run.started_at <= run.finished_at  # type: ignore[operator]
    # every line the drain logged, on its push threads too, names the row written at its end
    assert any(line["event"] == "drain_done" for line in lines)
    assert {line.get("run_id") for line in lines} == {run.id}, lines[:3]


def test_the_embedded_job_polls_then_drains_as_one_row_and_stops_when_asked(
    world: World,
) -> None:
    for system in world.engine.systems:
        poll_job(world.engine, system)
    counts = poll_and_drain_job(world.engine, "ruddr", stopping=threading.Event())
    polls = rows(world, "poll")
    assert polls[-1].status == "done" and polls[-1].counts == counts.values
    assert counts["created"] > 0, "the drains of every due outbox count in the poll's row"
    stopping = threading.Event()
    stopping.set()
    poll_and_drain_job(world.engine, "ruddr", stopping=stopping)
    assert rows(world, "poll")[-1].status == "interrupted"


def test_a_queued_reconcile_is_taken_over_and_finished(world: World) -> None:
    run_cycle(world.engine)
    run_id = queue_run(world.engine, "close", kind="reconcile")
    report = reconcile_job(world.engine, "close", run_id)
    run = row(world, run_id)
    assert report.run_id == run_id
    assert (run.kind, run.status, run.system) == ("reconcile", report.status, "close")


def test_verify_is_a_row_that_says_drift_until_the_systems_agree(world: World) -> None:
    run_id, clean, counts = verify_job(world.engine)
    assert not clean and row(world, run_id).status == "drift"
    assert row(world, run_id).counts == counts.values
    for _ in range(3):
        run_cycle(world.engine)
    run_id, clean, _ = verify_job(world.engine)
    assert clean and row(world, run_id).status == "done"


def test_jobs_started_here_run_on_a_thread_and_their_row_can_be_followed(
    world: World,
) -> None:
    jobs = HereJobs(world.engine)
    run_id = jobs.resync("ruddr", False)
    deadline = time.monotonic() + 60
    while row(world, run_id).status in ("queued", "running"):
        assert time.monotonic() < deadline, "the resync never finished"
        time.sleep(0.05)
    assert row(world, run_id).status == "done"


def test_the_embedded_admin_backend_starts_the_job_runners_jobs_here(world: World) -> None:
    """admin_backend without a broker: resync and reconcile are HereJobs' (a followed row, run on
    a thread), and there is no broker to check."""
    from sync.runtime.backend import admin_backend

    backend = admin_backend(world.engine, world.config)
    assert backend.checks is None and backend.reconcile is not None
    started = [backend.resync("ruddr", False), backend.reconcile("close")]
    deadline = time.monotonic() + 60
    for run_id in started:
        while row(world, run_id).status in ("queued", "running"):
            assert time.monotonic() < deadline, f"{run_id} never finished"
            time.sleep(0.05)
    assert [(row(world, r).kind, row(world, r).status) for r in started] == [
        ("resync", "done"),
        ("reconcile", "done"),
    ]


def test_the_embedded_scheduler_logs_a_failed_job_and_keeps_going(world: World) -> None:
    """A scheduled job that fails is logged (``job_failed``) and swallowed, its row failed;
    the next one runs as usual."""
    from structlog.testing import capture_logs

    from sync.scheduler import EmbeddedDispatcher

    dispatcher = EmbeddedDispatcher(world.engine)
    world.faults("close", error_rate=1.0, statuses=[503])
    with capture_logs() as logs:
        dispatcher.poll("close")
        assert rows(world, "poll")[-1].status == "failed" and "close" not in dispatcher.last
        dispatcher.reconcile("close")
    failed = [(e["kind"], e["system"]) for e in logs if e["event"] == "job_failed"]
    assert failed == [("poll", "close")], "a reconcile records an unreadable system, not fails"
    assert rows(world, "reconcile")[-1].status == "partial"
    assert dispatcher.last["close"]["healed"] == 0
    world.faults("close")
    dispatcher.poll("ruddr")
    assert rows(world, "poll")[-1].status == "done" and "ruddr" in dispatcher.last
