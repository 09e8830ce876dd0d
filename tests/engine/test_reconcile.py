"""Anti-entropy (`crmsync reconcile`): a healthy store heals nothing; a push the incremental
path lost is found, sent and counted; `status` shows the last count per system."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, delete, select

from sync.engine.cycle import poll
from sync.engine.operations import system_health
from sync.engine.reconcile import reconcile
from sync.engine.verify import verify
from sync.store.models import Journal, Link, Outbox, Run
from tests.e2e.conftest import World, make_world

pytestmark = pytest.mark.slow
SYSTEMS = ["ruddr", "close", "parsalink", "truto_salesforce"]


@pytest.fixture
def synced(tmp_path: Path) -> World:
    world = make_world(tmp_path)
    world.users["ruddr"].create("Reconciled deal")
    assert world.converge(cycles=2).clean
    return world


def external_id(world: World, system: str, name: str) -> tuple[str, str]:
    """(record id, the deal's id in ``system``) of the deal named ``name``."""
    with world.engine.session() as session:
        for link in session.exec(select(Link).where(Link.system == "ruddr")).all():
            if world.users["ruddr"].get(link.external_id).get("name") == name:
                other = session.exec(
                    select(Link).where(Link.record_id == link.record_id, Link.system == system)
                ).one()
                return link.record_id, other.external_id
    raise AssertionError(f"no deal named {name!r}")


def test_a_healthy_store_heals_nothing_and_writes_nothing(synced: World) -> None:
    """After convergence a reconcile reads everything, heals 0 and sends no write."""
    synced.reset_calls()
    report = reconcile(synced.engine)
    assert report.status == "done"
    assert report.healed == 0
    assert sum(synced.calls(s, writes_only=True) for s in SYSTEMS) == 0
    with synced.engine.session() as session:
        run = session.get(Run, report.run_id)
    assert run is not None and run.kind == "reconcile" and run.status == "done"
    assert all(run.counts[f"healed.{system}"] == 0 for system in SYSTEMS)


def test_a_lost_push_is_healed_counted_and_journaled(synced: World) -> None:
    """An edit captured from Ruddr whose outbox rows were lost (say, a restored backup)
    reaches the other systems on the next reconcile, which counts one heal per system."""
    record_id, ruddr_id = external_id(synced, "ruddr", "Reconciled deal")
    synced.users["ruddr"].edit(ruddr_id, amount=123456.0)
    poll(synced.engine, "ruddr")
    with synced.engine.session() as session:
        session.exec(delete(Outbox).where(col(Outbox.record_id) == record_id))  # type: ignore[call-overload]
        session.commit()

    report = reconcile(synced.engine)

    assert report.healed == 5, report.totals().values
    for system in ("close", "parsalink", "truto_salesforce", "salesforce", "hubspot"):
        assert report.per_system[system]["healed"] == 1, system
    assert verify(synced.engine).clean
    with synced.engine.session() as session:
        healed = session.exec(
            select(Journal).where(Journal.record_id == record_id, Journal.action == "healed")
        ).all()
    assert {entry.system for entry in healed} == {
        "close",
        "parsalink",
        "truto_salesforce",
        "salesforce",
        "hubspot",
    }
    assert all("differs in amount" in entry.reason for entry in healed)


def test_status_shows_the_last_reconcile_heal_count_per_system(synced: World) -> None:
    """`status` rows carry the healed count of the latest reconcile (None before any)."""
    assert {row["healed"] for row in system_health(synced.engine)} == {None}
    reconcile(synced.engine, ["close"])
    rows = {row["system"]: row for row in system_health(synced.engine)}
    assert rows["close"]["healed"] == 0
    assert rows["close"]["last_reconcile_at"] is not None
    assert rows["ruddr"]["healed"] is None  # only close was reconciled


def test_a_deal_a_system_lacks_with_no_create_queued_is_created(synced: World) -> None:
    """A deal whose create in ParsaLink was lost entirely (link and outbox row gone, deal
    deleted there) is created again by the reconcile, once."""
    record_id, parsalink_id = external_id(synced, "parsalink", "Reconciled deal")
    synced.users["parsalink"].delete(parsalink_id)
    with synced.engine.session() as session:
        session.exec(  # type: ignore[call-overload]
            delete(Link).where(col(Link.record_id) == record_id, col(Link.system) == "parsalink")
        )
        session.commit()

    report = reconcile(synced.engine, ["parsalink"])

    assert report.per_system["parsalink"]["healed"] == 1
    names = [d.get("name") for d in synced.users["parsalink"].all()]
    assert names.count("Reconciled deal") == 1
    assert verify(synced.engine).clean
