"""The Truto Capsule and Truto Close examples (examples/truto_capsule.yaml, truto_close.yaml),
each run as shipped against the emulators: Ruddr and one Truto integrated account, changed
through each vendor's own API as a person would (Truto's unified API for the CRM side)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from sync.emulators import reference
from sync.engine import first_run, matching
from sync.store.models import Link
from tests.e2e.conftest import World, make_world
from tests.e2e.users import CLOSE_NAME

pytestmark = pytest.mark.slow
#: example file -> its Truto system
EXAMPLES = {"truto_capsule": "truto_capsule", "truto_close": "truto_close"}


def example_world(tmp_path: Path, example: str, **kw: Any) -> World:
    return make_world(tmp_path, config_file=f"examples/{example}.yaml", **kw)


@pytest.fixture(params=sorted(EXAMPLES))
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    built = example_world(tmp_path, request.param)
    yield built
    built.engine.close()


def truto_system(world: World) -> str:
    [name] = [n for n in world.config.systems if n != "ruddr"]
    return name


def truto_name(deal: dict[str, Any]) -> str | None:
    """A deal's name as the example maps it: Close keeps it in a custom field."""
    if deal["remote_data"].get("lead_id"):  # a Close opportunity: it has no name of its own
        return (deal.get("custom_fields") or {}).get(CLOSE_NAME)
    return deal.get("name")


def named(world: World, system: str, name: str) -> list[dict[str, Any]]:
    deals = world.users[system].all()
    if system == "ruddr":
        return [d for d in deals if d["name"] == name]
    return [d for d in deals if truto_name(d) == name]


def external_of(world: World, system: str, other: str, external_id: str) -> str:
    """The id in ``system`` of the deal ``other`` knows as ``external_id``."""
    with world.engine.session() as session:
        record = session.exec(
            select(Link.record_id).where(Link.system == other, Link.external_id == external_id)
        ).one()
        return session.exec(
            select(Link.external_id).where(Link.system == system, Link.record_id == record)
        ).one()


def stage_id(world: World, system: str, name: str) -> str:
    """A Truto stage's id by name (Capsule milestone, Close status) from ``GET /stages``."""
    return world.users[system]._lookup("/stages", "name")[name]


def ruddr_member(world: World, email: str) -> str:
    return world.users["ruddr"]._lookup("/members", "email")[email]


def truto_edit_body(system: str, world: World) -> dict[str, Any]:
    """An edit a CRM user makes through Truto: the amount and the stage (Capsule: a milestone,
    a unified field; Close: a status, Close's own field passed through remote_data)."""
    if system == "truto_close":
        return {"amount": 5100, "remote_data": {"status_id": stage_id(world, system, "Proposal")}}
    return {"amount": 5100, "stage": {"id": stage_id(world, system, "Proposal")}}


def test_a_deal_made_and_edited_in_the_truto_account_reaches_ruddr(world: World) -> None:
    """Created in the CRM through Truto, it appears once in Ruddr with its name, amount and
    company; an edit of its amount and stage there arrives in Ruddr; verify is clean."""
    system = truto_system(world)
    world.converge(cycles=2)
    deal = world.users[system].create("Made in the CRM", company="Globex", amount=4200)
    report = world.converge(cycles=2)
    assert report.clean, report
    [ruddr] = named(world, "ruddr", "Made in the CRM")
    assert (ruddr["amount"], ruddr["company"]["name"]) == (4200, "Globex")
    world.users[system].edit(deal, **truto_edit_body(system, world))
    report = world.converge(cycles=2)
    ruddr = world.users["ruddr"].get(ruddr["id"])
    assert (ruddr["amount"], ruddr["opportunityStage"]["name"]) == (5100, "Proposal")
    assert len(named(world, system, "Made in the CRM")) == 1
    assert report.clean, report


