"""``push.recovery``: a lost create's recovery among thousands of deals made in the vendor
since its intent adopts the right deal, while the drain's shared listing holds only the deals
one of its recoveries could adopt (issue 25: a 200,000-deal load's one lost create listed
~100,000 Close deals and held them all). What is adopted in every case: ``test_lost_answers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.engine.context import Counts
from sync.engine.cycle import poll
from sync.engine.push.apply import apply_results
from sync.engine.push.prepare import claim, prepare
from sync.engine.push.recovery import Lookups
from sync.engine.push.send import send
from tests.e2e.conftest import World, make_world
from tests.e2e.test_scenarios import SYSTEMS, amount_in, count_named, link_of, name_of, record_of

pytestmark = pytest.mark.slow

#: deals people made in the target after our intents: every one inside the recovery's window
CROWD = 2000


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = make_world(tmp_path)
    try:
        yield built
    finally:
        built.engine.close()


def one_drain(world: World, target: str) -> tuple[Lookups, Counts]:
    """The target's owed rows claimed, sent and applied as one drain does, its recoveries
    sharing one ``Lookups`` (returned, to see what its listing kept)."""
    engine = world.engine
    lookups = Lookups(engine, target)
    jobs = prepare(engine, target, claim(engine, target, 50), None)
    lookups.claimed(jobs)
    results = [send(engine, job, None, lookups) for job in jobs]
    counts = Counts()
    apply_results(engine, results, counts)
    return lookups, counts


def crowd(world: World, system: str, template: str) -> None:
    """``CROWD`` deals made there by people, after our intents (the listing's bulk)."""
    for n in range(CROWD):
        world.users[system].create(f"{template} {n}")


def test_close_keeps_only_the_deal_carrying_our_id(world: World) -> None:
    """A create to Close lost its answer; people then made 2,000 deals there, one of them
    under the same name. The retry lists the window once and adopts the deal carrying our
    record id; the listing held that deal alone (Close's deals carry our id: no other can be
    ours), not the 2,000."""
    name = "Lost among a crowd"
    world.cycle()
    ruddr_id = world.users["ruddr"].create(name)
    poll(world.engine, "ruddr")
    world.crash_mid_push("close", sent=True)  # the deal is made, its answer never recorded
    ours = [str(d["id"]) for d in world.users["close"].all() if name_of("close", d) == name]
    assert len(ours) == 1
    world.users["close"].create(name)  # a person's deal of that name: not ours
    crowd(world, "close", "Crowd deal")
    world.time_passes()
    lookups, counts = one_drain(world, "close")
    assert counts["adopted"] == 1, counts.values
    record = record_of(world, "ruddr", ruddr_id)
    assert link_of(world, "close", record).external_id == ours[0]
    assert [deal.external_id for deal in lookups.held()] == ours
    assert count_named(world, "close", name) == 2  # ours and the person's: nothing created


def test_two_lost_creates_of_one_name_among_a_crowd_each_adopt_their_own(world: World) -> None:
    """Two Close deals share a name and both creates in Ruddr (which holds no record id of
    ours) lost their answers; people then made 2,000 other deals in Ruddr. One listing serves
    both retries: each adopts the deal holding what it sent, and the listing held only the two
    deals of that name (no other could pass the identity rule), not the 2,000."""
    world.cycle()
    world.engine.backoff_base = 3600.0
    world.faults("ruddr", fail_after_commit_rate=1.0)
    small = world.users["close"].create("Twin in a crowd", value_cents=100_000)
    large = world.users["close"].create("Twin in a crowd", value_cents=5_000_000)
    world.cycle()
    world.faults("ruddr")
    twins = {str(d["id"]) for d in world.users["ruddr"].all() if d["name"] == "Twin in a crowd"}
    assert len(twins) == 2, "Ruddr made both deals"
    crowd(world, "ruddr", "Crowd deal")
    pages = -(-len(world.users["ruddr"].all()) // 100)  # one listing of every deal there
    world.time_passes()
    world.reset_calls()
    lookups, counts = one_drain(world, "ruddr")
    assert counts["adopted"] == 2, counts.values
    assert {deal.external_id for deal in lookups.held()} == twins
    emulator = world.emulators["ruddr"]
    listed = [r for r in emulator.requests if r["path"] == f"{emulator.prefix}/opportunities"]
    assert len(listed) <= pages, "one listing serves both"
    for close_id, amount in ((small, 1_000.0), (large, 50_000.0)):
        ruddr_id = link_of(world, "ruddr", record_of(world, "close", close_id)).external_id
        assert amount_in(world, "ruddr", ruddr_id) == amount
    for system in SYSTEMS:
        assert count_named(world, system, "Twin in a crowd") == 2, system
