"""The guided first run against systems that already hold the same deals (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from sync.engine import first_run, matching
from sync.engine.normalise import normalise_text
from sync.engine.verify import verify
from sync.store.models import Link, Record
from tests.e2e.conftest import World, make_world
from tests.e2e.users import CLOSE_NAME

pytestmark = pytest.mark.slow
THREE = ("ruddr", "close", "parsalink")
#: one company per ten deals, spelt its own way in each system
COMPANIES = {
    "ruddr": ["Zorblax", "Quuxify", "Brontide", "Karrowen", "Wexler Dynamics"],
    "close": ["Zorblax, Inc.", "QUUXIFY LLC", "brontide corp", "Karrowen Ltd", "Wexler  Dynamics"],
    "parsalink": ["ZORBLAX INC", "Quuxify", "Brontide Co.", "karrowen gmbh", "wexler dynamics inc"],
}


def _name(i: int, system: str) -> str:
    """One deal's name, varied per system in case, spacing and punctuation."""
    return {
        "ruddr": f"Renewal {i:03d} - Platform",
        "close": f"renewal {i:03d}  platform",
        "parsalink": f"RENEWAL {i:03d} PLATFORM.",
    }[system]


def _three_systems(tmp_path: Path) -> World:
    probe = make_world(tmp_path / "probe").config
    overrides = {
        "systems": {name: probe.systems[name] for name in THREE},
        "mapping": {name: probe.mapping[name] for name in THREE},
    }
    world = make_world(tmp_path, overrides=overrides, first_run="guided")
    for deal in world.users["ruddr"].all():  # the emulator's own seed: not part of this world
        world.users["ruddr"].delete(deal["id"])
    for system, names in COMPANIES.items():
        path = {"ruddr": "/companies", "close": "/lead/", "parsalink": "/accounts/"}[system]
        for name in names:
            world.users[system]._ok(world.users[system].client.post(path, json={"name": name}))
    return world


def _create(world: World, system: str, i: int, amount: float = 1000.0) -> str:
    user, company = world.users[system], COMPANIES[system][i % len(COMPANIES[system])]
    name = _name(i, system)
    if system == "close":
        return str(user.create(name, company=company, value_cents=int(amount * 100)))
    if system == "parsalink":
        return str(user.create(name, company=company, value=amount))
    return str(user.create(name, company=company, amount=amount))


def _seed(world: World) -> None:
    """200 deals: 185 in all three systems, 10 in one only, 5 with two look-alikes in Close."""
    for i in range(185):
        for system in THREE:
            _create(world, system, i)
    for i in range(185, 195):
        _create(world, THREE[i % 3], i)
    for i in range(195, 200):
        _create(world, "ruddr", i)
        _create(world, "parsalink", i)
        _create(world, "close", i, amount=1000.0)
        _create(world, "close", i, amount=2500.0)  # a second Close deal that reads the same


def _held(world: World, system: str) -> dict[str, int]:
    """Deals per normalised name in one system."""
    counts: dict[str, int] = {}
    for deal in world.users[system].all():
        raw = deal.get(f"custom.{CLOSE_NAME}") if system == "close" else deal.get("name")
        key = normalise_text(raw)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _writes(world: World) -> int:
    return sum(world.calls(system, writes_only=True) for system in THREE)


def test_guided_first_run_matches_185_holds_5_and_creates_the_10_singles(tmp_path: Path) -> None:
    """Three systems holding the same 200 deals, a fresh store: the first cycle creates
    nothing; the match finds 185 matched, 5 ambiguous, 10 single; after approval every system
    holds every deal once (the singles created where they were missing), the ambiguous ones are
    left alone and reported, and verify is clean."""
    world = _three_systems(tmp_path)
    try:
        _seed(world)
        world.reset_calls()
        world.cycle()
        assert _writes(world) == 0, "the guided first run must not write anything"
        assert first_run.gate(world.engine).state == "review"
        world.cycle()  # a second cycle before approval still creates nothing
        assert _writes(world) == 0

        proposal = matching.propose(world.engine)
        counts = proposal.counts
        assert (counts["matched"], counts["ambiguous"], counts["single"]) == (185, 5, 10)
        assert counts["to_link"] == 185 * 2
        for group in proposal.of("ambiguous"):
            assert "close holds" in group.why

        applied = first_run.approve(world.engine, by="test")
        assert (applied.linked, applied.merged_records, applied.held) == (185, 370, 20)
        assert first_run.held_for_review(world.engine) == 20
        report = world.converge(cycles=3)
        assert report.clean, {n: c for n, c in report.systems.items() if not c.clean}

        for system in THREE:
            held = _held(world, system)
            for i in range(195):
                assert held[normalise_text(_name(i, "ruddr"))] == 1, (system, i)
            for i in range(195, 200):  # untouched: a person decides
                expected = 2 if system == "close" else 1
                assert held[normalise_text(_name(i, "ruddr"))] == expected
        after = matching.propose(world.engine).counts
        assert (after["matched"], after["ambiguous"], after["single"]) == (195, 5, 0)
    finally:
        world.engine.close()


