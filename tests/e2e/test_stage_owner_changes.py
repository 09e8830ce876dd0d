"""Everyday changes (issue 24, findings 1 and 2), through the vendors' own APIs: a stage moved
with nobody touching probability, and a deal handed to an owner one system does not know."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from sync.cli.app import app
from sync.cli.tables import owed_lines
from sync.engine.verify import verify
from sync.store.models import Journal
from tests.e2e.conftest import ROOT, World, make_world
from tests.e2e.test_scenarios import link_of, record_of

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("restore_logging")]
NEW_OWNER = "demo@parsalink.test"  # a ParsaLink user the other systems lack
#: the systems that store a deal's probability freely (HubSpot's hs_deal_stage_probability is
#: its stage's, which HubSpot alone decides: it is read, never written, see hubspot_follows)
HOLDERS = ("ruddr", "close", "parsalink", "truto_salesforce", "salesforce")
#: the systems lacking NEW_OWNER
OTHERS = ("ruddr", "close", "truto_salesforce", "salesforce", "hubspot")


@pytest.fixture
def world(tmp_path: Path) -> Any:
    built = make_world(tmp_path)
    yield built
    built.engine.close()


def probabilities(world: World, record: str) -> dict[str, float]:
    """Each system's probability of the deal, 0..1, read through its own API."""
    ids = {system: link_of(world, system, record).external_id for system in world.users}
    ruddr = world.users["ruddr"].get(ids["ruddr"])["probability"]
    close = world.users["close"].get(ids["close"])["confidence"]
    parsalink = world.users["parsalink"].get(ids["parsalink"])["probability"]
    salesforce = world.users["truto_salesforce"].get(ids["truto_salesforce"])["remote_data"]
    direct = world.users["salesforce"].get(ids["salesforce"])["Probability"]
    return {
        "ruddr": float(ruddr),
        "close": close / 100,
        "parsalink": parsalink / 100,
        "truto_salesforce": salesforce["Probability"] / 100,
        "salesforce": direct / 100,
    }


def hubspot_follows(world: World, record: str) -> tuple[float, float]:
    """HubSpot's probability of the deal and the one its pipeline stage gives: equal when
    HubSpot holds what its stage decides (it takes no written value)."""
    user = world.users["hubspot"]
    deal = user.get(link_of(world, "hubspot", record).external_id)
    return float(deal["hs_deal_stage_probability"]), user.stage_probability(deal["dealstage"])


def a_deal_at_15_percent(world: World) -> str:
    deal = world.users["ruddr"].create("Stage Mover", amount=20000.0)
    world.users["ruddr"].edit(deal, probability=0.15)
    assert world.converge(cycles=2).clean
    record = record_of(world, "ruddr", deal)
    assert set(probabilities(world, record).values()) == {0.15}
    held, staged = hubspot_follows(world, record)
    assert held == staged != 0.15
    return record


def only_derived_in(world: World, record: str, system: str) -> None:
    """After a cycle: every system holds 0.15 again, verify is clean, and the journal's one
    ``derived`` entry is ``system``'s probability (the stage's default, not an edit)."""
    world.cycle()
    assert probabilities(world, record) == dict.fromkeys(HOLDERS, 0.15)
    assert verify(world.engine).clean
    with world.engine.session() as session:
        derived = session.exec(
            select(Journal).where(Journal.record_id == record, Journal.action == "derived")
        ).all()
    assert [(n.system, n.field) for n in derived] == [(system, "probability")]


@pytest.mark.parametrize("stage", ["Negotiation", "Lost"])
def test_a_stage_moved_in_close_leaves_probability_alone(world: World, stage: str) -> None:
    """A Ruddr deal at 0.15 moved to Negotiation (or Lost) in Close: Salesforce would reset
    its Probability to the stage's default (90, 0) were the stage written alone; crmsync sends
    the probability with it, so after one cycle every system still holds 0.15 and verify is
    clean."""
    record = a_deal_at_15_percent(world)
    close_id = link_of(world, "close", record).external_id
    status = world.users["close"]._lookup("/status/opportunity/", "label")[stage]
    world.users["close"].edit(close_id, status_id=status)
    world.cycle()
    assert probabilities(world, record) == dict.fromkeys(HOLDERS, 0.15)
    held, staged = hubspot_follows(world, record)
    assert held == staged == {"Negotiation": 0.8, "Lost": 0.0}[stage]
    assert verify(world.engine).clean
    with world.engine.session() as session:
        notes = session.exec(
            select(Journal).where(Journal.record_id == record, Journal.action == "pushed")
        ).all()
    for system in ("truto_salesforce", "salesforce"):
        sent = [n.reason for n in notes if n.system == system]
        assert any("probability sent with stage" in reason for reason in sent), (system, sent)


