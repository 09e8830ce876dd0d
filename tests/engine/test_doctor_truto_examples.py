"""``crmsync doctor`` on the Truto Capsule and Truto Close examples (examples/truto_*.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import load_config
from sync.emulators.reference import TRUTO_ACCOUNTS
from sync.engine.doctor import doctor
from tests.e2e.conftest import ROOT, make_world

#: example file -> (its Truto system, the integration behind its integrated account)
EXAMPLES = {
    "truto_capsule": ("truto_capsule", "capsule"),
    "truto_close": ("truto_close", "close"),
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_example_loads_as_shipped_against_the_emulators(example: str) -> None:
    """The file loads with no environment set, syncs Ruddr and one Truto system, and that
    system names the emulators' integrated account of its integration."""
    config = load_config(ROOT / f"examples/{example}.yaml", env={})
    system, integration = EXAMPLES[example]
    assert sorted(config.systems) == sorted(["ruddr", system])
    options = config.systems[system].options
    assert options["integrated_account_id"] == TRUTO_ACCOUNTS[integration]
    assert set(config.mapping) == set(config.systems)


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_doctor_finds_nothing_wrong_with_the_example(tmp_path: Path, example: str) -> None:
    """Against the emulators, every check of both systems passes: credentials, reads, write
    rights, every mapped stage (Capsule milestones, Close statuses), owners and companies."""
    world = make_world(tmp_path, config_file=f"examples/{example}.yaml")
    try:
        reports = doctor(world.engine)
        for name, report in reports.items():
            assert not report.problems, (name, report.problems)
        checks = {f.check for f in reports[EXAMPLES[example][0]].findings if f.level == "ok"}
        assert {"credentials", "read", "write", "stages", "owners"} <= checks
    finally:
        world.engine.close()
