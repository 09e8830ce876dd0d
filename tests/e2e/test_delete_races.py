"""A delete racing a later edit (DESIGN §2.7): with ``deletes: propagate`` on Ruddr, a deal
deleted there while someone edits it in Close is not deleted from under that edit. The later
edit wins: the deal stays where it still exists, Ruddr keeps its delete, and a conflict is
journaled. Both orders: the delete seen first, or the edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from sync.engine.cycle import poll
from sync.store.models import Conflict, Journal
from tests.e2e.conftest import World, make_world
from tests.e2e.test_scenarios import amount_in, count_named, link_of, record_of

pytestmark = pytest.mark.slow


@pytest.fixture
def propagating(tmp_path: Path) -> World:
    probe = make_world(tmp_path / "probe")
    systems = dict(probe.config.systems)
    systems["ruddr"] = systems["ruddr"].model_copy(update={"deletes": "propagate"})
    probe.engine.close()
    return make_world(tmp_path, overrides={"systems": systems})


def _shared_deal(world: World, name: str) -> tuple[str, str]:
    deal = world.users["ruddr"].create(name)
    assert world.converge(cycles=2).clean
    record = record_of(world, "ruddr", deal)
    return deal, link_of(world, "close", record).external_id


def _assert_edit_won(world: World, name: str, close_id: str) -> None:
    report = world.converge(cycles=2)
    assert report.clean, report
    assert count_named(world, "ruddr", name) == 0, "Ruddr keeps its delete"
    for system in ("close", "parsalink", "truto_salesforce"):
        assert count_named(world, system, name) == 1, system
    assert amount_in(world, "close", close_id) == 4321.0
    record = record_of(world, "close", close_id)
    assert amount_in(world, "parsalink", link_of(world, "parsalink", record).external_id) == 4321.0
    with world.engine.session() as session:
        conflicts = session.exec(select(Conflict).where(Conflict.field == "deleted")).all()
        journal = session.exec(select(Journal).where(Journal.action == "conflict")).all()
    assert len(conflicts) == 1 and conflicts[0].winner == "close"
    assert any("the later edit wins" in j.reason for j in journal)


def test_the_delete_seen_first_does_not_drop_a_later_edit(propagating: World) -> None:
    """Ruddr is read first (the delete propagates), then Close's edit is read: the edit wins
    and the deletes not yet sent are called off."""
    world = propagating
    deal, close_id = _shared_deal(world, "Deleted then edited")
    world.users["ruddr"].delete(deal)
    world.users["close"].edit(close_id, value=432100)
    _assert_edit_won(world, "Deleted then edited", close_id)


def test_an_edit_seen_first_is_not_deleted_by_the_delete(propagating: World) -> None:
    """Close's edit is captured before Ruddr's delete is seen: Ruddr never received that edit,
    so its delete does not propagate over it."""
    world = propagating
    deal, close_id = _shared_deal(world, "Edited then deleted")
    world.users["ruddr"].delete(deal)
    world.users["close"].edit(close_id, value=432100)
    poll(world.engine, "close")
    _assert_edit_won(world, "Edited then deleted", close_id)


def test_a_delete_with_nothing_racing_it_propagates(propagating: World) -> None:
    """The rule takes nothing away from a plain delete: it reaches every system."""
    world = propagating
    deal, _ = _shared_deal(world, "Simply deleted")
    world.users["ruddr"].delete(deal)
    assert world.converge(cycles=2).clean
    for system in ("ruddr", "close", "parsalink", "truto_salesforce"):
        assert count_named(world, system, "Simply deleted") == 0, system