def test_a_hubspot_edit_after_a_stage_moved_elsewhere_spreads_no_probability(
    world: World,
) -> None:
    """After the Close move HubSpot holds its new stage's probability (0.8), which its write
    answer did not show. A later amount edit in HubSpot carries that 0.8 in: it is HubSpot's
    consequence of the stage, not an edit (nor a conflict) — the amount reaches everyone,
    probability stays 0.15 wherever it is stored freely, and verify is clean."""
    record = a_deal_at_15_percent(world)
    close_id = link_of(world, "close", record).external_id
    status = world.users["close"]._lookup("/status/opportunity/", "label")["Negotiation"]
    world.users["close"].edit(close_id, status_id=status)
    world.cycle()
    world.users["hubspot"].edit(link_of(world, "hubspot", record).external_id, amount="25000")
    world.cycle()
    assert probabilities(world, record) == dict.fromkeys(HOLDERS, 0.15)
    assert hubspot_follows(world, record) == (0.8, 0.8)
    assert set(amounts(world, record).values()) == {25000.0}
    assert verify(world.engine).clean
    with world.engine.session() as session:
        notes = session.exec(
            select(Journal).where(Journal.record_id == record, Journal.field == "probability")
        ).all()
    # not a conflict that HubSpot's 0.8 loses only because Ruddr's edit is recent
    assert [(n.system, n.action) for n in notes if n.system == "hubspot"] == [
        ("hubspot", "derived")
    ]


def test_a_stage_moved_in_hubspot_is_not_a_probability_edit(world: World) -> None:
    """The move made in HubSpot: HubSpot computes hs_deal_stage_probability from the new
    stage (0.9 for Contract Sent) and takes no written value. That 0.9 is HubSpot's
    consequence, not an edit: every system that stores probability freely keeps 0.15, HubSpot
    keeps its stage's, the journal says why, and verify is clean after the cycle."""
    record = a_deal_at_15_percent(world)
    deal = link_of(world, "hubspot", record).external_id
    world.users["hubspot"].edit(deal, dealstage="contractsent")
    world.cycle()
    assert probabilities(world, record) == dict.fromkeys(HOLDERS, 0.15)
    assert hubspot_follows(world, record) == (0.9, 0.9)
    assert verify(world.engine).clean
    with world.engine.session() as session:
        derived = session.exec(
            select(Journal).where(Journal.record_id == record, Journal.action == "derived")
        ).all()
    assert [(n.system, n.field) for n in derived] == [("hubspot", "probability")]


def test_a_stage_moved_in_salesforce_is_not_a_probability_edit(world: World) -> None:
    """The same move made in Salesforce (StageName alone, through Truto): Salesforce resets
    Probability to 90 — its consequence, not a user's edit. It is not spread; Salesforce gets
    0.15 back; the journal says why; verify is clean after the cycle."""
    record = a_deal_at_15_percent(world)
    opp = link_of(world, "truto_salesforce", record).external_id
    world.users["truto_salesforce"].edit(opp, stage={"id": "Negotiation/Review"})
    assert world.users["truto_salesforce"].get(opp)["remote_data"]["Probability"] == 90
    only_derived_in(world, record, "truto_salesforce")


def test_a_stage_moved_in_salesforce_directly_is_not_a_probability_edit(world: World) -> None:
    """The same move in the org connected directly (StageName alone on the REST API): its
    Probability resets to the stage's default, 90 — the consequence, journaled `derived`, not
    spread; that org gets 0.15 back and verify is clean. Then a Probability set with the stage
    (40, not the default) is a person's edit and reaches every system."""
    record = a_deal_at_15_percent(world)
    opp = link_of(world, "salesforce", record).external_id
    assert world.users["salesforce"].edit(opp, StageName="Negotiation/Review")["Probability"] == 90
    only_derived_in(world, record, "salesforce")
    world.users["salesforce"].edit(opp, StageName="Proposal/Price Quote", Probability=40)
    world.cycle()
    assert probabilities(world, record) == dict.fromkeys(HOLDERS, 0.4)
    assert verify(world.engine).clean


