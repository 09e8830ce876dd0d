"""Lost answers and crashes never make a second deal (DESIGN §2.5, "both orders").

A create whose answer is lost (the vendor committed, then a 502 or a dropped connection) or
whose process died before it recorded the answer leaves a deal in the target that our links do
not know. Whichever meets it first — the create's retry or a capture of that system — must
link it to the record that asked for it: exactly one deal in every system, one canonical
record. Run for every vendor: Close and Truto hold our record id, Ruddr and ParsaLink do not.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from sync.engine.cycle import poll
from sync.engine.push import drain
from sync.store.models import Journal, Link, Outbox, Record
from tests.e2e.conftest import World
from tests.e2e.test_scenarios import SYSTEMS, amount_in, count_named, link_of, name_of, record_of

pytestmark = pytest.mark.slow


def origin_for(target: str) -> str:
    return "ruddr" if target == "close" else "close"


def records_named(world: World, name: str) -> int:
    with world.engine.session() as session:
        return sum(1 for r in session.exec(select(Record)).all() if r.fields.get("name") == name)


def lose_create_answer(world: World, target: str, name: str) -> str:
    """A deal created in another system whose create in ``target`` commits but answers 502 or
    drops; its retry is told to wait, so what comes next decides the order. Returns the id."""
    world.cycle()  # everything read once: creates are allowed
    world.engine.backoff_base = 3600.0
    world.faults(target, fail_after_commit_rate=1.0)
    world.users[origin_for(target)].create(name)
    world.cycle()
    world.faults(target)
    made = [d for d in world.users[target].all() if name_of(target, d) == name]
    assert len(made) == 1, "the vendor committed the create"
    with world.engine.session() as session:
        rows = session.exec(select(Outbox).where(Outbox.system == target)).all()
    assert [r.status for r in rows if r.status != "done"] == ["retry"], "its answer was lost"
    return str(made[0]["id"])


def assert_once_everywhere(world: World, name: str) -> None:
    for system in SYSTEMS:
        assert count_named(world, system, name) == 1, system
    assert records_named(world, name) == 1


@pytest.mark.parametrize("target", SYSTEMS)
def test_a_capture_before_the_retry_adopts_the_deal(world: World, target: str) -> None:
    """The target is read before the create's retry comes: its new deal is linked to the
    record that asked for it, and the retry then finds it linked and sends nothing."""
    name = f"Lost answer, capture first ({target})"
    deal = lose_create_answer(world, target, name)
    world.cycle()  # the capture meets the deal; the retry still waits
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.system == target, Link.external_id == deal)
        ).one()
        record = session.get(Record, link.record_id)
        assert record is not None and record.fields["name"] == name
    world.time_passes()
    world.reset_calls()
    report = world.converge(cycles=2)
    assert report.clean, report
    assert_once_everywhere(world, name)
    posts = [r for r in world.emulators[target].requests if r["method"] == "POST"]
    assert not [r for r in posts if "opportunit" in r["path"]], "no second create"


@pytest.mark.parametrize("target", SYSTEMS)
def test_the_retry_before_a_capture_adopts_the_deal(world: World, target: str) -> None:
    """The create's retry comes first: its look-up adopts the deal; the capture then finds it
    linked."""
    name = f"Lost answer, retry first ({target})"
    lose_create_answer(world, target, name)
    world.time_passes()
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_once_everywhere(world, name)


def rename_later(world: World, target: str, deal: str, name: str) -> None:
    """A person renames the deal a little later (ParsaLink stamps whole seconds: a rename in
    the very second of the create leaves no trace that the deal was edited at all)."""
    world.emulators[target].clock.advance(2)
    world.users[target].edit(deal, name=name)


@pytest.mark.parametrize("target", ["ruddr", "parsalink"])
def test_a_deal_renamed_before_the_capture_is_still_ours(world: World, target: str) -> None:
    """Between the lost answer and the capture someone renames the deal in the target: it is
    still adopted (the other fields it was created with agree), and the rename — a change on
    that side — reaches every system."""
    name = f"Renamed after lost answer ({target})"
    deal = lose_create_answer(world, target, name)
    rename_later(world, target, deal, f"{name} (edited)")
    world.cycle()
    world.time_passes()
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_once_everywhere(world, f"{name} (edited)")
    for system in SYSTEMS:
        assert count_named(world, system, name) == 0, system


@pytest.mark.parametrize("target", SYSTEMS)
@pytest.mark.parametrize("first", ["capture", "retry"])
def test_a_crash_between_the_vendor_commit_and_our_bookkeeping(
    world: World, target: str, first: str
) -> None:
    """The process dies after the vendor created the deal and before the answer was recorded
    (its claim still held): a fresh process on the same store ends with the deal once."""
    name = f"Killed mid-create ({target}, {first} first)"
    world.cycle()
    world.users[origin_for(target)].create(name)
    poll(world.engine, origin_for(target))  # captured: a create is owed to the target
    with world.engine.session() as session:
        pending = session.exec(
            select(Outbox).where(Outbox.system == target, Outbox.op == "create")
        ).all()
    assert pending, "a create is owed to the target"
    world.crash_mid_push(target)  # the vendor created the deal; the process died
    assert count_named(world, target, name) == 1
    if first == "capture":
        world.cycle(systems=[target])  # the claim is still held by the dead process
    world.time_passes()  # its claim runs out
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_once_everywhere(world, name)
    with world.engine.session() as session:
        actions = [j.action for j in session.exec(select(Journal)).all() if j.system == target]
    assert "create_intent" in actions


@pytest.mark.parametrize("target", ["ruddr", "parsalink"])
def test_a_retry_finds_a_deal_renamed_before_it_came(world: World, target: str) -> None:
    """The retry comes before any capture, and the deal was renamed there meanwhile: the
    look-up by name finds nothing, so the deals created since the intent are compared with
    what the create sent — it adopts the renamed deal instead of creating a second one."""
    name = f"Renamed before the retry ({target})"
    deal = lose_create_answer(world, target, name)
    rename_later(world, target, deal, f"{name} (edited)")
    world.time_passes()
    counts = drain(world.engine, target)
    assert counts["adopted"] == 1, counts.values
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_once_everywhere(world, f"{name} (edited)")


@pytest.mark.parametrize("first", ["capture", "retry"])
def test_two_lost_creates_of_one_name_each_adopt_their_own_deal(world: World, first: str) -> None:
    """Two different Close deals share a name; both creates in Ruddr lose their answers. Each
    record adopts the Ruddr deal that holds what it sent (by likeness, not by age), so no
    deal takes the other's values."""
    world.cycle()
    world.engine.backoff_base = 3600.0
    world.faults("ruddr", fail_after_commit_rate=1.0)
    small = world.users["close"].create("Twin name", value_cents=100_000)
    large = world.users["close"].create("Twin name", value_cents=5_000_000)
    world.cycle()
    world.faults("ruddr")
    assert count_named(world, "ruddr", "Twin name") == 2
    if first == "capture":
        poll(world.engine, "ruddr")
    world.time_passes()
    drain(world.engine, "ruddr")
    report = world.converge(cycles=2)
    assert report.clean, report
    for system in SYSTEMS:
        assert count_named(world, system, "Twin name") == 2, system
    for close_id, amount in ((small, 1_000.0), (large, 50_000.0)):
        record = record_of(world, "close", close_id)
        ruddr_id = link_of(world, "ruddr", record).external_id
        assert amount_in(world, "ruddr", ruddr_id) == amount
        assert amount_in(world, "close", close_id) == amount


