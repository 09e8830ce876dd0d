"""``crmsync doctor`` against the emulators: each problem named, with its fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sync.engine.doctor import Finding, SystemDoctor, doctor
from tests.e2e.conftest import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = make_world(tmp_path)
    yield built
    built.engine.close()


def _control(world: World, system: str, path: str, body: dict[str, object]) -> None:
    client = httpx.Client(transport=world.emulators[system].transport(), base_url="http://emu")
    assert client.post(path, json=body).status_code == 200


def _findings(report: SystemDoctor, check: str, level: str = "problem") -> list[Finding]:
    return [f for f in report.findings if f.check == check and f.level == level]


def test_the_shipped_setup_has_no_problem(world: World) -> None:
    """Against the emulators, with the shipped config: every credential, custom field and
    mapped stage is fine; what is only worth knowing (another pipeline) is a warning."""
    reports = doctor(world.engine)
    assert set(reports) == set(world.engine.systems)
    for report in reports.values():
        assert not report.problems, report.problems
        assert _findings(report, "credentials", "ok")
        assert _findings(report, "rate", "ok")
    close_stages = _findings(reports["close"], "stages", "warn")
    assert close_stages and all("another pipeline" in f.what for f in close_stages)


def test_a_wrong_key_is_named_with_where_to_get_a_right_one(tmp_path: Path) -> None:
    """A key the vendor refuses: a credentials problem naming the variable and where keys
    come from; the other systems are still checked."""
    probe = make_world(tmp_path / "probe").config
    systems = dict(probe.systems)
    systems["ruddr"] = systems["ruddr"].model_copy(update={"credentials": {"token": "wrong"}})
    world = make_world(tmp_path, overrides={"systems": systems})
    try:
        reports = doctor(world.engine)
    finally:
        world.engine.close()
    (problem,) = _findings(reports["ruddr"], "credentials")
    assert "refused" in problem.what and "401" in problem.what
    assert "RUDDR_TOKEN" in problem.fix and "API Keys" in problem.fix
    assert not reports["close"].problems


def test_a_missing_close_custom_field_is_named_with_how_to_create_it(world: World) -> None:
    """A Close workspace without the field the mapping keeps crmsync's id in: the field, the
    mapping key that uses it, and how to create it in Close."""
    fields = world.emulators["close"].collections["custom_field"]
    crmsync_id = next(cf for cf, f in fields.items() if "Crmsync" in cf or "crmsync" in str(f))
    del fields[crmsync_id]
    report = doctor(world.engine, ["close"])["close"]
    (problem,) = _findings(report, "custom fields")
    assert f"custom.{crmsync_id}" in problem.what and "mapping.close.record_id" in problem.what
    assert "Settings → Custom Fields → Opportunity" in problem.fix
    assert "crmsync's record id" in problem.fix


def test_an_unmapped_stage_is_named_with_the_values_entry_to_add(world: World) -> None:
    """A Ruddr stage renamed to one the mapping does not know: a problem naming the stage and
    the line to add under the stage's values."""
    stages = world.emulators["ruddr"].collections["opportunity-stages"]
    stage_id = next(s for s, row in stages.items() if row["name"] == "Qualification")
    _control(
        world,
        "ruddr",
        "/_emulator/set",
        {"collection": "opportunity-stages", "id": stage_id, "fields": {"name": "Discovery"}},
    )
    report = doctor(world.engine, ["ruddr"])["ruddr"]
    (problem,) = _findings(report, "stages")
    assert "'Discovery'" in problem.what
    assert "Discovery: <canonical stage>" in problem.fix and "mapping.ruddr" in problem.fix


def test_an_owner_no_other_system_knows_is_named(world: World) -> None:
    """A Ruddr member whose e-mail no other system has: named, with the systems that lack it."""
    members = world.emulators["ruddr"].collections["members"]
    member_id = next(iter(members))
    _control(
        world,
        "ruddr",
        "/_emulator/set",
        {"collection": "members", "id": member_id, "fields": {"email": "new.hire@example.com"}},
    )
    report = doctor(world.engine, ["ruddr"])["ruddr"]
    (warning,) = _findings(report, "owners", "warn")
    assert "new.hire@example.com" in warning.what and "close" in warning.what
    assert "invite new.hire@example.com" in warning.fix


def test_a_wrong_truto_integrated_account_is_named_with_where_to_find_it(tmp_path: Path) -> None:
    """An integrated account id Truto does not know: a problem pointing at the option."""
    probe = make_world(tmp_path / "probe").config
    systems = dict(probe.systems)
    truto = systems["truto_salesforce"]
    systems["truto_salesforce"] = truto.model_copy(
        update={"options": {**truto.options, "integrated_account_id": "no-such-account"}}
    )
    world = make_world(tmp_path, overrides={"systems": systems})
    try:
        report = doctor(world.engine, ["truto_salesforce"])["truto_salesforce"]
    finally:
        world.engine.close()
    assert report.problems
    assert any("integrated_account_id" in f.fix for f in report.problems), report.problems