def test_a_corrected_file_links_an_ambiguous_deal_to_the_copy_a_person_chose(
    tmp_path: Path,
) -> None:
    """Export, pick one of two Close look-alikes for the Ruddr/ParsaLink deal, apply: that
    pair is linked, the other Close deal becomes a deal of its own, nothing else moves."""
    world = _three_systems(tmp_path)
    try:
        _create(world, "ruddr", 7)
        _create(world, "parsalink", 7)
        chosen = _create(world, "close", 7, amount=1000.0)
        _create(world, "close", 7, amount=2500.0)
        world.cycle()
        proposal = matching.propose(world.engine)
        assert proposal.counts["ambiguous"] == 1
        path = tmp_path / "matches.csv"
        matching.write_csv(proposal, path)
        rows = path.read_text().splitlines()
        edited = [rows[0]]
        for row in rows[1:]:
            cells = row.split(",")
            cells[2] = "link"
            if cells[3] == "close" and cells[4] != chosen:
                cells[0] = "SEPARATE"
            edited.append(",".join(cells))
        path.write_text("\n".join(edited) + "\n")
        corrected = matching.read_csv(path, matching.propose(world.engine))
        first_run.approve(world.engine, by="test", proposal=corrected)
        world.converge(cycles=2)
        with world.engine.session() as session:
            records = session.exec(select(Record)).all()
            links = session.exec(select(Link)).all()
        assert len(records) == 2
        by_record: dict[str, set[str]] = {}
        for link in links:
            by_record.setdefault(link.record_id, set()).add(f"{link.system}:{link.external_id}")
        assert any(
            f"close:{chosen}" in copies and len(copies) == 3 for copies in by_record.values()
        )
        assert verify(world.engine).clean
    finally:
        world.engine.close()


def test_a_file_linking_two_deals_of_one_system_is_refused(tmp_path: Path) -> None:
    """A correction that would make two Close deals one deal names the rows and applies nothing."""
    world = _three_systems(tmp_path)
    try:
        _create(world, "close", 3, amount=1.0)
        _create(world, "close", 3, amount=2.0)
        _create(world, "ruddr", 3)
        world.cycle()
        proposal = matching.propose(world.engine)
        path = tmp_path / "m.csv"
        matching.write_csv(proposal, path)
        text = path.read_text().replace(",hold,", ",link,")
        path.write_text(text)
        with pytest.raises(matching.MatchFileError, match="two deals of one system"):
            matching.read_csv(path, proposal)
        assert first_run.gate(world.engine).state == "review"
    finally:
        world.engine.close()


def test_the_first_cycle_of_the_shipped_demo_world_keeps_every_hubspot_id(tmp_path: Path) -> None:
    """The demo's world (seed 1, 10 random deals each): every Ruddr deal carrying a HubSpot id
    keeps it in the store once Truto's Salesforce copy is matched to it."""
    world = make_world(tmp_path, seed=1, seed_opportunities=10, first_run="automatic")
    try:
        world.cycle()
        carried = {
            d["id"]: d["hubspotId"] for d in world.users["ruddr"].all() if d.get("hubspotId")
        }
        assert carried
        with world.engine.session() as session:
            for external_id, hubspot in carried.items():
                link = session.exec(
                    select(Link).where(Link.system == "ruddr", Link.external_id == external_id)
                ).one()
                record = session.get(Record, link.record_id)
                assert record is not None
                ids: dict[str, Any] = record.fields.get("external_ids") or {}
                assert ids.get("hubspot") == hubspot
                assert ids.get("salesforce")
                systems = {
                    row.system
                    for row in session.exec(select(Link).where(Link.record_id == record.id))
                }
                assert {"ruddr", "truto_salesforce"} <= systems
    finally:
        world.engine.close()


