"""Money is never silently wrong: currencies across systems that hold them differently, and a
close date that keeps its calendar day in every system (the emulators, the shipped config)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from sync.cli import base as cli_base
from sync.cli.app import app
from sync.config import Config, load_config
from sync.engine.operations import replay_dead_letter
from sync.engine.plan import plan
from sync.money_config import CurrencyConfig, RatesConfig
from sync.store.models import DeadLetter, Journal, Link, Record
from tests.e2e.conftest import ROOT, World, make_world
from tests.e2e.test_scenarios import SYSTEMS, count_named, link_of, record_of

pytestmark = pytest.mark.slow
RATES = RatesConfig(as_of=dt.date(2026, 11, 27), rates={"EUR/USD": Decimal("1.085")})


def converting_config() -> Config:
    """The shipped config, with Close, ParsaLink, HubSpot and the USD-only Salesforce org (the
    one connected directly) converting EUR deals at 1.085."""
    shipped: Config = load_config(ROOT / "config.yaml", env={})
    convert = CurrencyConfig(mode="fixed", code="USD", foreign="convert")
    systems = {
        name: cfg.model_copy(update={"currency": convert})
        if name in ("close", "parsalink", "hubspot", "salesforce")
        else cfg
        for name, cfg in shipped.systems.items()
    }
    # the scenario worlds start with deals everywhere and waive the first-run review
    sync = shipped.sync.model_copy(update={"first_run": "waive"})
    return shipped.model_copy(update={"systems": systems, "currency_rates": RATES, "sync": sync})


def converting(tmp_path: Path) -> World:
    """The shipped world under :func:`converting_config`."""
    config = converting_config()
    overrides = {"systems": config.systems, "currency_rates": config.currency_rates}
    return make_world(tmp_path, overrides=overrides)


def euro_deal(world: World, name: str, amount: float = 50000) -> tuple[str, str]:
    """A Ruddr deal in EUR; returns (Ruddr id, record id) once every system was read."""
    ruddr_id = world.users["ruddr"].create(name, amount=amount)
    world.users["ruddr"].edit(ruddr_id, currency="EUR")
    world.converge(cycles=2)
    return ruddr_id, record_of(world, "ruddr", ruddr_id)


def journal(world: World, record_id: str, system: str | None = None) -> list[Journal]:
    with world.engine.session() as session:
        query = select(Journal).where(Journal.record_id == record_id)
        rows = session.exec(query.order_by(Journal.id)).all()  # type: ignore[arg-type]
    return [row for row in rows if system is None or row.system == system]


def writes(world: World) -> dict[str, int]:
    return {s: world.calls(s, writes_only=True) for s in SYSTEMS}


def test_a_euro_deal_parks_in_usd_only_close_with_a_clear_dead_letter(world: World) -> None:
    """Default rule (park): a EUR deal is never written to Close, ParsaLink, a USD-only
    HubSpot portal or the USD-only Salesforce org connected directly as the same figure in USD;
    ``plan`` says so beforehand, and each push is a dead letter naming the deal, its currency
    and the target's. Salesforce through Truto (multi-currency) and Ruddr hold it in EUR;
    verify reports it absent where it was parked."""
    ruddr_id = world.users["ruddr"].create("Euro deal", amount=50000)
    world.users["ruddr"].edit(ruddr_id, currency="EUR")
    report = plan(world.engine)
    planned = {(w.system, w.op): w.reason for w in report.writes if w.name == "Euro deal"}
    parked = {i.system: i.why for i in report.not_planned if i.name == "Euro deal"}
    assert "foreign is park" in parked["close"]  # listed as what the plan cannot write
    assert ("truto_salesforce", "create") in planned
    world.converge(cycles=2)
    record_id = record_of(world, "ruddr", ruddr_id)
    assert count_named(world, "close", "Euro deal") == 0
    assert count_named(world, "parsalink", "Euro deal") == 0
    assert count_named(world, "hubspot", "Euro deal") == 0
    assert count_named(world, "salesforce", "Euro deal") == 0
    with world.engine.session() as session:
        letters = {d.system: d.error for d in session.exec(select(DeadLetter)).all()}
    assert set(letters) == {"close", "parsalink", "hubspot", "salesforce"}
    for system in ("close", "parsalink", "hubspot", "salesforce"):
        assert "'Euro deal'" in letters[system] and "50000.00 EUR" in letters[system]
        assert f"{system} holds only USD" in letters[system]
        assert "foreign is park" in letters[system]
    sf = world.users["truto_salesforce"].get(
        link_of(world, "truto_salesforce", record_id).external_id
    )
    assert (sf["amount"], sf["currency"]) == (50000, "EUR")
    report = world.converge(cycles=1)
    assert report.systems["close"].absent == [record_id]
    assert not report.systems["truto_salesforce"].drift


def test_under_convert_a_euro_deal_arrives_converted_with_the_rate_journaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``foreign: convert``: Close gets 54,250.00 USD (value 5425000 cents) and ParsaLink
    54250, the push's journal entry names the rate and its date, verify is clean and a quiet
    cycle writes nothing."""
    world = converting(tmp_path)
    try:
        _, record_id = euro_deal(world, "Converted deal")
        close = world.users["close"].get(link_of(world, "close", record_id).external_id)
        assert (close["value"], close["value_currency"]) == (5425000, "USD")
        parsa = world.users["parsalink"].get(link_of(world, "parsalink", record_id).external_id)
        assert Decimal(str(parsa["value"])) == Decimal("54250")
        reasons = " | ".join(row.reason for row in journal(world, record_id, "close"))
        assert "50000.00 EUR converted to 54250.00 USD at EUR/USD 1.085" in reasons
        assert "currency_rates of 2026-11-27" in reasons
        monkeypatch.setattr(cli_base.out, "width", 400)  # one line per journal entry
        shown = CliRunner().invoke(
            app,
            ["--config", str(ROOT / "config.yaml"), "history", record_id, "--json"],
            env={"CRMSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'crmsync.db'}"},
        )
        assert shown.exit_code == 0, shown.output
        # --json: the rate is in the journal whatever width a table would be given
        assert "at EUR/USD 1.085 (currency_rates of 2026-11-27)" in shown.stdout
        assert world.converge(cycles=1).clean
        world.reset_calls()
        world.cycle()
        assert writes(world) == dict.fromkeys(SYSTEMS, 0)
    finally:
        world.engine.close()


