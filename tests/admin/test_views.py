"""The deal page's highlights (``views.deal``): a copy is flagged where the engine still owes it
a value, not wherever its shadow's dict differs from ours."""

from __future__ import annotations

from pathlib import Path

from sync.admin import views
from sync.engine.cycle import poll
from tests.e2e.conftest import make_world
from tests.e2e.test_scenarios import link_of, record_of


def test_a_converged_deal_has_nothing_highlighted_and_an_edit_flags_only_what_is_owed(
    tmp_path: Path,
) -> None:
    """Once every system holds the deal, no copy is flagged — not the external ids a system
    does not keep, nor HubSpot's stage probability that only HubSpot decides. An amount edited
    in Ruddr and read there, not yet pushed, is flagged on every other copy, and only there."""
    world = make_world(tmp_path, seed_opportunities=0)
    try:
        deal = world.users["ruddr"].create("Highlighted deal", amount=55.0)
        world.converge(cycles=3)
        record = record_of(world, "ruddr", deal)
        page = views.deal(world.engine, record)
        assert {c["system"]: c["differs"] for c in page["copies"]} == {
            system: [] for system in world.config.systems
        }

        world.users["ruddr"].edit(deal, amount=99.0)
        poll(world.engine, "ruddr")  # read in Ruddr; no other system pushed to yet
        page = views.deal(world.engine, link_of(world, "ruddr", record).external_id)
        flagged = {c["system"]: c["differs"] for c in page["copies"]}
        assert flagged.pop("ruddr") == []
        assert flagged == {system: ["amount"] for system in flagged}
    finally:
        world.engine.close()
