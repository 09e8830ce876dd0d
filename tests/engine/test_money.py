"""Money on canonical values: projection into a target's currency, the in-sync rule for
converted copies, the inbound terms of a merge and the drift verify reports."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.config import load_config
from sync.engine import money
from sync.money_config import CurrencyConfig, ForeignRule, RatesConfig

ROOT = Path(__file__).resolve().parents[2]
RATES = RatesConfig(as_of=dt.date(2026, 11, 27), rates={"EUR/USD": Decimal("1.085")})
EURO_DEAL = {"name": "Big deal", "amount": "50000.00", "currency": "EUR"}


def engine(foreign: ForeignRule = "park", rates: RatesConfig | None = RATES) -> Any:
    """Just what money reads of an engine: the config (Close fixed USD under ``foreign``)."""
    shipped = load_config(ROOT / "config.yaml", env={})
    rule = CurrencyConfig(mode="fixed", code="USD", foreign=foreign)
    systems = {
        name: cfg.model_copy(update={"currency": rule}) if name in ("close", "parsalink") else cfg
        for name, cfg in shipped.systems.items()
    }
    config = shipped.model_copy(update={"systems": systems, "currency_rates": rates})
    return SimpleNamespace(config=config)


def test_park_refuses_a_foreign_deal_naming_deal_currency_and_target() -> None:
    """Under ``park`` a EUR deal is not projected onto USD-only Close: the error says which
    deal, its figure and currency, the target's currency and what to change."""
    with pytest.raises(money.CurrencyMismatch) as caught:
        money.project(engine(), "close", EURO_DEAL, {"amount": "50000.00", "name": "Big deal"})
    text = str(caught.value)
    assert "close holds only USD" in text and "'Big deal' is 50000.00 EUR" in text
    assert "foreign is park" in text


def test_convert_projects_the_amount_and_the_currency_field() -> None:
    """Under ``convert`` the amount is converted at the table's rate; a written currency field
    becomes the target's."""
    projected = money.project(
        engine("convert"), "close", EURO_DEAL, {"amount": "50000.00", "currency": "EUR"}
    )
    assert projected == {"amount": "54250.00", "currency": "USD"}


def test_a_missing_rate_parks_even_under_convert() -> None:
    """No JPY/USD in the table: parked with the missing pair named, never written as is."""
    deal = {**EURO_DEAL, "currency": "JPY"}
    with pytest.raises(money.CurrencyMismatch, match="no JPY/USD rate"):
        money.project(engine("convert"), "close", deal, {"amount": "50000.00"})


@pytest.mark.parametrize("system", ["ruddr", "truto_salesforce"])
def test_per_deal_and_multi_currency_targets_take_the_deal_as_it_is(system: str) -> None:
    """Ruddr (per deal) and Salesforce (multi-currency) hold any currency: nothing changes."""
    wanted = {"amount": "50000.00", "currency": "EUR"}
    assert money.project(engine(), system, EURO_DEAL, wanted) == wanted


def test_a_deal_in_the_targets_own_currency_passes_unchanged() -> None:
    """A USD deal into USD Close, or a deal without an amount, needs no conversion."""
    usd = {**EURO_DEAL, "currency": "USD"}
    assert money.project(engine(), "close", usd, {"amount": "50000.00"}) == {"amount": "50000.00"}
    empty = {**EURO_DEAL, "amount": None}
    assert money.project(engine(), "close", empty, {"amount": None}) == {"amount": None}


def test_a_converted_copy_is_in_sync_only_with_the_rate_that_made_it() -> None:
    """54250.00 USD is 50000.00 EUR at 1.085, in either direction; at another rate it is not."""
    assert money.holds_ours(engine("convert"), "close", EURO_DEAL, "54250.00")
    assert not money.holds_ours(engine("convert"), "close", EURO_DEAL, "54250.01")
    other = RatesConfig(as_of=dt.date(2026, 12, 1), rates={"EUR/USD": Decimal("1.1")})
    assert not money.holds_ours(engine("convert", other), "close", EURO_DEAL, "54250.00")
    assert not money.holds_ours(engine("park"), "close", EURO_DEAL, "54250.00")