def test_an_edit_of_the_converted_value_in_close_comes_back_converted(tmp_path: Path) -> None:
    """A Close edit to $60,000.01 reaches Ruddr as 55,299.55 EUR (÷ 1.085), not as 60,000.01
    euros; Close keeps the cent its user typed (55,299.55 × 1.085 = 60,000.01), ParsaLink gets
    the same USD figure, and the following quiet cycle writes nothing: no rounding ping-pong."""
    world = converting(tmp_path)
    try:
        ruddr_id, record_id = euro_deal(world, "Edited in Close")
        close_id = link_of(world, "close", record_id).external_id
        world.users["close"].edit(close_id, value=6000001)
        report = world.converge(cycles=2)
        assert report.clean, report
        ruddr = world.users["ruddr"].get(ruddr_id)
        assert (ruddr["amount"], ruddr["currency"]) == (55299.55, "EUR")
        assert world.users["close"].get(close_id)["value"] == 6000001
        parsa = world.users["parsalink"].get(link_of(world, "parsalink", record_id).external_id)
        assert Decimal(str(parsa["value"])) == Decimal("60000.01")
        changed = [r for r in journal(world, record_id, "close") if r.action == "field_changed"]
        assert any("60000.01 USD converted to 55299.55 EUR" in r.reason for r in changed)
        world.reset_calls()
        world.cycle()
        assert writes(world) == dict.fromkeys(SYSTEMS, 0)
    finally:
        world.engine.close()