def test_a_probability_set_with_the_stage_in_salesforce_is_an_edit(world: World) -> None:
    """A Salesforce user moves the stage and sets Probability 40 in the same save: 40 is not
    the stage's default (90, Salesforce's OpportunityStage says), so it is a person's edit and
    reaches every system."""
    record = a_deal_at_15_percent(world)
    opp = link_of(world, "truto_salesforce", record).external_id
    world.users["truto_salesforce"].edit(
        opp, stage={"id": "Negotiation/Review"}, remote_data={"Probability": 40}
    )
    world.cycle()
    assert probabilities(world, record) == dict.fromkeys(HOLDERS, 0.4)
    held, staged = hubspot_follows(world, record)
    assert held == staged == 0.8  # Negotiation there: HubSpot's stage decides
    assert verify(world.engine).clean


def parsalink_user_id(world: World, email: str) -> str:
    return world.users["parsalink"]._lookup("/users/", "email")[email]


def owners(world: World, record: str) -> dict[str, Any]:
    ids = {system: link_of(world, system, record).external_id for system in world.users}
    return {
        "ruddr": world.users["ruddr"].get(ids["ruddr"])["owner"],
        "close": world.users["close"].get(ids["close"])["user_id"],
        "truto_salesforce": world.users["truto_salesforce"].get(ids["truto_salesforce"])["owner"],
        "salesforce": world.users["salesforce"].get(ids["salesforce"])["OwnerId"],
        "hubspot": world.users["hubspot"].get(ids["hubspot"]).get("hubspot_owner_id"),
    }


def amounts(world: World, record: str) -> dict[str, float]:
    ids = {system: link_of(world, system, record).external_id for system in world.users}
    return {
        "ruddr": float(world.users["ruddr"].get(ids["ruddr"])["amount"]),
        "close": world.users["close"].get(ids["close"])["value"] / 100,
        "parsalink": float(world.users["parsalink"].get(ids["parsalink"])["value"]),
        "truto_salesforce": float(
            world.users["truto_salesforce"].get(ids["truto_salesforce"])["amount"]
        ),
        "salesforce": float(world.users["salesforce"].get(ids["salesforce"])["Amount"]),
        "hubspot": float(world.users["hubspot"].get(ids["hubspot"])["amount"]),
    }


