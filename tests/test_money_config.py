"""The ``currency`` block of a system and ``currency_rates``: defaults per vendor, validation
with the line, and rate look-ups in both directions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sync.config import load_config
from sync.money_config import CurrencyConfig, RatesConfig, resolve
from tests.config.test_config import ENV, VALID, problems, write

CONVERTING = VALID.replace(
    "    deletes: propagate\n",
    "    deletes: propagate\n    currency: {mode: fixed, code: eur, foreign: convert}\n",
) + ("currency_rates:\n  as_of: 2026-11-27\n  rates: {EUR/USD: 1.085, gbp/eur: 1.16}\n")


def test_each_vendor_type_has_a_sensible_default() -> None:
    """Ruddr holds a currency per deal; Close one fixed currency, its organization's (read from
    the API); ParsaLink one fixed currency, assumed USD until configured (deals in another
    currency parked); Truto is multi-currency."""
    ruddr = resolve("ruddr", CurrencyConfig())
    assert ruddr.mode == "per_deal" and ruddr.holds("JPY")
    close = resolve("close", CurrencyConfig())
    assert (close.mode, close.code, close.foreign, close.from_api) == ("fixed", None, "park", True)
    assert "read from the API" in close.describe()
    parsalink = resolve("parsalink", CurrencyConfig())
    assert (parsalink.mode, parsalink.code, parsalink.assumed) == ("fixed", "USD", True)
    assert parsalink.holds("USD") and not parsalink.holds("EUR") and parsalink.holds(None)
    assert "set currency.code" in parsalink.describe()
    truto = resolve("truto", CurrencyConfig())
    assert truto.mode == "multi" and truto.holds("EUR")


def test_a_currency_block_and_a_rates_table_load(tmp_path: Path) -> None:
    """Codes and pairs are upper-cased; a rate is found directly or as the inverse of the
    pair written the other way; an unknown pair has no rate."""
    config = load_config(write(tmp_path, CONVERTING), env=ENV)
    model = resolve("close", config.systems["close"].currency)
    assert (model.mode, model.code, model.foreign, model.assumed) == (
        "fixed",
        "EUR",
        "convert",
        False,
    )
    rates = config.currency_rates
    assert rates is not None and rates.as_of == dt.date(2026, 11, 27)
    assert rates.rate("EUR", "USD") == Decimal("1.085")
    assert rates.rate("EUR", "GBP") == Decimal(1) / Decimal("1.16")
    assert rates.rate("USD", "USD") == 1
    assert rates.rate("USD", "JPY") is None
    assert "converted at currency_rates" in model.describe()


def test_a_bad_currency_code_is_reported_at_its_line(tmp_path: Path) -> None:
    """``code: dollars`` names the key and what a code looks like."""
    text = VALID.replace(
        "    deletes: propagate\n", "    deletes: propagate\n    currency: {code: dollars}\n"
    )
    found = [str(p) for p in problems(tmp_path, text)]
    assert len(found) == 1
    assert "systems.close.currency.code: expected a 3-letter ISO 4217 currency code" in found[0]
    assert f":{text.splitlines().index('    currency: {code: dollars}') + 1} " in found[0]


def test_convert_without_rates_is_an_error(tmp_path: Path) -> None:
    """``foreign: convert`` with no currency_rates table would park everything: refused."""
    text = VALID.replace(
        "    deletes: propagate\n", "    deletes: propagate\n    currency: {foreign: convert}\n"
    )
    found = [str(p) for p in problems(tmp_path, text)]
    assert len(found) == 1
    assert "systems.close.currency.foreign: expected a currency_rates table" in found[0]


def test_a_malformed_pair_is_refused(tmp_path: Path) -> None:
    """A rate is keyed by a pair like EUR/USD."""
    text = CONVERTING.replace("EUR/USD: 1.085", "EURUSD: 1.085")
    found = [str(p) for p in problems(tmp_path, text)]
    assert any('a currency pair like "EUR/USD"' in p for p in found), found


def test_rates_need_their_date() -> None:
    """A rates table without ``as_of`` is refused: a conversion must say which rates it used."""
    assert RatesConfig.model_fields["as_of"].is_required()


def test_hubspot_without_a_mode_is_decided_by_its_portal() -> None:
    """No mode configured for HubSpot: the model is ``auto`` (the engine asks the portal:
    multi with additional currencies, else fixed); a written mode overrules the portal."""
    from sync.money_config import CurrencyConfig, resolve

    auto = resolve("hubspot", CurrencyConfig())
    assert auto.auto and auto.from_api and auto.code is None
    assert "more than one" in auto.describe()
    written = resolve("hubspot", CurrencyConfig(mode="fixed", code="EUR"))
    assert not written.auto and (written.mode, written.code) == ("fixed", "EUR")
    assert not resolve("close", CurrencyConfig()).auto
