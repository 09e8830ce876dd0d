"""How each system holds money: the ``currency`` block of a system and the ``currency_rates``
table (config.yaml). Pure data and defaults; :mod:`sync.engine.money` applies them.

A system holds the currency of its deals in one of three ways (``systems.NAME.currency.mode``):

- ``per_deal`` — every deal carries its own currency (Ruddr ``currency``, Capsule's
  ``value.currency`` behind Truto). Any currency can be written.
- ``fixed`` — one currency for the whole account (Close's organization currency,
  ``value_currency`` read-only, read from ``GET /organization/{id}/`` unless ``code`` is set;
  ParsaLink documents none, so its currency is configured — USD when not).
  A figure read from it is in ``code``; a deal in another currency is handled by ``foreign``.
- ``multi`` — "multi-currency if the account says so" (Salesforce ``CurrencyIsoCode`` only in
  multi-currency orgs, HubSpot ``deal_currency_code``): the deal's currency is written with it;
  a deal read without one is in ``code``, the account's corporate currency.

Where the API lists the account's currencies (HubSpot: ``companyCurrency`` and
``additionalCurrencies``) and config names no mode, the account decides: ``multi`` when it has
more than one, else ``fixed`` (``CurrencyModel.auto``; ``sync.engine.money.model_of`` asks).

``foreign`` is the rule for a deal whose currency a ``fixed`` system cannot hold: ``park``
(default: the push goes to the dead letters naming the deal, its currency and the system's —
never the figure unchanged) or ``convert`` (at ``currency_rates``; the rate is journaled).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

CurrencyMode = Literal["per_deal", "fixed", "multi"]
ForeignRule = Literal["park", "convert"]


def _iso_code(value: str) -> str:
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise PydanticCustomError("currency", "a 3-letter ISO 4217 currency code like USD")
    return value.upper()


def _pair(value: str) -> str:
    base, sep, quote = value.partition("/")
    if not sep:
        raise PydanticCustomError("currency_pair", 'a currency pair like "EUR/USD"')
    return f"{_iso_code(base)}/{_iso_code(quote)}"


CurrencyCode = Annotated[str, AfterValidator(_iso_code)]
CurrencyPair = Annotated[str, AfterValidator(_pair)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CurrencyConfig(_Strict):
    """``systems.NAME.currency``: how the system holds currencies (defaults per vendor type)."""

    mode: CurrencyMode | None = None
    #: fixed: the system's one currency; multi: the account's currency for deals without one
    code: CurrencyCode | None = None
    foreign: ForeignRule = "park"


class RatesConfig(_Strict):
    """``currency_rates``: the table ``foreign: convert`` uses, and the date it was taken.

    ``EUR/USD: 1.085`` means 1 EUR = 1.085 USD; the inverse direction is derived."""

    as_of: dt.date
    rates: dict[CurrencyPair, Decimal] = Field(default_factory=dict)

    def rate(self, source: str, target: str) -> Decimal | None:
        """Units of ``target`` for one unit of ``source`` (direct or inverse entry)."""
        if source == target:
            return Decimal(1)
        direct = self.rates.get(f"{source}/{target}")
        if direct is not None:
            return direct
        inverse = self.rates.get(f"{target}/{source}")
        return None if inverse in (None, 0) else Decimal(1) / inverse


#: What each vendor does when the config says nothing (vendors.md §8 "Currency").
VENDOR_DEFAULTS: dict[str, tuple[CurrencyMode, str | None]] = {
    "ruddr": ("per_deal", None),  # currency per deal, default the workspace's
    "close": ("fixed", None),  # the organization's currency, read from the API
    "parsalink": ("fixed", "USD"),  # no currency documented: assumed, say so in config check
    "truto": ("multi", "USD"),  # Salesforce CurrencyIsoCode / Capsule value.currency
    "salesforce": ("fixed", None),  # the org's corporate currency, read from the API; a
    #                                 multi-currency org is configured `multi` (CurrencyIsoCode)
    "hubspot": ("fixed", None),  # the portal's companyCurrency; multi when it has more
}

#: systems whose API lists every currency the account holds: with no mode configured, the
#: account decides (multi when it has more than one, else fixed)
MODE_FROM_API = frozenset({"hubspot"})


#: ``fixed`` systems whose API says the currency: Close (``GET /organization/{id}/``), HubSpot
#: (``GET /account-info/v3/details`` → ``companyCurrency``)
READ_FROM_API = frozenset({"close", "hubspot"})


@dataclass(frozen=True, slots=True)
class CurrencyModel:
    """A system's resolved currency model (config over vendor defaults)."""

    mode: CurrencyMode
    code: str | None
    foreign: ForeignRule
    #: the code came from the vendor default, not the config
    assumed: bool = False
    #: no code configured: the engine asks the vendor's API (Close's organization)
    from_api: bool = False
    #: no mode configured and the API lists the account's currencies: ``mode`` is a
    #: placeholder until ``sync.engine.money.model_of`` asks (multi when more than one)
    auto: bool = False

    def holds(self, currency: str | None) -> bool:
        """Can this system hold a deal in ``currency`` as it is?"""
        return self.mode != "fixed" or currency is None or currency == self.code

    def describe(self) -> str:
        if self.auto:
            return (
                "the account's currencies, read from the API: multi-currency when it has "
                "more than one (the deal's currency is written with it), else fixed (a deal in "
                f"another currency is {self._rule()})"
            )
        if self.mode == "per_deal":
            return "a currency per deal: written as it is"
        if self.mode == "multi":
            return (
                f"multi-currency: the deal's currency is written with it; a deal read without "
                f"one is in {self.code}" + (" (default)" if self.assumed else "")
            )
        rule = self._rule()
        assumed = " (default — set currency.code to the account's)" if self.assumed else ""
        code = "(the organization's currency, read from the API)" if self.from_api else self.code
        return f"fixed {code}{assumed}; a deal in another currency is {rule}"

    def _rule(self) -> str:
        if self.foreign == "convert":
            return "converted at currency_rates (the rate is journaled)"
        return "parked in the dead letters (foreign: park)"


def resolve(system_type: str, config: CurrencyConfig) -> CurrencyModel:
    """The model a system of ``system_type`` follows under ``config`` (cached: the engine
    asks for every amount it compares)."""
    return _resolve(system_type, config.mode, config.code, config.foreign)


@functools.lru_cache(maxsize=256)
def _resolve(
    system_type: str, mode: CurrencyMode | None, code: str | None, foreign: ForeignRule
) -> CurrencyModel:
    default_mode, default_code = VENDOR_DEFAULTS.get(system_type, ("per_deal", None))
    if mode is None and system_type in MODE_FROM_API:
        return CurrencyModel(default_mode, code, foreign, from_api=code is None, auto=True)
    mode = mode or default_mode
    if code is not None:
        return CurrencyModel(mode, code, foreign)
    if mode == "fixed" and system_type in READ_FROM_API:
        return CurrencyModel(mode, None, foreign, from_api=True)
    return CurrencyModel(mode, default_code or "USD", foreign, assumed=mode != "per_deal")


def cross_checks(data: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """``foreign: convert`` needs a ``currency_rates`` table (raw config data, for the loader)."""
    systems = data.get("systems")
    if not isinstance(systems, Mapping) or isinstance(data.get("currency_rates"), Mapping):
        return
    for name, system in systems.items():
        currency = system.get("currency") if isinstance(system, Mapping) else None
        if isinstance(currency, Mapping) and currency.get("foreign") == "convert":
            path = ("systems", name, "currency", "foreign")
            yield path, "a currency_rates table (as_of, rates) for foreign: convert", '"convert"'
