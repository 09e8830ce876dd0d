"""Money across systems that hold currencies differently — on canonical values only.

An amount means nothing without its currency, so every comparison here is of (amount,
currency) pairs. Each system follows a :class:`~sync.money_config.CurrencyModel`:

- outbound (:func:`project`): what a system should hold of a deal. A ``fixed`` system (Close's
  organization currency, ParsaLink's configured one) that cannot hold the deal's currency either
  gets the amount converted at ``currency_rates`` (``foreign: convert``) or nothing at all: the
  push raises :class:`CurrencyMismatch` and goes to the dead letters naming the deal, its
  currency and the system's (``foreign: park``). The figure is never written unchanged.
- in sync (:func:`holds_ours`): a converted copy counts as in sync with the rate that made it,
  in either direction — ``convert(ours) == theirs`` or ``convert_back(theirs) == ours`` — so a
  cent lost to rounding one way or the other never ping-pongs.
- inbound (:func:`for_merge`): a figure read from a ``fixed`` system is in that system's
  currency. Before the three-way merge it is expressed in the deal's currency (converted back,
  or set aside when it cannot be), and so is the shadow it is compared with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from sync.mapping.errors import MappingError
from sync.money_config import CurrencyMode, CurrencyModel, resolve

if TYPE_CHECKING:
    from sync.engine.context import Engine

Fields = dict[str, Any]
_CENT = Decimal("0.01")


class CurrencyMismatch(MappingError):
    """A deal in a currency the target cannot hold, and no conversion allowed or possible.

    A :class:`MappingError`, so a push goes to the dead letters with this message."""

    def __init__(self, system: str, fields: Mapping[str, Any], model: CurrencyModel, why: str):
        currency, amount = fields.get("currency"), fields.get("amount")
        name = fields.get("name") or "(unnamed)"
        message = (
            f"{system} holds only {model.code}: deal {name!r} is {amount} {currency}; "
            f"not written ({why})"
        )
        ValueError.__init__(self, message)
        self.system, self.field, self.path = system, "amount", "currency"
        self.value, self.reason = currency, why
        self.currency, self.target = currency, model.code


def model_of(engine: Engine, system: str) -> CurrencyModel:
    """The system's currency model, its code asked of the vendor when not configured (Close's
    organization; the connector keeps the answer). A failed request raises its
    ``ConnectorError`` (a push retries); an API that cannot say is a :class:`MappingError`."""
    config = engine.config.systems[system]
    model = resolve(config.type, config.currency)
    if model.auto:
        return _by_account(engine, system, model)
    if model.code is not None:
        return model
    code = engine.connector(system).account_currency()
    if code is None:
        raise MappingError(
            system, "currency", "currency.code", None,
            f"the API does not say which currency {system} holds: set "
            f"systems.{system}.currency.code",
        )  # fmt: skip
    return replace(model, code=code)


def _by_account(engine: Engine, system: str, model: CurrencyModel) -> CurrencyModel:
    """``multi`` when the account holds more than one currency, else ``fixed`` in its own
    (HubSpot's company currency and additional currencies; the connector keeps the answer)."""
    currencies = engine.connector(system).account_currencies()
    if not currencies:
        raise MappingError(
            system, "currency", "currency.mode", None,
            f"the API does not say which currencies {system} holds: set "
            f"systems.{system}.currency.mode (and code)",
        )  # fmt: skip
    mode: CurrencyMode = "multi" if len(set(currencies)) > 1 else "fixed"
    return replace(model, mode=mode, code=model.code or currencies[0], auto=False)


def _quantize(value: Decimal) -> str:
    return str(value.quantize(_CENT, rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class Conversion:
    """One conversion: ``amount source`` = ``result target`` at ``rate`` (rates of ``as_of``)."""

    amount: str
    source: str
    result: str
    target: str
    rate: Decimal
    as_of: str

    def describe(self) -> str:
        return (
            f"{self.amount} {self.source} converted to {self.result} {self.target} at "
            f"{self.source}/{self.target} {self.rate:.6g} "
            f"(currency_rates of {self.as_of})"
        )


def convert(engine: Engine, amount: Any, source: str, target: str) -> Conversion | None:
    """``amount`` in ``source`` expressed in ``target`` at the configured rates (None: no rate)."""
    rates = engine.config.currency_rates
    rate = None if rates is None else rates.rate(source, target)
    if rate is None or rates is None:
        return None
    result = _quantize(Decimal(str(amount)) * rate)
    return Conversion(str(amount), source, result, target, rate, rates.as_of.isoformat())


def _foreign(model: CurrencyModel, fields: Mapping[str, Any]) -> str | None:
    """The deal's currency when ``model``'s system cannot hold it as it is, else None."""
    currency = fields.get("currency")
    if fields.get("amount") is None or model.holds(currency):
        return None
    return str(currency)


# --------------------------------------------------------------------------- outbound


def conversion_for(engine: Engine, system: str, fields: Mapping[str, Any]) -> Conversion | None:
    """The conversion a push of ``fields`` to ``system`` needs (None: none needed).
    Raises :class:`CurrencyMismatch` when the system cannot hold the deal's currency."""
    model = model_of(engine, system)
    currency = _foreign(model, fields)
    if currency is None:
        return None
    assert model.code is not None
    if model.foreign != "convert":
        why = (
            f"systems.{system}.currency.foreign is park; set it to convert with "
            f"currency_rates, or change the deal's currency"
        )
        raise CurrencyMismatch(system, fields, model, why)
    found = convert(engine, fields["amount"], currency, model.code)
    if found is None:
        raise CurrencyMismatch(
            system, fields, model, f"currency_rates has no {currency}/{model.code} rate"
        )
    return found


def project(engine: Engine, system: str, record: Mapping[str, Any], wanted: Fields) -> Fields:
    """``wanted`` (the outbound fields of ``record``) in the terms ``system`` holds money in."""
    if wanted.get("amount") is None or record.get("currency") is None:
        return wanted  # nothing to convert (the common case costs two look-ups)
    found = conversion_for(engine, system, record)
    if found is None:
        return wanted
    out = {**wanted, "amount": found.result}
    if "currency" in out:
        out["currency"] = found.target
    return out


def holds_ours(
    engine: Engine,
    system: str,
    record: Mapping[str, Any],
    held: Any,
    model: CurrencyModel | None = None,
) -> bool:
    """Is ``held`` (the system's amount, in its currency) a converted copy of the deal's
    amount — made at the current rate in either direction? (No ping-pong over a cent.)"""
    model = model or model_of(engine, system)
    currency = _foreign(model, record)
    if currency is None or held is None or model.foreign != "convert":
        return False
    assert model.code is not None
    there = convert(engine, record["amount"], currency, model.code)
    back = convert(engine, held, model.code, currency)
    return (there is not None and there.result == held) or (
        back is not None and back.result == record["amount"]
    )


def note_for(
    engine: Engine, system: str, record: Mapping[str, Any], sent: Mapping[str, Any]
) -> str:
    """For the journal: the conversion behind an amount sent to ``system`` ("" if none)."""
    if sent.get("amount") is None:
        return ""
    try:
        found = conversion_for(engine, system, record)
    except CurrencyMismatch:
        return ""
    return f" ({found.describe()})" if found else ""


# --------------------------------------------------------------------------- inbound


@dataclass
class Copy:
    """A system's copy (shadow and sent) as the merge should see it."""

    shadow: dict[str, Any]
    sent: dict[str, Any]


@dataclass
class MergeTerms:
    """The incoming fields and their base, in the deal's currency, ready for the merge."""

    theirs: Fields
    base: Copy
    #: field -> words for the journal (how a figure was converted back)
    why: dict[str, str] = field(default_factory=dict)
    #: incoming changes set aside, with the reason (a figure in a currency the deal is not in)
    set_aside: list[str] = field(default_factory=list)


def for_merge(
    engine: Engine, system: str, ours: Mapping[str, Any], theirs: Fields, link: Any
) -> MergeTerms:
    """Express an incoming figure of a ``fixed`` system, and its shadow, in the deal's currency.

    In sync with ours (converted at the current rate, either way): the deal's own amount.
    Changed there and convertible: converted back. Changed there and not convertible (``park``,
    or no rate): set aside with a reason — a USD figure never becomes a EUR one."""
    terms = MergeTerms(theirs, Copy(link.shadow, link.sent))
    config = engine.config.systems[system]
    model = resolve(config.type, config.currency)
    if model.auto:  # the account decides: ask (the connector keeps the answer)
        model = model_of(engine, system)
    deal = ours.get("currency")
    if model.mode != "fixed" or deal is None or "amount" not in theirs:
        return terms
    # the figure says its currency (Close's value_currency), else the system's model does
    held = theirs.get("currency") or model_of(engine, system).code
    model = replace(model, code=held)
    if held == deal:
        return terms
    shadow = dict(link.shadow)
    theirs = dict(theirs)
    incoming = theirs.get("amount")
    changed = incoming != shadow.get("amount")
    for fields, is_theirs in ((shadow, False), (theirs, True)):
        if fields.get("amount") is None:
            continue
        fields["currency"] = deal
        if holds_ours(engine, system, ours, fields["amount"], model):
            fields["amount"] = ours.get("amount")
            continue
        back = convert(engine, fields["amount"], str(held), str(deal))
        if back is not None and model.foreign == "convert":
            fields["amount"] = back.result
            if is_theirs:
                terms.why["amount"] = f" ({back.describe()})"
        elif is_theirs:
            del fields["amount"], fields["currency"]
            if changed:
                terms.set_aside.append(
                    f"{system}'s amount {incoming} {held} not taken: the deal "
                    f"is in {deal} and {system} holds {held} "
                    f"(currency.foreign: {model.foreign}; no conversion)"
                )
    terms.theirs, terms.base = theirs, Copy(shadow, link.sent)
    return terms


# --------------------------------------------------------------------------- verify


def money_drift(
    engine: Engine, system: str, record: Mapping[str, Any], theirs: Mapping[str, Any]
) -> tuple[str, str] | None:
    """(ours, theirs) as "amount CUR" pairs when ``system`` holds the deal's amount in a
    currency it is not in and no conversion makes it right; None when it is fine."""
    model = model_of(engine, system)
    amount = theirs.get("amount")
    held = theirs.get("currency") or (model.code if model.mode != "per_deal" else None)
    deal = record.get("currency")
    if amount is None or record.get("amount") is None or held is None or deal in (None, held):
        return None
    if holds_ours(engine, system, record, amount):
        return None
    return f"{record.get('amount')} {deal}", f"{amount} {held}"
