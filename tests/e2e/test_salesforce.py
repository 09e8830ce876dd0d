"""Salesforce connected directly (examples/salesforce.yaml): scenarios through the vendors' APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from sync.emulators import reference
from sync.engine.capture import capture
from sync.engine.push import claim, prepare
from sync.engine.push.send import send_many
from sync.store.models import Link
from tests.e2e.conftest import World, make_world

pytestmark = pytest.mark.slow
SYSTEMS = ["ruddr", "salesforce"]


def sf_world(tmp_path: Path, **kw: Any) -> World:
    """Ruddr and Salesforce (direct) only: the example config's two systems under test. The
    org is the one Ruddr's Salesforce integration is connected to (the example replaces Truto's
    Salesforce account by it): it holds the deals Ruddr's salesforceId names."""
    probe = make_world(tmp_path / "probe", config_file="examples/salesforce.yaml")
    config = probe.config
    probe.engine.close()
    overrides = {
        "systems": {name: config.systems[name] for name in SYSTEMS},
        "mapping": {name: config.mapping[name] for name in SYSTEMS},
        "conflicts": config.conflicts.model_copy(update={"fields": {}, "priority": SYSTEMS}),
    }
    world = make_world(tmp_path, overrides=overrides, config_file="examples/salesforce.yaml", **kw)
    control(world, shared_deals=True)
    return world


def control(world: World, **switches: Any) -> dict[str, Any]:
    """The Salesforce emulator's org switches (``POST /_emulator/salesforce``)."""
    emulator = world.emulators["salesforce"]
    client = httpx.Client(transport=emulator.transport(), base_url="http://emu")
    answer = client.post("/_emulator/salesforce", json=switches)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


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


def test_fail_after_commit_on_collection_creates_leaves_no_duplicate(world: World) -> None:
    """Every collection's answer is lost after Salesforce committed it: the retries upsert on
    our ids, so each deal exists once."""
    world.converge(cycles=1)
    world.faults("salesforce", fail_after_commit_rate=1.0)
    for i in range(5):
        world.users["ruddr"].create(f"Lost answer {i}")
    world.cycle()
    routes = world.emulators["salesforce"].request_counts()["by_route"]
    assert routes.get("PATCH /services/data/v59.0/composite/sobjects/Opportunity/Crmsync_Id__c")
    world.cycle()
    world.faults("salesforce", fail_after_commit_rate=0.0)
    world.time_passes()
    report = world.converge(cycles=2)
    for i in range(5):
        assert len(named(world, "salesforce", f"Lost answer {i}")) == 1
    assert report.clean, report


def test_an_expired_session_is_renewed_without_losing_a_push(world: World) -> None:
    """Sessions expire mid-run: the connector fetches a new one and the edit still lands."""
    deal = world.users["ruddr"].create("Session", amount=1)
    world.converge(cycles=2)
    sf_id = external_of(world, "salesforce", record_of(world, "ruddr", deal))
    control(world, expire_sessions=True)
    world.users["ruddr"].edit(deal, amount=2)
    world.converge(cycles=2)
    assert world.users["salesforce"].get(sf_id)["Amount"] == 2.0


def test_a_load_goes_out_in_collections_of_200(world: World) -> None:
    """450 new Ruddr deals reach Salesforce in three collection upserts (200, 200, 50), each
    read back in one request — not 450 single creates."""
    world.emulators["ruddr"].add_opportunities(450, seed=11)
    world.cycle()
    routes = world.emulators["salesforce"].request_counts()["by_route"]
    upserts = routes.get("PATCH /services/data/v59.0/composite/sobjects/Opportunity/Crmsync_Id__c")
    singles = sum(
        n for route, n in routes.items() if "sobjects/Opportunity/Crmsync_Id__c/" in route
    )
    assert (upserts, singles) == (3, 0), routes
    report = world.converge(cycles=2)
    assert report.clean, report


def test_a_partly_failed_collection_parks_only_the_bad_record(world: World) -> None:
    """A deal Salesforce refuses (a name over 120 characters) goes to the dead letters with
    Salesforce's reason; the other deals of the same collection are created."""
    from sync.store.models import DeadLetter

    for i in range(4):
        world.users["ruddr"].create(f"Batch mate {i}")
    world.users["ruddr"].create("x" * 130)
    world.converge(cycles=2)
    for i in range(4):
        assert len(named(world, "salesforce", f"Batch mate {i}")) == 1
    with world.engine.session() as session:
        letters = session.exec(select(DeadLetter).where(DeadLetter.system == "salesforce")).all()
    assert len(letters) == 1 and "STRING_TOO_LONG" in str(letters[0].error)


def test_a_process_killed_mid_collection_leaves_no_duplicate(world: World) -> None:
    """A worker sends a collection create and dies before recording the answers: the next
    process re-sends (or adopts) by our id, and every deal exists once."""

    world.converge(cycles=1)
    for i in range(6):
        world.users["ruddr"].create(f"Killed {i}")
    capture(world.engine, "ruddr")  # the new deals are owed to Salesforce, not yet sent
    ids = claim(world.engine, "salesforce", 50)
    jobs = [job for job in prepare(world.engine, "salesforce", ids, None) if job.kind == "create"]
    assert len(jobs) == 6
    send_many(world.engine, jobs, None)  # Salesforce committed all six; nobody recorded it
    world.restart()
    world.time_passes()
    report = world.converge(cycles=3)
    for i in range(6):
        assert len(named(world, "salesforce", f"Killed {i}")) == 1
    assert report.clean, report


