"""The first run's gate: when creates wait for a match review, and what lets them go."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from sync.engine import first_run
from sync.store.models import Link
from tests.e2e.conftest import World, make_world


def _two_systems(tmp_path: Path, mode: str, *names: str) -> World:
    probe = make_world(tmp_path / "probe").config
    overrides = {
        "systems": {name: probe.systems[name] for name in names},
        "mapping": {name: probe.mapping[name] for name in names},
    }
    return make_world(tmp_path, overrides=overrides, first_run=mode)


def _links(world: World, system: str) -> int:
    with world.engine.session() as session:
        return len(session.exec(select(Link).where(Link.system == system)).all())


def test_nothing_to_match_when_only_one_system_holds_deals(tmp_path: Path) -> None:
    """Ruddr holds deals, Close none: there is nothing to match, creates go out at once."""
    world = _two_systems(tmp_path, "guided", "ruddr", "close")
    try:
        held = len(world.users["ruddr"].all())
        world.cycle()
        assert first_run.gate(world.engine).state == "open"
        assert len(world.users["close"].all()) == held
    finally:
        world.engine.close()


def test_two_systems_with_deals_wait_until_approved(tmp_path: Path) -> None:
    """Ruddr and Close both hold deals: no create anywhere until approval, then every deal
    reaches the other system."""
    world = _two_systems(tmp_path, "guided", "ruddr", "close")
    try:
        world.users["close"].create("Only in Close")
        assert not first_run.all_read(world.engine)
        world.cycle()
        assert first_run.all_read(world.engine)
        world.cycle()
        gate = first_run.gate(world.engine)
        assert gate.state == "review" and gate.creates_wait
        assert gate.deals == {"ruddr": len(world.users["ruddr"].all()), "close": 1}
        assert _links(world, "ruddr") == len(world.users["ruddr"].all())  # none created
        first_run.approve(world.engine, by="test")
        assert first_run.gate(world.engine).state == "approved"
        assert world.converge(cycles=2).clean
        assert any(d["name"] == "Only in Close" for d in world.users["ruddr"].all())
    finally:
        world.engine.close()


def test_waive_lets_creates_go_without_linking(tmp_path: Path) -> None:
    """`match --waive`: the same-looking deals stay separate deals, creates go out."""
    world = _two_systems(tmp_path, "guided", "ruddr", "close")
    try:
        world.users["ruddr"].create("Same deal")
        world.users["close"].create("Same deal")
        world.cycle()
        first_run.waive(world.engine, by="test")
        world.converge(cycles=2)
        assert sum(d["name"] == "Same deal" for d in world.users["ruddr"].all()) == 2
    finally:
        world.engine.close()


def test_automatic_links_what_matches_without_a_review(tmp_path: Path) -> None:
    """`sync.first_run: automatic`: the proposal is applied unattended at the first drain."""
    world = _two_systems(tmp_path, "automatic", "ruddr", "close")
    try:
        world.users["ruddr"].create("Same deal", company="Acme Corp")
        world.users["close"].create("SAME DEAL", company="Acme Corp")
        report = world.converge(cycles=2)
        assert report.clean
        assert first_run.gate(world.engine).state == "automatic"
        assert sum(d["name"].casefold() == "same deal" for d in world.users["ruddr"].all()) == 1
    finally:
        world.engine.close()


def test_a_first_run_the_config_waives_says_so_rather_than_unread(tmp_path: Path) -> None:
    """With ``sync.first_run: waive`` nothing ever waits for a match: status, ``match`` and the
    console say "waived" by the config, not "unread" for ever, and creates go out at once."""
    world = _two_systems(tmp_path, "waive", "ruddr", "close")
    try:
        gate = first_run.gate(world.engine)
        assert (gate.state, gate.decided_by) == ("waived", first_run.WAIVED_BY_CONFIG)
        assert not gate.creates_wait
        world.cycle()
        assert len(world.users["close"].all()) == len(world.users["ruddr"].all())
    finally:
        world.engine.close()
