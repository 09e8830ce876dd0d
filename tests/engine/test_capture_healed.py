"""A full compare (``capture(full=True)``, what a reconcile runs) counts ``healed``: what differs
from the store although the regular polls should already have delivered it. Healthy: 0."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from sync.engine.capture import capture
from sync.store.models import Journal, Link
from tests.e2e.conftest import World, single_system
from tests.engine.test_capture_watermark import cursor_of


@pytest.fixture
def close_world(tmp_path: Path) -> Iterator[World]:
    world = single_system(tmp_path, "close", seed_opportunities=30)
    yield world
    world.engine.close()


@pytest.mark.parametrize("system", ["close", "truto_salesforce", "ruddr", "parsalink"])
def test_a_healthy_full_compare_heals_nothing(tmp_path: Path, system: str) -> None:
    """Polls delivered everything, including an edit made between them: the full compare
    finds no difference to heal, in incremental and scan systems alike."""
    world = single_system(tmp_path, system, seed_opportunities=20)
    capture(world.engine, system)
    deal = world.users[system].all()[0]["id"]
    edit = {"close": {"confidence": 42}, "ruddr": {"probability": 0.42}}.get(
        world.config.systems[system].type, {"name": "Renamed in a poll"}
    )
    world.users[system].edit(deal, **edit)
    assert capture(world.engine, system)["changed"] == 1
    counts = capture(world.engine, system, full=True)
    assert counts["healed"] == 0
    assert counts["fetched"] == len(world.users[system].all())
    world.engine.close()


def test_a_change_the_incremental_path_missed_is_healed_and_counted(close_world: World) -> None:
    """A Close deal changed with a ``date_updated`` an hour older than the cursor (a vendor
    clock that moved back): incremental polls never see it; the full compare takes the change
    and counts it, once, with a journal entry saying why."""
    engine, emulator = close_world.engine, close_world.emulators["close"]
    capture(engine, "close")
    watermark = cursor_of(close_world, "close").watermark
    assert watermark is not None
    deal = next(iter(emulator.collections["opportunity"]))
    stale = watermark - dt.timedelta(hours=1)
    emulator.set_fields("opportunity", deal, {"value": 777_00, "date_updated": stale.isoformat()})
    assert capture(engine, "close")["changed"] == 0  # missed, as in production
    counts = capture(engine, "close", full=True)
    assert counts["healed"] == 1 and counts["changed"] == 1
    with engine.session() as session:
        link = session.exec(select(Link).where(Link.external_id == deal)).one()
        healed = session.exec(
            select(Journal).where(Journal.record_id == link.record_id, Journal.action == "healed")
        ).all()
    assert link.shadow["amount"] == "777.00"
    assert len(healed) == 1 and "predates" in healed[0].reason
    assert capture(engine, "close", full=True)["healed"] == 0  # healed stays healed


def test_a_deal_the_polls_never_listed_is_healed(close_world: World) -> None:
    """A deal stamped before the watermark that no poll listed (a dropped page) is linked by
    the full compare and counted."""
    engine, emulator = close_world.engine, close_world.emulators["close"]
    capture(engine, "close")
    watermark = cursor_of(close_world, "close").watermark
    assert watermark is not None
    deal = close_world.users["close"].create("Listed late")
    stale = (watermark - dt.timedelta(hours=2)).isoformat()
    emulator.set_fields("opportunity", deal, {"date_created": stale, "date_updated": stale})
    assert capture(engine, "close")["created"] == 0
    counts = capture(engine, "close", full=True)
    assert counts["healed"] == 1 and counts["created"] == 1


def test_a_delete_only_a_full_scan_sees_is_healed_for_truto(tmp_path: Path) -> None:
    """Truto has no delete feed: its incremental polls cannot see a delete, so the full
    compare's set difference finds it and counts it as healed."""
    world = single_system(tmp_path, "truto_salesforce", seed_opportunities=5)
    capture(world.engine, "truto_salesforce")
    deal = world.users["truto_salesforce"].all()[0]["id"]
    world.users["truto_salesforce"].delete(deal)
    assert capture(world.engine, "truto_salesforce")["deleted"] == 0
    counts = capture(world.engine, "truto_salesforce", full=True)
    assert counts["deleted"] == 1 and counts["healed"] == 1
    world.engine.close()


def test_a_regular_poll_counts_no_heals(close_world: World) -> None:
    """Only a full compare counts heals; a regular poll delivering an edit is the normal path."""
    capture(close_world.engine, "close")
    deal = next(iter(close_world.emulators["close"].collections["opportunity"]))
    close_world.users["close"].edit(deal, confidence=77)
    counts = capture(close_world.engine, "close")
    assert counts["changed"] == 1 and counts["healed"] == 0