@pytest.mark.parametrize("target", SYSTEMS)
@pytest.mark.parametrize("first", ["capture", "retry"])
def test_a_look_alike_deal_made_there_meanwhile_is_not_taken_for_ours(
    world: World, target: str, first: str
) -> None:
    """While a create's answer is lost, a person makes another deal there from the same
    template — every field equal but the name. It is theirs, not our lost create: both deals
    end once everywhere, neither renamed into the other (the soak once lost deals this way)."""
    name = f"Lost answer ({target}, {first} first)"
    twin = f"Template twin ({target}, {first} first)"
    lose_create_answer(world, target, name)
    world.users[target].create(twin)
    if first == "capture":
        world.cycle()  # the capture meets both deals before the retry
    world.time_passes()
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_once_everywhere(world, name)
    assert_once_everywhere(world, twin)


@pytest.mark.parametrize("target", SYSTEMS)
@pytest.mark.parametrize("first", ["capture", "retry"])
def test_a_create_killed_before_it_was_sent_adopts_no_look_alike(
    world: World, target: str, first: str
) -> None:
    """The process dies after journaling a create's intent, before the request leaves; a
    person then makes a deal there from the same template. The open intent must not take that
    deal for ours: our create is sent again, and both deals end once everywhere."""
    name = f"Killed before sending ({target}, {first} first)"
    twin = f"Made meanwhile ({target}, {first} first)"
    world.cycle()
    world.users[origin_for(target)].create(name)
    poll(world.engine, origin_for(target))  # captured: a create is owed to the target
    world.crash_mid_push(target, sent=False)
    assert count_named(world, target, name) == 0, "nothing was sent"
    world.users[target].create(twin)
    if first == "capture":
        world.cycle(systems=[target])  # the dead process still holds its claim
    world.time_passes()
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_once_everywhere(world, name)
    assert_once_everywhere(world, twin)
