"""Salesforce connected directly (examples/salesforce.yaml): scenarios through the vendors' APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from sync.emulators import reference
from sync.store.models import Link
from tests.e2e.conftest import World, make_world

pytestmark = pytest.mark.slow
SYSTEMS = ["ruddr", "salesforce"]


def sf_world(tmp_path: Path, **kw: Any) -> World:
    """Ruddr and Salesforce (direct) only: the example config's two systems under test."""
    probe = make_world(tmp_path / "probe", config_file="examples/salesforce.yaml")
    config = probe.config
    probe.engine.close()
    overrides = {
        "systems": {name: config.systems[name] for name in SYSTEMS},
        "mapping": {name: config.mapping[name] for name in SYSTEMS},
        "conflicts": config.conflicts.model_copy(update={"fields": {}, "priority": SYSTEMS}),
    }
    return make_world(tmp_path, overrides=overrides, config_file="examples/salesforce.yaml", **kw)


@pytest.fixture
def world(tmp_path: Path) -> Any:
    built = sf_world(tmp_path)
    yield built
    built.engine.close()


def external_of(world: World, system: str, record_id: str) -> str:
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.record_id == record_id, Link.system == system)
        ).one()
    return link.external_id


def record_of(world: World, system: str, external_id: str) -> str:
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.system == system, Link.external_id == external_id)
        ).one()
    return link.record_id


def named(world: World, system: str, name: str) -> list[dict[str, Any]]:
    key = "Name" if system == "salesforce" else "name"
    return [d for d in world.users[system].all() if d.get(key) == name]


def test_create_edit_delete_in_salesforce_reach_ruddr_and_back(world: World) -> None:
    """A Salesforce deal appears once in Ruddr; a Ruddr edit reaches Salesforce; verify is
    clean; a delete in Salesforce is seen by the delete feed (unlink: the Ruddr deal stays)."""
    sf_id = world.users["salesforce"].create("From Salesforce", amount=4200)
    report = world.converge(cycles=2)
    assert report.clean, report
    [ruddr_deal] = named(world, "ruddr", "From Salesforce")
    assert ruddr_deal["amount"] == 4200
    world.users["ruddr"].edit(ruddr_deal["id"], amount=5100, name="Edited in Ruddr")
    world.converge(cycles=2)
    held = world.users["salesforce"].get(sf_id)
    assert (held["Amount"], held["Name"]) == (5100.0, "Edited in Ruddr")
    assert held["Crmsync_Id__c"] is None or held["Crmsync_Id__c"]  # ours may be written
    record = record_of(world, "salesforce", sf_id)
    world.users["salesforce"].delete(sf_id)
    world.emulators["salesforce"].clock.advance(120)
    world.converge(cycles=2)
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.record_id == record, Link.system == "salesforce")
        ).one()
    assert link.deleted_at is not None
    assert named(world, "ruddr", "Edited in Ruddr")


def test_a_ruddr_deal_reaches_salesforce_once_with_our_id(world: World) -> None:
    """Created in Ruddr, it is created in Salesforce by an upsert on Crmsync_Id__c."""
    world.users["ruddr"].create("From Ruddr", amount=999)
    report = world.converge(cycles=2)
    assert report.clean, report
    [deal] = named(world, "salesforce", "From Ruddr")
    assert deal["Crmsync_Id__c"] and deal["Amount"] == 999.0


def test_ruddr_salesforce_id_links_the_salesforce_deal_without_a_duplicate(
    world: World,
) -> None:
    """Ruddr's salesforceId names opportunities Salesforce already holds: they are linked,
    never created again."""
    world.converge(cycles=2)
    for deal in reference.shared_deals(7):
        assert len(named(world, "salesforce", deal.name)) == 1, deal.name
        record = record_of(world, "salesforce", deal.salesforce_id)
        assert external_of(world, "salesforce", record) == deal.salesforce_id


def test_fail_after_commit_on_creates_leaves_no_duplicate(world: World) -> None:
    """Every create's answer is lost after Salesforce committed it: the upsert on our id makes
    the retry find the same deal."""
    for i in range(3):
        world.users["ruddr"].create(f"Lost answer {i}")
    world.converge(cycles=1)
    world.faults("salesforce", fail_after_commit_rate=1.0)
    world.users["ruddr"].create("Lost answer 3")
    world.cycle()
    world.faults("salesforce", fail_after_commit_rate=0.0)
    world.time_passes()
    report = world.converge(cycles=2)
    for i in range(4):
        assert len(named(world, "salesforce", f"Lost answer {i}")) == 1
    assert report.clean, report


def test_an_expired_session_is_renewed_without_losing_a_push(world: World) -> None:
    """Sessions expire mid-run: the connector fetches a new one and the edit still lands."""
    deal = world.users["ruddr"].create("Session", amount=1)
    world.converge(cycles=2)
    sf_id = external_of(world, "salesforce", record_of(world, "ruddr", deal))
    emulator = world.emulators["salesforce"]
    httpx.Client(transport=emulator.transport(), base_url="http://emu").post(
        "/_emulator/salesforce", json={"expire_sessions": True}
    )
    world.users["ruddr"].edit(deal, amount=2)
    world.converge(cycles=2)
    assert world.users["salesforce"].get(sf_id)["Amount"] == 2.0