def test_a_rounding_edge_never_ping_pongs(tmp_path: Path) -> None:
    """Amounts whose conversion does not round-trip to the cent (x × 1.085 ÷ 1.085 ≠ x after
    rounding) stay put in every system: a converted copy is in sync with the rate that made it."""
    world = converting(tmp_path)
    try:
        ruddr_id, record_id = euro_deal(world, "Odd cents", amount=0.07)
        close_id = link_of(world, "close", record_id).external_id
        for cents in (9, 11, 13, 101):  # 0.09 USD ÷ 1.085 = 0.0829… → 0.08 EUR → 0.09 USD
            world.users["close"].edit(close_id, value=cents)
            assert world.converge(cycles=2).clean
            assert world.users["close"].get(close_id)["value"] == cents
            world.reset_calls()
            world.cycle()
            assert writes(world) == dict.fromkeys(SYSTEMS, 0), cents
        assert world.users["ruddr"].get(ruddr_id)["currency"] == "EUR"
    finally:
        world.engine.close()


def test_a_multi_currency_salesforce_target_receives_the_currency(world: World) -> None:
    """Salesforce (through Truto, a multi-currency org) gets the deal's currency itself, and a
    currency chosen in Salesforce reaches Ruddr (which holds a currency per deal)."""
    _, record_id = euro_deal(world, "Multi-currency deal")
    sf_id = link_of(world, "truto_salesforce", record_id).external_id
    sf = world.users["truto_salesforce"]
    raw = sf._ok(
        sf.client.get(f"/opportunities/{sf_id}", params=sf._params(truto_response_format="raw"))
    )
    assert raw["CurrencyIsoCode"] == "EUR" and raw["Amount"] == 50000
    gbp = sf.create("Pound deal", amount=1200)
    sf.edit(gbp, currency="GBP")
    world.converge(cycles=2)
    ruddr_id = link_of(world, "ruddr", record_of(world, "truto_salesforce", gbp)).external_id
    deal = world.users["ruddr"].get(ruddr_id)
    assert (deal["amount"], deal["currency"]) == (1200, "GBP")


def test_verify_reports_a_currency_mismatch_as_drift(world: World) -> None:
    """A EUR deal sitting as a USD figure (what a sync that ignored currencies left behind)
    is drift: verify names the two (amount, currency) pairs for Close and ParsaLink, and the
    currency field for Salesforce."""
    ruddr_id = world.users["ruddr"].create("Mislabelled deal", amount=50000)
    assert world.converge(cycles=2).clean
    record_id = record_of(world, "ruddr", ruddr_id)
    with world.engine.session() as session:
        record = session.get(Record, record_id)
        assert record is not None
        record.fields = {**record.fields, "currency": "EUR"}
        session.add(record)
        session.commit()
    report = world.converge(cycles=0)
    for system in ("close", "parsalink"):
        drift = {d.field: (d.ours, d.theirs) for d in report.systems[system].drift}
        assert drift == {"currency": ("50000.00 EUR", "50000.00 USD")}, system
    sf_drift = {d.field: (d.ours, d.theirs) for d in report.systems["truto_salesforce"].drift}
    assert sf_drift == {"currency": ("EUR", "USD")}
    assert not report.clean


ORIGIN_DATES: dict[str, tuple[str, Any]] = {
    "ruddr": ("closeDate", "2026-12-31"),
    "close": ("date_won", "2026-12-31T00:00:00-08:00"),  # a local midnight, west of UTC
    "parsalink": ("closeDate", "2026-12-31"),
    "truto_salesforce": ("close_date", "2026-12-30T19:00:00-05:00"),  # midnight UTC in New York
    "salesforce": ("CloseDate", "2026-12-31"),  # a date
    "hubspot": ("closedate", "1798675200000"),  # epoch milliseconds, midnight UTC
}


def close_date_in(world: World, system: str, external_id: str) -> str:
    deal = world.users[system].get(external_id)
    value = {
        "ruddr": deal.get("closeDate"),
        "close": deal.get("date_won"),
        "parsalink": deal.get("closeDate"),
        "truto_salesforce": deal.get("close_date"),
        "salesforce": deal.get("CloseDate"),
        "hubspot": deal.get("closedate"),
    }[system]
    return str(value)[:10]


