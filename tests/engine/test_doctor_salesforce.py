"""``crmsync doctor`` for Salesforce connected directly (examples/salesforce.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.emulators.salesforce import ORG_ID
from sync.engine.doctor import doctor
from tests.e2e.conftest import World, make_world
from tests.e2e.test_salesforce import sf_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = sf_world(tmp_path)
    yield built
    built.engine.close()


def test_the_example_setup_is_fine_and_names_the_org_and_the_allocation(world: World) -> None:
    """External ID field, write rights, org and the daily allocation are all reported ok."""
    report = doctor(world.engine, ["salesforce"])["salesforce"]
    assert not report.problems, report.problems
    oks = {f.check: f.what for f in report.findings if f.level == "ok"}
    assert "Crmsync_Id__c is an External ID field" in oks["custom fields"]
    assert ORG_ID in oks["org"]
    rates = [f.what for f in report.findings if f.check == "rate"]
    assert any("daily API allocation" in what and "pauses at 80,000" in what for what in rates)


def test_a_wrong_org_and_one_org_synced_twice_are_refused(tmp_path: Path) -> None:
    """options.org_id naming another org is a problem; so is a Truto system bound to the
    same org as the direct one (every deal would be seen twice)."""
    probe = make_world(tmp_path / "probe", config_file="examples/salesforce.yaml")
    base = probe.config
    probe.engine.close()
    truto = make_world(tmp_path / "truto").config.systems["truto_salesforce"]
    twin = truto.model_copy(update={"options": {**truto.options, "org_id": ORG_ID}})
    systems = {"ruddr": base.systems["ruddr"], "salesforce": base.systems["salesforce"]}
    overrides = {
        "systems": {**systems, "truto_salesforce": twin},
        "mapping": {
            **{name: base.mapping[name] for name in systems},
            "truto_salesforce": make_world(tmp_path / "m").config.mapping["truto_salesforce"],
        },
        "conflicts": base.conflicts.model_copy(update={"fields": {}, "priority": list(systems)}),
    }
    world = make_world(tmp_path / "w", overrides=overrides, config_file="examples/salesforce.yaml")
    try:
        report = doctor(world.engine, ["salesforce"])["salesforce"]
        [problem] = [f for f in report.problems if f.check == "org"]
        assert "also synced as truto_salesforce" in problem.what
        assert "never both" in problem.fix
    finally:
        world.engine.close()
    wrong = base.systems["salesforce"].model_copy(
        update={"options": {**base.systems["salesforce"].options, "org_id": "00D000000000000AAA"}}
    )
    overrides = {
        "systems": {**systems, "salesforce": wrong},
        "mapping": {name: base.mapping[name] for name in systems},
        "conflicts": base.conflicts.model_copy(update={"fields": {}, "priority": list(systems)}),
    }
    world = make_world(tmp_path / "x", overrides=overrides, config_file="examples/salesforce.yaml")
    try:
        report = doctor(world.engine, ["salesforce"])["salesforce"]
        [problem] = [f for f in report.problems if f.check == "org"]
        assert "options.org_id names 00D000000000000AAA" in problem.what
    finally:
        world.engine.close()