def test_the_daily_reserve_pauses_and_resumes(world: World) -> None:
    """With 85% of the org's allocation spent (reserve 20%) nothing is written and status
    says why; once usage falls the owed push goes out."""
    from sync.engine.operations import system_health

    world.converge(cycles=1)
    emulator = world.emulators["salesforce"]
    emulator.api_usage = [(emulator.clock.peek(), 85_000)]
    deal = world.users["ruddr"].create("Waits for the allocation")
    world.cycle()
    world.cycle()
    assert named(world, "salesforce", "Waits for the allocation") == []
    health = {row["system"]: row for row in system_health(world.engine)}["salesforce"]
    assert health["health"] == "error" and "kept for other tools" in health["last_error"]
    emulator.api_usage = []
    # the paused connector probes once a minute; here the next call probes at once
    world.engine.connector("salesforce").options["reserve_probe_seconds"] = 0
    world.time_passes()
    world.converge(cycles=2)
    assert len(named(world, "salesforce", "Waits for the allocation")) == 1
    assert record_of(world, "ruddr", deal)


def multi_currency_world(tmp_path: Path) -> World:
    """The example config with a multi-currency org: `currency: multi` and CurrencyIsoCode
    mapped (what the example's comment tells a multi-currency org to write)."""
    from sync.mapping.spec import FieldSpec
    from sync.money_config import CurrencyConfig

    probe = make_world(tmp_path / "probe", config_file="examples/salesforce.yaml")
    config = probe.config
    probe.engine.close()
    system = config.systems["salesforce"].model_copy(
        update={"currency": CurrencyConfig(mode="multi", code="USD")}
    )
    mapping = config.mapping["salesforce"].model_copy(
        update={"currency": FieldSpec(path="CurrencyIsoCode")}
    )
    overrides = {
        "systems": {"ruddr": config.systems["ruddr"], "salesforce": system},
        "mapping": {"ruddr": config.mapping["ruddr"], "salesforce": mapping},
        "conflicts": config.conflicts.model_copy(update={"fields": {}, "priority": SYSTEMS}),
    }
    world = make_world(tmp_path, overrides=overrides, config_file="examples/salesforce.yaml")
    control(world, shared_deals=True, multi_currency=True)
    return world


def test_a_single_currency_org_parks_a_foreign_deal_and_keeps_its_own(world: World) -> None:
    """The org holds USD only: a EUR deal is parked (never written as the same figure in
    USD), a USD deal arrives as is."""
    euro = world.users["ruddr"].create("Euro deal", amount=500)
    world.users["ruddr"].edit(euro, currency="EUR")
    world.users["ruddr"].create("Dollar deal", amount=700)
    world.converge(cycles=2)
    assert named(world, "salesforce", "Euro deal") == []
    [dollar] = named(world, "salesforce", "Dollar deal")
    assert dollar["Amount"] == 700.0
    from sync.store.models import DeadLetter

    with world.engine.session() as session:
        letters = session.exec(select(DeadLetter).where(DeadLetter.system == "salesforce")).all()
    assert len(letters) == 1 and "EUR" in letters[0].error


def test_a_multi_currency_org_keeps_every_amount_in_its_currency(tmp_path: Path) -> None:
    """EUR from Ruddr arrives as CurrencyIsoCode EUR with the same figure; a GBP deal made in
    Salesforce reaches Ruddr in GBP."""
    world = multi_currency_world(tmp_path)
    try:
        euro = world.users["ruddr"].create("Euro deal", amount=500)
        world.users["ruddr"].edit(euro, currency="EUR")
        world.converge(cycles=2)
        sf_id = external_of(world, "salesforce", record_of(world, "ruddr", euro))
        held = world.users["salesforce"].get(sf_id)
        assert (held["Amount"], held["CurrencyIsoCode"]) == (500.0, "EUR")
        gbp = world.users["salesforce"].create("Pound deal", amount=1200)
        world.users["salesforce"].edit(gbp, CurrencyIsoCode="GBP")
        report = world.converge(cycles=2)
        ruddr_id = external_of(world, "ruddr", record_of(world, "salesforce", gbp))
        deal = world.users["ruddr"].get(ruddr_id)
        assert (deal["amount"], deal["currency"]) == (1200, "GBP")
        assert report.clean, report
    finally:
        world.engine.close()


def test_a_guided_first_run_links_salesforce_ids_and_creates_nothing_twice(
    tmp_path: Path,
) -> None:
    """Ruddr and Salesforce already hold the same five deals (Ruddr's salesforceId names each
    Salesforce opportunity): the guided first run writes nothing until approved, proposes them
    as matched, and after approval each deal exists once in each system."""
    from sync.engine import first_run, matching

    world = sf_world(tmp_path, first_run="guided")
    try:
        world.cycle()
        # nothing is created before approval (deals linked by salesforceId may be updated)
        creates = [
            f"{r['method']} {r['path']}"
            for name in SYSTEMS
            for r in world.emulators[name].requests
            if (r["method"] == "POST" and not r["path"].endswith("/oauth2/token"))
            or "Crmsync_Id__c" in r["path"]
        ]
        assert creates == []
        assert first_run.gate(world.engine).state == "review"
        proposal = matching.propose(world.engine)
        assert proposal.counts["matched"] >= 5
        first_run.approve(world.engine, by="test")
        report = world.converge(cycles=3)
        assert report.clean, report
        for deal in reference.shared_deals(7):
            assert len(named(world, "salesforce", deal.name)) == 1, deal.name
            assert len(named(world, "ruddr", deal.name)) == 1, deal.name
            record = record_of(world, "salesforce", deal.salesforce_id)
            assert record_of(world, "ruddr", external_of(world, "ruddr", record))
    finally:
        world.engine.close()