def cli(world: World, *args: str, width: int = 80, raw: bool = False) -> str:
    """A ``crmsync`` command on the world's store, as an operator types it (``raw``: its
    stdout as printed, else both streams with whitespace folded)."""
    env = {
        "CRMSYNC_DATABASE_URL": world.engine.db.url.render_as_string(hide_password=False),
        "CRMSYNC_LOG_FORMAT": "json",
        "COLUMNS": str(width),
    }
    result = CliRunner().invoke(app, ["--config", str(ROOT / "config.yaml"), *args], env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    if raw:
        return result.stdout
    return " ".join((result.stdout + result.stderr).split())


def add_close_user(world: World, email: str) -> None:
    """An admin adds the user in Close (the emulator has no public API for it)."""
    users = world.emulators["close"].collections["user"]
    template = dict(next(iter(users.values())))
    template.update(id="user_demo0000000000000000000001", email=email, first_name="Parsa")
    template.update(last_name="Demo")
    users[template["id"]] = template


def test_an_owner_unknown_elsewhere_does_not_freeze_the_deal(world: World) -> None:
    """A ParsaLink deal handed to a user only ParsaLink has, its amount changed in the same
    edit: the amount arrives everywhere in one cycle; each other system keeps its owner; the
    owner is named (value, system, what to do) in the run's report, the journal and verify;
    once the user exists in Close, Close gets the owner by itself."""
    deal = world.users["parsalink"].create("Handed Over", value=5000.0)
    assert world.converge(cycles=2).clean
    record = record_of(world, "parsalink", deal)
    before = owners(world, record)
    world.users["parsalink"].edit(
        deal, assignedTo=parsalink_user_id(world, NEW_OWNER), value=6500.0
    )
    report = world.cycle()
    assert amounts(world, record) == dict.fromkeys(world.users, 6500.0)
    assert owners(world, record) == before  # kept, never blanked
    waiting = {(w.system, w.field, w.key) for w in report.left.waiting}
    assert waiting == {(system, "owner", NEW_OWNER) for system in OTHERS}
    with world.engine.session() as session:
        notes = session.exec(
            select(Journal).where(
                Journal.record_id == record, Journal.action == "reference_unresolved"
            )
        ).all()
    assert sorted(n.system or "" for n in notes) == sorted(OTHERS)
    assert all(NEW_OWNER in n.reason and "fallback" in n.reason for n in notes)
    said = " ".join(owed_lines(report.left))  # what `run --once` prints
    assert f"owner '{NEW_OWNER}' has no counterpart in close" in said
    assert "add a user with that e-mail in close" in said
    status = cli(world, "status", width=200)
    assert f"WAITING owner '{NEW_OWNER}' has no counterpart in ruddr" in status
    document = json.loads(cli(world, "status", "--json", raw=True))
    assert {(w["system"], w["key"]) for w in document["waiting"]} == {
        (system, NEW_OWNER) for system in OTHERS
    }
    story = json.loads(cli(world, "history", record, "--json", raw=True))
    assert any(
        e["action"] == "reference_unresolved" and NEW_OWNER in e["reason"] for e in story["journal"]
    ), story["journal"]
    check = verify(world.engine)
    assert not check.clean and check.agrees(accept_known=True)
    known = [k for k in check.systems["close"].known if k.record_id == record]
    assert known and NEW_OWNER in known[0].reason
    assert not check.systems["close"].drift

    world.cycle()  # nothing new: still waiting, no write, no new journal entry
    add_close_user(world, NEW_OWNER)
    world.time_passes()
    report = world.cycle()
    assert owners(world, record)["close"] == "user_demo0000000000000000000001"
    assert {w.system for w in report.left.waiting} == set(OTHERS) - {"close"}
    assert not [k for k in verify(world.engine).systems["close"].known if k.record_id == record]


def test_a_fallback_owner_takes_the_deal_where_its_owner_is_unknown(tmp_path: Path) -> None:
    """With ``systems.close.fallback: {owner: …}`` the deal goes to that user in Close while
    its own owner is unknown there; the fallback is not read back as an edit (ParsaLink keeps
    its owner)."""
    probe = make_world(tmp_path / "probe")
    systems = probe.config.model_copy(deep=True).systems
    probe.engine.close()
    systems["close"].fallback = {"owner": "maria.lopez@example.com"}
    world = make_world(tmp_path, overrides={"systems": systems})
    deal = world.users["parsalink"].create("Fallback", value=5000.0)
    assert world.converge(cycles=2).clean
    record = record_of(world, "parsalink", deal)
    world.users["parsalink"].edit(deal, assignedTo=parsalink_user_id(world, NEW_OWNER))
    world.converge(cycles=2)
    close_user = world.users["close"].get(link_of(world, "close", record).external_id)["user_id"]
    maria = world.users["close"]._lookup("/user/", "email")["maria.lopez@example.com"]
    assert close_user == maria
    assert world.users["parsalink"].get(deal)["assignedTo"] == parsalink_user_id(world, NEW_OWNER)
    world.engine.close()


def test_a_create_waiting_for_its_company_is_named_not_absent(world: World) -> None:
    """A deal at a company Close lacks (and may not create) waits whole for Close — a deal at
    an invented lead would be worse — and verify names the company and what to do instead of
    counting the deal "absent"."""
    ruddr = world.users["ruddr"]
    ruddr._ok(ruddr.client.post("/companies", json={"name": "Lonely Widgets"}))
    ruddr._cache.clear()
    deal = ruddr.create("Lonely deal", company="Lonely Widgets")
    report = world.cycle()
    record = record_of(world, "ruddr", deal)
    assert any(
        (w.system, w.kind, w.key) == ("close", "company", "Lonely Widgets")
        for w in report.left.waiting
    )
    check = verify(world.engine).systems["close"]
    assert record not in check.absent
    named = [k.reason for k in check.known if k.record_id == record]
    assert named and "auto_create_companies" in named[0]