def test_a_company_the_target_lacks_parks_the_create_and_the_cycle_goes_on(
    tmp_path: Path,
) -> None:
    """Day one with real systems: a deal at a company Close does not have (and may not create)
    is parked for Close with the reason, the other systems get it, the cycle is not failed."""
    from sync.store.models import Outbox

    world = make_world(tmp_path)
    try:
        ruddr = world.users["ruddr"]
        ruddr._ok(ruddr.client.post("/companies", json={"name": "Lonely Widgets"}))
        ruddr._cache.clear()
        ruddr.create("Only Ruddr knows the company", company="Lonely Widgets")
        report = world.cycle()
        assert report.status == "done", report.errors
        with world.engine.session() as session:
            parked = session.exec(select(Outbox).where(Outbox.status == "parked")).all()
        assert {row.system for row in parked} >= {"close"}
        assert all("Lonely Widgets" in (row.last_error or row.reason) for row in parked)
    finally:
        world.engine.close()


def test_two_deals_of_one_name_only_ruddr_holds_are_created_everywhere(tmp_path: Path) -> None:
    """Issue 24, finding 6: two Ruddr deals of one name at one company, and no other system
    holds one. Nothing to confuse them with, so not ambiguous: ``sync.first_run: automatic``
    creates both in every system."""
    world = make_world(tmp_path, first_run="automatic")
    try:
        for amount in (1000.0, 2500.0):
            world.users["ruddr"].create("Hooli twin renewal", company="Hooli", amount=amount)
        report = world.converge(cycles=3)
        assert report.clean, report
        assert matching.propose(world.engine).counts["ambiguous"] == 0
        for system in ("ruddr", "close", "parsalink", "truto_salesforce"):
            named = [
                d
                for d in world.users[system].all()
                if (d.get(f"custom.{CLOSE_NAME}") if system == "close" else d.get("name"))
                == "Hooli twin renewal"
            ]
            assert len(named) == 2, system
    finally:
        world.engine.close()


def test_deals_linked_by_an_id_that_differ_are_not_written_before_approval(
    tmp_path: Path,
) -> None:
    """Issue 24, finding 6: a Ruddr deal and its Salesforce copy (linked by ``salesforceId``)
    whose amounts differ. The guided first run writes nothing — not the merged value either —
    until approval; `plan` shows that write as waiting for the match, with the policy that
    decides it; after `match --approve` it is written and verify is clean."""
    from sync.engine.plan import plan

    world = make_world(tmp_path, first_run="guided")
    try:
        shared = next(d for d in world.users["ruddr"].all() if d.get("salesforceId"))
        world.users["ruddr"].edit(shared["id"], amount=77777.0)
        world.reset_calls()
        world.cycle()
        world.cycle()
        assert first_run.gate(world.engine).state == "review"
        writes = {s: world.calls(s, writes_only=True) for s in world.emulators}
        assert not any(writes.values()), writes

        planned = [w for w in plan(world.engine).writes if w.op == "update"]
        assert planned, "the differing value is a write approval will make"
        assert all("waits for the first-run match" in w.reason for w in planned)
        assert any("amount" in w.changes for w in planned)
        assert any("latest" in w.reason or "prefer" in w.reason for w in planned), planned
        from sync.engine.plan import waiting_updates

        shown = waiting_updates(world.engine)  # what `crmsync match` lists
        assert {(w.system, w.record_id) for w in shown} == {
            (w.system, w.record_id) for w in planned
        }

        first_run.approve(world.engine, by="test")
        report = world.converge(cycles=3)
        assert report.clean, report
        sf = world.users["truto_salesforce"].get(shared["salesforceId"])
        assert float(sf["amount"]) == 77777.0
    finally:
        world.engine.close()