@settings(max_examples=200, deadline=None)
@given(
    cents=st.integers(min_value=0, max_value=10**10),
    rate=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("200"), places=4),
)
def test_no_rounding_ping_pong_at_any_rate(cents: int, rate: Decimal) -> None:
    """For any figure a fixed-currency user types and any rate: converted back, then projected
    again, the result is in sync with what they typed — no cent travels back and forth."""
    rates = RatesConfig(as_of=dt.date(2026, 11, 27), rates={"EUR/USD": rate})
    eng = engine("convert", rates)
    typed = str((Decimal(cents) / 100).quantize(Decimal("0.01")))
    back = money.convert(eng, typed, "USD", "EUR")
    assert back is not None
    deal = {**EURO_DEAL, "amount": back.result}
    projected = money.project(eng, "close", deal, {"amount": back.result})["amount"]
    assert projected == typed or money.holds_ours(eng, "close", deal, typed)


def test_for_merge_expresses_an_edit_in_the_deals_currency() -> None:
    """An edited USD figure from Close is converted back into the deal's EUR, its shadow too
    (in sync: the deal's own amount), and the journal learns the rate."""
    link = SimpleNamespace(shadow={"amount": "54250.00", "currency": "USD"}, sent={})
    terms = money.for_merge(
        engine("convert"), "close", EURO_DEAL, {"amount": "60000.01", "currency": "USD"}, link
    )
    assert terms.theirs == {"amount": "55299.55", "currency": "EUR"}
    assert terms.base.shadow == {"amount": "50000.00", "currency": "EUR"}
    assert "60000.01 USD converted to 55299.55 EUR" in terms.why["amount"]
    assert not terms.set_aside


def test_for_merge_sets_aside_a_figure_it_cannot_convert() -> None:
    """Under ``park``, a USD figure edited in Close never becomes a EUR amount: it is left
    out of the merge with a reason, and other fields go on."""
    link = SimpleNamespace(shadow={"amount": "50000.00", "currency": "USD", "name": "a"}, sent={})
    theirs = {"amount": "60000.00", "currency": "USD", "name": "b"}
    terms = money.for_merge(engine("park"), "close", EURO_DEAL, theirs, link)
    assert terms.theirs == {"name": "b"}
    assert "close's amount 60000.00 USD not taken: the deal is in EUR" in terms.set_aside[0]


def test_for_merge_leaves_same_currency_and_per_deal_systems_alone() -> None:
    """A USD deal read from USD Close, and anything read from Ruddr, is merged as it is."""
    link = SimpleNamespace(shadow={}, sent={})
    usd = {**EURO_DEAL, "currency": "USD"}
    theirs = {"amount": "1.00", "currency": "USD"}
    assert money.for_merge(engine(), "close", usd, theirs, link).theirs is theirs
    euro = {"amount": "1.00", "currency": "GBP"}
    assert money.for_merge(engine(), "ruddr", EURO_DEAL, euro, link).theirs is euro


def test_money_drift_names_both_pairs() -> None:
    """A EUR deal held as a USD figure is drift with both (amount, currency) pairs; a correct
    conversion is not."""
    theirs = {"amount": "50000.00", "currency": "USD"}
    assert money.money_drift(engine(), "close", EURO_DEAL, theirs) == (
        "50000.00 EUR",
        "50000.00 USD",
    )
    converted = {"amount": "54250.00", "currency": "USD"}
    assert money.money_drift(engine("convert"), "close", EURO_DEAL, converted) is None
    assert (
        money.money_drift(engine(), "ruddr", EURO_DEAL, {"amount": "1", "currency": "EUR"}) is None
    )