def test_a_deal_made_and_edited_in_ruddr_reaches_the_truto_account(world: World) -> None:
    """Created in Ruddr, it is created once in the CRM with its name, amount, stage, owner and
    our record id; an edit of name, amount, stage, owner and description in Ruddr arrives,
    the fields Truto does not write for that CRM through its own fields (remote_data)."""
    system = truto_system(world)
    world.converge(cycles=2)
    made = world.users["ruddr"].create("Made in Ruddr", amount=999, stage="Negotiation")
    report = world.converge(cycles=2)
    assert report.clean, report
    [deal] = named(world, system, "Made in Ruddr")
    assert deal["amount"] == 999.0 and deal["owner"]["id"]
    assert external_of(world, system, "ruddr", made) == deal["id"]
    owner = deal["owner"]["id"]
    world.users["ruddr"].edit(
        made,
        name="Edited in Ruddr",
        amount=1500,
        description="Scope agreed",
        ownerId=ruddr_member(world, "maria.lopez@example.com"),
        opportunityStageId=world.users["ruddr"]._lookup("/opportunity-stages", "name")[
            "Closed Won"
        ],
    )
    report = world.converge(cycles=2)
    deal = world.users[system].get(deal["id"])
    assert truto_name(deal) == "Edited in Ruddr"
    assert (deal["amount"], deal["description"], deal["status"]) == (1500.0, "Scope agreed", "won")
    assert deal["owner"]["id"] != owner
    assert report.clean, report


def test_a_ruddr_deal_without_an_owner_gets_the_default_owner(world: World) -> None:
    """Capsule wants an owner and Close requires one: a Ruddr deal without one is created with
    the example's default owner, Ruddr's stays unowned, and verify is clean."""
    system = truto_system(world)
    made = world.users["ruddr"].create("Nobody's deal", owner=None)
    report = world.converge(cycles=3)
    assert report.clean, report
    [deal] = named(world, system, "Nobody's deal")
    client, params = world.users[system].client, world.users[system]._params()
    owner = client.get(f"/users/{deal['owner']['id']}", params=params).json()
    assert [e["email"] for e in owner["emails"]] == ["john.davis@example.com"]
    assert world.users["ruddr"].get(made).get("owner") is None


def test_a_qualification_deal_is_kept_as_its_lossy_capsule_copy(tmp_path: Path) -> None:
    """Capsule has no qualification milestone: a Ruddr deal in Qualification is written as
    New and read back as prospecting, which is not drift and does not flow back to Ruddr."""
    world = example_world(tmp_path, "truto_capsule")
    try:
        made = world.users["ruddr"].create("Qualifying", stage="Qualification")
        report = world.converge(cycles=3)
        assert report.clean, report
        [deal] = named(world, "truto_capsule", "Qualifying")
        assert deal["stage"]["name"] == "New"
        assert world.users["ruddr"].get(made)["opportunityStage"]["name"] == "Qualification"
    finally:
        world.engine.close()


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_guided_first_run_matches_shared_deals_then_syncs(tmp_path: Path, example: str) -> None:
    """Ruddr and the CRM already hold one deal by the same name and company: nothing is
    written until the match is approved (`crmsync match --approve`); then that deal is linked,
    never created twice, Ruddr's other deals reach the CRM, and verify is clean."""
    system = EXAMPLES[example]
    world = example_world(tmp_path, example, first_run="guided")
    try:
        shared = reference.shared_deals(7)[0]
        existing = world.users[system].create(shared.name, company=shared.company)
        world.reset_calls()
        world.cycle()
        writes = [
            f"{r['method']} {r['path']}"
            for name in ("ruddr", system)
            for r in world.emulators[name].requests
            if r["method"] in ("POST", "PATCH", "PUT", "DELETE")
        ]
        assert writes == []
        assert first_run.gate(world.engine).state == "review"
        assert matching.propose(world.engine).counts["matched"] >= 1
        first_run.approve(world.engine, by="test")
        report = world.converge(cycles=3)
        assert report.clean, report
        [deal] = named(world, system, shared.name)
        assert deal["id"] == existing
        for other in reference.shared_deals(7):
            assert len(named(world, system, other.name)) == 1, other.name
            assert len(named(world, "ruddr", other.name)) == 1, other.name
    finally:
        world.engine.close()
