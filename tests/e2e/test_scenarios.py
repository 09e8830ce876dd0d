"""End-to-end scenarios: the emulators, the shipped config.yaml, `run --once` cycles."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from sync.store.models import Conflict, DeadLetter, Journal, Link
from tests.e2e.conftest import World
from tests.e2e.users import CLOSE_NAME

pytestmark = pytest.mark.slow
SYSTEMS = ["ruddr", "close", "parsalink", "truto_salesforce", "salesforce", "hubspot"]


def name_of(system: str, deal: dict[str, Any]) -> Any:
    return deal.get(f"custom.{CLOSE_NAME}") if system == "close" else deal.get("name")


def count_named(world: World, system: str, name: str) -> int:
    return sum(1 for deal in world.users[system].all() if name_of(system, deal) == name)


def link_of(world: World, system: str, record_id: str) -> Link:
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.record_id == record_id, Link.system == system)
        ).one()
    return link


def record_of(world: World, system: str, external_id: str) -> str:
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.system == system, Link.external_id == external_id)
        ).one()
    return link.record_id


def amount_in(world: World, system: str, external_id: str) -> float:
    deal = world.users[system].get(external_id)
    if system == "close":
        return deal["value"] / 100
    return float(deal["value"] if system == "parsalink" else deal["amount"])


@pytest.mark.parametrize("origin", SYSTEMS)
def test_a_deal_created_anywhere_appears_everywhere_exactly_once(world: World, origin: str) -> None:
    """A deal created in one system is created once in each other system, and verify is clean."""
    world.users[origin].create(f"Fresh deal from {origin}")
    report = world.converge(cycles=2)
    for system in SYSTEMS:
        assert count_named(world, system, f"Fresh deal from {origin}") == 1, system
    assert report.clean, report


def test_an_edit_anywhere_reaches_everywhere(world: World) -> None:
    """An amount edited in Close reaches Ruddr, ParsaLink and Salesforce (in major units)."""
    deal = world.users["ruddr"].create("Edit me", amount=1000)
    world.converge(cycles=2)
    record = record_of(world, "ruddr", deal)
    close_id = link_of(world, "close", record).external_id
    world.users["close"].edit(close_id, value=250000)
    world.converge(cycles=2)
    for system in SYSTEMS:
        external = link_of(world, system, record).external_id
        assert amount_in(world, system, external) == 2500.0, system


def test_our_own_writes_never_come_back(world: World) -> None:
    """After convergence, a further cycle makes no write at all (echo suppression)."""
    world.users["ruddr"].create("Echo check")
    world.converge(cycles=2)
    world.reset_calls()
    world.cycle()
    writes = {s: world.calls(s, writes_only=True) for s in SYSTEMS}
    assert writes == dict.fromkeys(SYSTEMS, 0)


def test_concurrent_edits_of_different_fields_both_survive(world: World) -> None:
    """Ruddr changes the name while ParsaLink changes the amount: both edits win everywhere."""
    deal = world.users["ruddr"].create("Two edits", amount=1000)
    world.converge(cycles=2)
    record = record_of(world, "ruddr", deal)
    parsa = link_of(world, "parsalink", record).external_id
    world.users["ruddr"].edit(deal, name="Two edits (renamed)")
    world.users["parsalink"].edit(parsa, value=7777)
    world.converge(cycles=2)
    for system in SYSTEMS:
        external = link_of(world, system, record).external_id
        assert name_of(system, world.users[system].get(external)) == "Two edits (renamed)"
        assert amount_in(world, system, external) == 7777.0, system


def test_concurrent_edits_of_one_field_follow_latest_and_are_journaled(world: World) -> None:
    """Both Close and ParsaLink rename a deal; the later edit wins and the conflict is journaled."""
    deal = world.users["ruddr"].create("Contested")
    world.converge(cycles=2)
    record = record_of(world, "ruddr", deal)
    close_id = link_of(world, "close", record).external_id
    parsa = link_of(world, "parsalink", record).external_id
    world.users["close"].edit(close_id, **{f"custom.{CLOSE_NAME}": "Close's name"})
    world.emulators["parsalink"].clock.advance(60)  # ParsaLink's edit is a minute later
    world.users["parsalink"].edit(parsa, name="ParsaLink's name")
    world.converge(cycles=2)
    for system in SYSTEMS:
        external = link_of(world, system, record).external_id
        assert name_of(system, world.users[system].get(external)) == "ParsaLink's name"
    with world.engine.session() as session:
        conflicts = session.exec(select(Conflict).where(Conflict.record_id == record)).all()
    assert [(c.field, c.policy, c.winner) for c in conflicts] == [("name", "latest", "parsalink")]


def test_a_deleted_deal_follows_propagate_and_is_not_resurrected(tmp_path: Any) -> None:
    """With `deletes: propagate` on Close, a deal deleted there is deleted everywhere, for good."""
    from tests.e2e.conftest import make_world

    world = make_world(tmp_path)
    world.config.systems["close"].deletes = "propagate"
    deal = world.users["ruddr"].create("Doomed")
    world.converge(cycles=2)
    record = record_of(world, "ruddr", deal)
    world.users["close"].delete(link_of(world, "close", record).external_id)
    world.converge(cycles=2)
    for system in SYSTEMS:
        assert count_named(world, system, "Doomed") == 0, system
    world.converge(cycles=1)
    assert count_named(world, "ruddr", "Doomed") == 0


def test_unlink_keeps_the_deal_elsewhere_and_does_not_recreate(world: World) -> None:
    """With the default `unlink`, a deal deleted in ParsaLink stays elsewhere and is not re-made."""
    deal = world.users["ruddr"].create("Unlinked")
    world.converge(cycles=2)
    record = record_of(world, "ruddr", deal)
    world.users["parsalink"].delete(link_of(world, "parsalink", record).external_id)
    report = world.converge(cycles=2)
    assert count_named(world, "parsalink", "Unlinked") == 0
    assert count_named(world, "ruddr", "Unlinked") == 1
    assert report.clean


def test_ruddr_salesforce_id_matches_the_truto_deal(world: World) -> None:
    """Seeded Ruddr deals carrying a salesforceId link to that Salesforce deal, never duplicate."""
    world.converge(cycles=2)
    shared = [d for d in world.users["ruddr"].all() if d.get("salesforceId")]
    assert shared
    for deal in shared:
        record = record_of(world, "ruddr", deal["id"])
        assert link_of(world, "truto_salesforce", record).external_id == deal["salesforceId"]
        assert count_named(world, "truto_salesforce", deal["name"]) == 1


def test_fail_after_commit_on_creates_leaves_no_duplicate(world: World) -> None:
    """Creates whose answer is lost (applied, then 5xx or a dropped connection) are adopted."""
    for i in range(4):
        world.users["ruddr"].create(f"Flaky create {i}")
    world.cycle()  # read everything first so creates are allowed
    for system in ("close", "parsalink", "truto_salesforce"):
        world.faults(system, fail_after_commit_rate=0.6)
    for _ in range(4):
        world.cycle()
    for system in ("close", "parsalink", "truto_salesforce"):
        world.faults(system)
    report = world.converge(cycles=2)
    for i in range(4):
        for system in SYSTEMS:
            assert count_named(world, system, f"Flaky create {i}") == 1, (system, i)
    assert report.clean


def test_a_vendor_rejection_lands_in_dead_letters_and_the_cycle_goes_on(world: World) -> None:
    """A name Ruddr and ParsaLink refuse (over 255 characters), and Salesforce directly and
    behind Truto (over 120), is dead-lettered with each vendor's own message and reported by
    verify as absent there; other deals sync normally."""
    long_name = "L" * 300
    world.users["close"].create(long_name)
    world.users["truto_salesforce"].create("Ordinary deal")
    report = world.converge(cycles=2)
    assert count_named(world, "ruddr", long_name) == 0
    for system in SYSTEMS:
        assert count_named(world, system, "Ordinary deal") == 1
    with world.engine.session() as session:
        letters = {d.system: d.error for d in session.exec(select(DeadLetter)).all()}
        journal = session.exec(select(Journal).where(Journal.action == "dead_letter")).all()
    assert set(letters) == {"ruddr", "parsalink", "truto_salesforce", "salesforce"}
    assert "at most 255 characters" in letters["ruddr"]
    assert "STRING_TOO_LONG" in letters["salesforce"]
    assert "no more than 255 characters" in letters["parsalink"]
    assert "data value too large" in letters["truto_salesforce"]
    assert len(journal) >= 2  # a later change of the deal retries the create (and journals it)
    assert len(report.systems["ruddr"].absent) == 1 and not report.systems["close"].absent


def test_a_default_a_target_invents_on_create_stays_there(world: World) -> None:
    """A Ruddr deal without an owner gets Close's default owner (the API key's user) when
    created there; that default is neither written back to Ruddr nor blanked in Close — but a
    real owner change made later in Close does reach Ruddr."""
    deal = world.users["ruddr"].create("Ownerless deal", owner=None)
    report = world.converge(cycles=2)
    assert report.clean, report
    record_id = record_of(world, "ruddr", deal)
    close_id = link_of(world, "close", record_id).external_id
    assert world.users["close"].get(close_id)["user_id"]  # Close filled in its default
    assert world.users["ruddr"].get(deal).get("owner") is None
    world.reset_calls()
    world.cycle()
    assert sum(world.calls(s, writes_only=True) for s in SYSTEMS) == 0

    maria = world.users["close"]._lookup("/user/", "email")["maria.lopez@example.com"]
    world.users["close"].edit(close_id, user_id=maria)
    assert world.converge(cycles=2).clean
    assert (world.users["ruddr"].get(deal).get("owner") or {}).get("name") == "Maria Lopez"