@pytest.mark.parametrize("origin", SYSTEMS)
def test_a_close_date_is_the_same_calendar_day_in_every_system(world: World, origin: str) -> None:
    """A close date entered in one system — as a date, a local midnight or midnight UTC shown
    in another zone — is 2026-12-31 in every other system, and stays so."""
    deal = world.users[origin].create(f"Year-end deal from {origin}")
    field, value = ORIGIN_DATES[origin]
    world.users[origin].edit(deal, **{field: value})
    assert world.converge(cycles=2).clean
    record_id = record_of(world, origin, deal)
    for system in SYSTEMS:
        if system == origin:
            continue
        external = link_of(world, system, record_id).external_id
        assert close_date_in(world, system, external) == "2026-12-31", system
    with world.engine.session() as session:
        record = session.get(Record, record_id)
        assert record is not None and record.fields["close_date"] == "2026-12-31"
        assert session.exec(select(Link).where(Link.record_id == record_id)).all()


def test_close_holds_its_organizations_currency_read_from_the_api(world: World) -> None:
    """With no ``code`` configured, Close's currency is its organization's (``GET
    /organization/{id}/``): in a EUR organization a EUR deal is written as it is, and a USD
    deal is the one parked."""
    world.emulators["close"].currency = "EUR"  # type: ignore[attr-defined]
    _, euro_record = euro_deal(world, "Euro into a euro org")
    dollar = world.users["ruddr"].create("Dollar into a euro org", amount=700)
    world.converge(cycles=2)
    close = world.users["close"].get(link_of(world, "close", euro_record).external_id)
    assert (close["value"], close["value_currency"]) == (5000000, "EUR")
    assert count_named(world, "close", "Dollar into a euro org") == 0
    with world.engine.session() as session:
        letters = [d.error for d in session.exec(select(DeadLetter)).all() if d.system == "close"]
    ours = [e for e in letters if "'Dollar into a euro org'" in e]
    assert len(ours) == 1 and "close holds only EUR" in ours[0] and "700.00 USD" in ours[0]
    assert record_of(world, "ruddr", dollar)


def test_a_parked_deal_is_replayed_converted_once_the_rule_allows_it(world: World) -> None:
    """Parked, then the owner switches Close to ``convert``: replaying the dead letter creates
    the deal converted, and verify is clean there."""
    _, record_id = euro_deal(world, "Parked, then converted")
    with world.engine.session() as session:
        letter = next(d for d in session.exec(select(DeadLetter)).all() if d.system == "close")
    assert letter.id is not None
    world.engine.config = converting_config()
    replay_dead_letter(world.engine, letter.id)
    report = world.converge(cycles=2)
    close = world.users["close"].get(link_of(world, "close", record_id).external_id)
    assert close["value"] == 5425000
    assert not report.systems["close"].drift and not report.systems["close"].absent


@pytest.mark.parametrize("additional", [[], ["EUR", "GBP"]], ids=["one-currency", "multi"])
def test_hubspots_currency_mode_is_the_portals(tmp_path: Path, additional: list[str]) -> None:
    """The shipped config writes no HubSpot currency mode: the portal decides. A portal with
    additional currencies (switched through the emulator's control API) is ``multi``: a EUR deal
    arrives in HubSpot in EUR, figure unchanged. A portal of one currency is ``fixed`` in it: the
    EUR deal is parked in the dead letters, never written as dollars."""
    import httpx

    from sync.engine.money import model_of

    world = make_world(tmp_path)
    try:
        emulator = world.emulators["hubspot"]
        with httpx.Client(transport=emulator.transport(), base_url="http://hubspot.test") as ctl:
            answer = ctl.post("/_emulator/account", json={"additionalCurrencies": additional})
            answer.raise_for_status()
        model = model_of(world.engine, "hubspot")
        assert (model.mode, model.code) == ("multi" if additional else "fixed", "USD")
        euro_deal(world, "Euro in HubSpot")
        world.converge(cycles=2)
        found = [d for d in world.users["hubspot"].all() if d["name"] == "Euro in HubSpot"]
        if additional:
            assert len(found) == 1
            deal = world.users["hubspot"].get(found[0]["id"])
            assert (deal["deal_currency_code"], float(deal["amount"])) == ("EUR", 50000)
        else:
            assert found == []
            with world.engine.session() as session:
                letters = session.exec(
                    select(DeadLetter).where(DeadLetter.system == "hubspot")
                ).all()
            assert any("EUR" in (letter.error or "") for letter in letters), letters
    finally:
        world.engine.close()
