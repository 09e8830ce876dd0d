"""An update whose answer never came back (a process killed after the vendor applied it, a
5xx after commit) must not come back as that vendor's own edit: it would be an echo taken for
a change, and under a `prefer` policy it would beat a newer edit made elsewhere.
"""

from __future__ import annotations

import pytest

from sync.engine.cycle import poll
from tests.e2e.conftest import World
from tests.e2e.test_scenarios import SYSTEMS, amount_in, link_of, record_of

pytestmark = pytest.mark.slow


def close_amount(world: World, record: str, amount: float) -> None:
    """A person in Close sets the amount (Close holds cents)."""
    close_id = link_of(world, "close", record).external_id
    world.users["close"].edit(close_id, value=round(amount * 100))


def assert_amount_everywhere(world: World, record: str, amount: float) -> None:
    for system in SYSTEMS:
        external = link_of(world, system, record).external_id
        assert amount_in(world, system, external) == amount, system


@pytest.mark.parametrize("target", ["ruddr", "parsalink", "truto_salesforce"])
@pytest.mark.parametrize("first", ["capture", "retry"])
def test_an_update_killed_after_the_vendor_applied_it_is_not_taken_for_its_edit(
    world: World, target: str, first: str
) -> None:
    """Close's edit is sent to the target, which applies it; the process dies before it
    records the answer. Then Close is edited again. The target's deal now differs from what we
    last knew of it — but only by what we sent: that is our echo, not an edit made there, and
    the newer Close edit reaches every system (Ruddr would win a real amount conflict)."""
    deal = world.users["ruddr"].create(f"Update in doubt ({target}, {first})", amount=1000)
    world.converge(cycles=2)
    record = record_of(world, "ruddr", deal)
    close_amount(world, record, 2000)
    poll(world.engine, "close")  # an update is owed to the target
    world.crash_mid_push(target)  # applied there; the answer never recorded
    assert amount_in(world, target, link_of(world, target, record).external_id) == 2000
    close_amount(world, record, 3000)  # the newer edit
    poll(world.engine, "close")  # ... is read first
    if first == "capture":
        poll(world.engine, target)  # then the target, while the dead claim still holds
    world.time_passes()
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_amount_everywhere(world, record, 3000.0)


@pytest.mark.parametrize("target", ["ruddr", "parsalink", "truto_salesforce"])
def test_an_update_whose_answer_was_lost_is_not_taken_for_its_edit(
    world: World, target: str
) -> None:
    """The same with a lost answer (the vendor commits, then answers 502 or drops the
    connection): the retry waits, the target is read, Close is edited again — Close's
    newer amount ends everywhere."""
    deal = world.users["ruddr"].create(f"Update answer lost ({target})", amount=1000)
    world.converge(cycles=2)
    record = record_of(world, "ruddr", deal)
    world.engine.backoff_base = 3600.0
    world.faults(target, fail_after_commit_rate=1.0)
    close_amount(world, record, 2000)
    world.cycle()
    world.faults(target)
    assert amount_in(world, target, link_of(world, target, record).external_id) == 2000
    close_amount(world, record, 3000)
    poll(world.engine, "close")  # the newer edit is read first
    poll(world.engine, target)  # then the target, before the retry comes
    world.time_passes()
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_amount_everywhere(world, record, 3000.0)


@pytest.mark.parametrize("target", ["ruddr", "parsalink"])
def test_a_create_whose_deal_was_adopted_then_edited_sends_the_edit(
    world: World, target: str
) -> None:
    """A create's answer is lost; a capture adopts its deal; the deal is then edited in Close
    before the create's row comes due again: that row now sends an update (its create intent
    is moot) and the edit reaches every system — the soak once failed every cycle here."""
    name = f"Adopted then edited ({target})"
    world.cycle()
    world.engine.backoff_base = 3600.0
    world.faults(target, fail_after_commit_rate=1.0)
    deal = world.users["close"].create(name)
    world.cycle()
    world.faults(target)
    poll(world.engine, target)  # the capture adopts the deal; the create's retry still waits
    record = record_of(world, "close", deal)
    close_amount(world, record, 4321)
    poll(world.engine, "close")
    world.time_passes()
    report = world.converge(cycles=3)
    assert report.clean, report
    assert_amount_everywhere(world, record, 4321.0)
