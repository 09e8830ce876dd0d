"""``push.snapshot``: an apply decides its outcomes on a read snapshot and takes the store's
write lock only to re-check and write. When what it read moved in between — a row re-enqueued
by a capture, a row another worker took over, a link whose shadow a capture moved — the write
gives the group back untouched, and ``apply_results`` applies it as before, under the lock:
no outcome is lost, none is applied over a change it did not see."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col

from sync.engine.context import Counts, Engine
from sync.engine.cycle import poll
from sync.engine.push import snapshot
from sync.engine.push.apply import apply_results
from sync.engine.push.prepare import _Result, claim, prepare
from sync.engine.push.recovery import Lookups
from sync.engine.push.send import send
from sync.store.models import Link, Outbox
from sync.timefmt import utcnow
from tests.e2e.conftest import World, make_world
from tests.e2e.test_scenarios import link_of, record_of

pytestmark = pytest.mark.slow

TARGET = "close"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = make_world(tmp_path)
    built.engine.claim_seconds = 3600.0  # no claim runs out by itself here
    try:
        yield built
    finally:
        built.engine.close()


def sent_to_target(engine: Engine, rows: int = 10) -> list[_Result]:
    """The target's owed rows claimed, prepared and sent, not yet applied."""
    lookups = Lookups(engine, TARGET)
    jobs = prepare(engine, TARGET, claim(engine, TARGET, rows), None)
    lookups.claimed(jobs)
    return [send(engine, job, None, lookups) for job in jobs]


def planned_then(engine: Engine, results: list[_Result], meanwhile: sa.Update) -> bool:
    """Plan the apply on a snapshot, run ``meanwhile`` in another transaction (a concurrent
    writer), then write; returns whether the write went through."""
    with engine.session() as session:
        planned = snapshot.plan(engine, session, results)
        assert planned is not None
        with engine.session() as other:
            other.execute(meanwhile)
            other.commit()
        return snapshot.write(planned, results, [])


def outbox_row(engine: Engine, row_id: int) -> Outbox:
    with engine.session() as session:
        row = session.get(Outbox, row_id)
        assert row is not None
        return row


def linked(engine: Engine, results: list[_Result]) -> int:
    """How many of the results' records are linked in the target."""
    records = [result.job.record_id for result in results]
    with engine.session() as session:
        query = sa.select(sa.func.count()).where(
            col(Link.system) == TARGET, col(Link.record_id).in_(records)
        )
        return int(session.execute(query).scalar_one())


def created(world: World, deals: int) -> list[_Result]:
    """``deals`` Ruddr deals read (beside those seeded elsewhere), and the creates owed to
    the target sent."""
    world.emulators["ruddr"].reset_state(seed=3, opportunities=deals)
    for system in world.config.systems:
        poll(world.engine, system)
    results = sent_to_target(world.engine)
    assert len(results) >= deals and all(r.job.kind == "create" for r in results)
    return results


def test_a_group_nothing_moved_is_written_from_its_snapshot(world: World) -> None:
    """Nothing moved between the snapshot and the write: the write goes through, every
    create is linked and every row is done."""
    results = created(world, 3)
    engine = world.engine
    with engine.session() as session:
        planned = snapshot.plan(engine, session, results)
        assert planned is not None and planned.outcomes == ["created"] * len(results)
        assert snapshot.write(planned, results, [])
    assert linked(engine, results) == len(results)
    assert {outbox_row(engine, r.job.row_id).status for r in results} == {"done"}


def test_a_row_re_enqueued_meanwhile_is_applied_again_under_the_lock(world: World) -> None:
    """A capture re-enqueued one row (the deal changed) after the snapshot: the write gives
    the whole group back with nothing written; applied again under the lock, every deal is
    linked, and the re-enqueued row goes back to pending to be diffed again."""
    results = created(world, 3)
    engine = world.engine
    moved = results[0].job
    touch = (
        sa.update(Outbox)
        .where(col(Outbox.id) == moved.row_id)
        .values(reason="edited meanwhile", updated_at=utcnow() + dt.timedelta(seconds=1))
    )
    assert not planned_then(engine, results, touch)
    assert linked(engine, results) == 0, "nothing of the raced group was written"
    counts = Counts()
    apply_results(engine, results, counts)
    assert counts["created"] == len(results)
    assert linked(engine, results) == len(results)
    assert outbox_row(engine, moved.row_id).status == "pending"
    rest = {outbox_row(engine, r.job.row_id).status for r in results[1:]}
    assert rest == {"done"}


def test_a_row_taken_over_meanwhile_keeps_its_deal_and_its_new_owner(world: World) -> None:
    """Our claim on one row ran out after the snapshot and another worker took the row: the
    write is refused; applied again, the deal our create made is still linked (never lost),
    and the row stays with the worker that holds it now."""
    results = created(world, 2)
    engine = world.engine
    taken = results[0].job
    takeover = (
        sa.update(Outbox).where(col(Outbox.id) == taken.row_id).values(claimed_by="another:1:x:1")
    )
    assert not planned_then(engine, results, takeover)
    apply_results(engine, results, Counts())
    assert linked(engine, results) == len(results)
    row = outbox_row(engine, taken.row_id)
    assert (row.status, row.claimed_by) == ("in_flight", "another:1:x:1")


def test_an_update_over_a_shadow_moved_meanwhile_is_applied_over_the_new_shadow(
    world: World,
) -> None:
    """An update's answer is applied to the link's shadow; a capture moved another field of
    that shadow after the snapshot: the write is refused, and applied again the shadow keeps
    the capture's value beside the one the update sent."""
    world.emulators["ruddr"].reset_state(seed=3, opportunities=1)
    world.cycle()
    engine = world.engine
    ruddr_id = str(world.users["ruddr"].all()[0]["id"])
    record = record_of(world, "ruddr", ruddr_id)
    world.users["ruddr"].edit(ruddr_id, name="Renamed in Ruddr")
    world.time_passes()
    poll(engine, "ruddr")
    results = sent_to_target(engine)
    assert [r.job.kind for r in results] == ["update"]
    link = link_of(world, TARGET, record)
    moved_shadow = {**link.shadow, "next_steps": "a capture's value"}
    capture = sa.update(Link).where(col(Link.id) == link.id).values(shadow=moved_shadow)
    assert not planned_then(engine, results, capture)
    assert link_of(world, TARGET, record).shadow["name"] != "Renamed in Ruddr"
    counts = Counts()
    apply_results(engine, results, counts)
    assert counts["pushed"] == 1
    shadow = link_of(world, TARGET, record).shadow
    assert shadow["name"] == "Renamed in Ruddr"
    assert shadow["next_steps"] == "a capture's value"
