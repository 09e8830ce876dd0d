"""HubSpot end to end, through the vendors' own APIs: its edits reach the others and back,
Ruddr's ``hubspotId`` links instead of duplicating, batch creates survive lost answers, and a
207 parks only the deal HubSpot refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from sync.engine.journal import OPEN_STATES
from sync.store.models import DeadLetter, Journal, Link, Outbox
from tests.e2e.conftest import World, make_world
from tests.e2e.test_scenarios import amount_in, count_named, link_of, record_of

pytestmark = pytest.mark.slow


def batch_creates(world: World) -> int:
    return sum(
        1 for r in world.emulators["hubspot"].requests if r["path"].endswith("/batch/create")
    )


def test_an_edit_in_hubspot_reaches_ruddr_and_an_edit_in_ruddr_comes_back(world: World) -> None:
    """A deal made in HubSpot appears in Ruddr; its amount edited in HubSpot reaches Ruddr, its
    name edited in Ruddr reaches HubSpot."""
    world.cycle()
    deal = world.users["hubspot"].create("From HubSpot", amount=1200)
    world.converge(cycles=2)
    record = record_of(world, "hubspot", deal)
    ruddr_id = link_of(world, "ruddr", record).external_id
    world.users["hubspot"].edit(deal, amount="3400")
    world.converge(cycles=2)
    assert amount_in(world, "ruddr", ruddr_id) == 3400
    world.users["ruddr"].edit(ruddr_id, name="Renamed in Ruddr")
    report = world.converge(cycles=2)
    assert world.users["hubspot"].get(deal)["dealname"] == "Renamed in Ruddr"
    assert not report.systems["hubspot"].drift


def test_ruddr_deals_carrying_a_hubspot_id_are_linked_never_duplicated(tmp_path: Path) -> None:
    """A first run where Ruddr and HubSpot already hold the same deals (Ruddr's ``hubspotId``
    names the HubSpot deal): each pair is one record, nothing is created twice."""
    world = make_world(tmp_path, seed=3, first_run="automatic")
    try:
        carried = {d["id"]: d["hubspotId"] for d in world.users["ruddr"].all() if d["hubspotId"]}
        assert carried
        world.converge(cycles=3)
        for ruddr_id, hubspot_id in carried.items():
            record = record_of(world, "ruddr", ruddr_id)
            assert link_of(world, "hubspot", record).external_id == hubspot_id
            name = world.users["ruddr"].get(ruddr_id)["name"]
            assert count_named(world, "hubspot", name) == 1
    finally:
        world.engine.close()


def test_a_lost_answer_to_a_batch_create_leaves_no_duplicate(world: World) -> None:
    """HubSpot commits a batch create and the answer is lost: the retries adopt the deals
    (by crmsync's id), each exists once."""
    world.cycle()
    names = [f"Batch lost {i}" for i in range(5)]
    for name in names:
        world.users["ruddr"].create(name)
    world.faults("hubspot", fail_after_commit_rate=1.0)
    world.cycle()
    world.faults("hubspot")
    world.time_passes()
    report = world.converge(cycles=3)
    for name in names:
        assert count_named(world, "hubspot", name) == 1
    assert not report.systems["hubspot"].duplicates


def _lose_a_batch(world: World, names: list[str]) -> list[str]:
    """Ruddr makes deals (their Ruddr ids); HubSpot commits their batch create and the answer
    is lost, and its search does not show them yet (its index lags): no capture can link them
    first."""
    made = [world.users["ruddr"].create(name) for name in names]
    world.emulators["hubspot"].index_lag = 3600
    world.faults("hubspot", fail_after_commit_rate=1.0)
    world.cycle()
    world.faults("hubspot")
    assert all(count_named(world, "hubspot", name) == 1 for name in names)  # made, unanswered
    world.time_passes()
    world.emulators["hubspot"].requests.clear()
    return made


def _deal_posts(world: World) -> list[str]:
    """The deal requests HubSpot was sent by POST (search excepted: captures search)."""
    return [
        str(r["path"]).removeprefix("/crm/")
        for r in world.emulators["hubspot"].requests
        if r["method"] == "POST" and "deals" in r["path"] and not r["path"].endswith("/search")
    ]


def _hubspot_actions(world: World) -> list[str]:
    with world.engine.session() as session:
        return list(session.exec(select(Journal.action).where(Journal.system == "hubspot")).all())


def _owed(world: World) -> int:
    with world.engine.session() as session:
        rows = session.exec(
            select(Outbox.id).where(Outbox.system == "hubspot", col(Outbox.status).in_(OPEN_STATES))
        ).all()
    return len(rows)


def test_a_retried_batch_create_adopts_the_deals_its_lost_answer_made(world: World) -> None:
    """A batch create whose answer was lost is sent again as is — no look-up first: HubSpot
    keeps crmsync's id unique, so it answers each deal with a conflict, and one ``batch/read``
    by that id adopts every deal the lost answer made: each linked once, journaled as adopted,
    nothing left owed, no duplicate."""
    world.cycle()
    names = [f"Lost batch {i}" for i in range(5)]
    _lose_a_batch(world, names)
    world.cycle()
    posts = _deal_posts(world)  # besides the capture's reads of its companies
    assert posts.count("v3/objects/deals/batch/create") == 1
    assert posts.count("v3/objects/deals/batch/read") == 1
    assert "v3/objects/deals" not in posts  # no create alone
    assert _hubspot_actions(world).count("adopted") == len(names)
    assert _owed(world) == 0
    world.emulators["hubspot"].index_lag = 0
    report = world.converge(cycles=2)
    assert all(count_named(world, "hubspot", name) == 1 for name in names)
    assert not report.systems["hubspot"].duplicates
    for name in names:
        deal = next(d for d in world.users["hubspot"].all() if d["dealname"] == name)
        link_of(world, "hubspot", record_of(world, "hubspot", deal["id"]))


def test_an_edit_made_while_a_create_was_in_doubt_reaches_the_adopted_deal(world: World) -> None:
    """The lost batch made the deal with the first amount; Ruddr's amount is edited before the
    batch goes out again. The deal the resend adopts keeps what the lost create sent as its
    base, so the new amount is pushed to HubSpot — not taken for HubSpot's edit and reverted."""
    world.cycle()
    (ruddr_id,) = _lose_a_batch(world, ["Edited in doubt"])
    world.users["ruddr"].edit(ruddr_id, amount=2500)
    world.converge(cycles=2)
    assert _hubspot_actions(world).count("adopted") == 1
    world.emulators["hubspot"].index_lag = 0
    world.converge(cycles=2)
    deal = next(d for d in world.users["hubspot"].all() if d["dealname"] == "Edited in doubt")
    assert float(deal["amount"]) == 2500
    assert amount_in(world, "ruddr", ruddr_id) == 2500


def test_a_207_adopts_the_conflicts_and_parks_the_bad_input(world: World) -> None:
    """A batch sent again after a lost answer, with a new deal at a company deleted in HubSpot
    meanwhile: HubSpot's 207 names two conflicts on crmsync's id, adopted by one ``batch/read``,
    and one refused input, which alone becomes a dead letter."""
    world.cycle()
    hubspot = world.emulators["hubspot"]
    _lose_a_batch(world, ["Conflict 1", "Conflict 2"])
    companies = hubspot.collections["companies"]
    gone = next(cid for cid, c in companies.items() if c["props"]["name"] == "Initech")
    world.users["ruddr"].create("Parked", company="Initech")
    del companies[gone]  # after crmsync read the company list: its id is still in our refs
    world.cycle()
    assert _deal_posts(world).count("v3/objects/deals/batch/create") == 1
    assert _deal_posts(world).count("v3/objects/deals/batch/read") == 1
    assert _hubspot_actions(world).count("adopted") == 2
    assert count_named(world, "hubspot", "Parked") == 0
    with world.engine.session() as session:
        letters = session.exec(select(DeadLetter).where(DeadLetter.system == "hubspot")).all()
    assert len(letters) == 1 and "No company with id" in letters[0].error
    assert all(count_named(world, "hubspot", f"Conflict {i}") == 1 for i in (1, 2))


def test_a_207_parks_only_the_deal_hubspot_refused(world: World) -> None:
    """One batch create of three deals, one of them at a company deleted in HubSpot meanwhile:
    the two others are created, the third is a dead letter with HubSpot's own message."""
    world.cycle()
    hubspot = world.emulators["hubspot"]
    companies = hubspot.collections["companies"]
    gone = next(cid for cid, c in companies.items() if c["props"]["name"] == "Initech")
    for name, company in (("Kept 1", "Acme Corp"), ("Kept 2", "Globex"), ("Parked", "Initech")):
        world.users["ruddr"].create(name, company=company)
    del companies[gone]  # after crmsync read the company list: its id is still in our refs
    hubspot.requests.clear()
    world.cycle()
    assert batch_creates(world) == 1
    assert count_named(world, "hubspot", "Kept 1") == count_named(world, "hubspot", "Kept 2") == 1
    assert count_named(world, "hubspot", "Parked") == 0
    with world.engine.session() as session:
        letters = session.exec(select(DeadLetter).where(DeadLetter.system == "hubspot")).all()
        parked = session.exec(select(Link).where(Link.system == "hubspot")).all()
    assert len(letters) == 1 and "No company with id" in letters[0].error
    assert all(count_named(world, s, "Parked") == 1 for s in ("close", "parsalink"))
    assert len(parked) >= 2


def test_a_nearly_spent_daily_allowance_pauses_hubspot_and_status_says_so(world: World) -> None:
    """HubSpot's ``X-HubSpot-RateLimit-Daily-Remaining`` says 85 % of the portal's day is
    spent (20 % kept for its other tools): nothing is written to HubSpot and ``status`` names
    why; once the allowance is whole again (a new day) the owed create goes out."""
    from sync.engine.operations import system_health

    world.converge(cycles=1)
    emulator = world.emulators["hubspot"]
    emulator.rate_limit.enabled = True  # the budgets and their headers
    emulator.daily_limit, emulator.daily_used = 1000, (emulator.clock.peek().date(), 850)
    world.users["ruddr"].create("Waits for the day")
    world.cycle()
    world.cycle()
    assert count_named(world, "hubspot", "Waits for the day") == 0
    health = {row["system"]: row for row in system_health(world.engine)}["hubspot"]
    assert health["health"] == "error", health
    assert "of the portal's 1,000 daily API requests are used" in health["last_error"]
    emulator.daily_used = (emulator.clock.peek().date(), 0)
    world.engine.connector("hubspot").options["reserve_probe_seconds"] = 0  # probe at once
    world.time_passes()
    world.converge(cycles=2)
    assert count_named(world, "hubspot", "Waits for the day") == 1
