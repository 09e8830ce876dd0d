"""Which Salesforce org each system is bound to (sync/engine/orgs.py), on the shipped config."""

from __future__ import annotations

from pathlib import Path

from sync.emulators import reference
from sync.emulators.salesforce import ORG_ID
from sync.engine import orgs
from tests.e2e.conftest import make_world


def test_the_shipped_orgs_are_two_until_truto_names_the_direct_one(tmp_path: Path) -> None:
    """The shipped config's direct system is in the org its credentials reach, the Truto one in
    no known org (Truto does not say), others in none: nothing is shared. Once the Truto system
    names that same org in options.org_id the pair is shared, and the refusal names both
    systems and the org."""
    world = make_world(tmp_path / "a")
    try:
        assert orgs.org_of(world.engine, "salesforce") == ORG_ID != reference.TRUTO_SALESFORCE_ORG
        assert orgs.org_of(world.engine, "truto_salesforce") is None
        assert orgs.org_of(world.engine, "close") is None
        assert orgs.shared_orgs(world.engine) == {}
    finally:
        world.engine.close()
    truto = world.config.systems["truto_salesforce"]
    twin = truto.model_copy(update={"options": {**truto.options, "org_id": ORG_ID}})
    overrides = {"systems": {**world.config.systems, "truto_salesforce": twin}}
    world = make_world(tmp_path / "b", overrides=overrides)
    try:
        shared = orgs.shared_orgs(world.engine)
        assert shared == {ORG_ID: ["truto_salesforce", "salesforce"]}
        said = orgs.refusal(shared)
        assert f"truto_salesforce and salesforce are bound to one Salesforce org, {ORG_ID}" in said
    finally:
        world.engine.close()
