"""Salesforce's checks of a written Opportunity body, field by field: the stored value, or the
400 Salesforce answers for the first bad field (its own error codes and wording).

The API's rules are in the package docstring (``sync.emulators.salesforce``); the state the
checks read (stages, currencies, users, accounts) is :class:`SalesforceData`'s.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from sync.emulators.salesforce.common import PREFIXES, Field, SalesforceError, normalise_id

Row = dict[str, Any]
#: a table of the org's state by name (``SalesforceData.table``)
Tables = Callable[[str], dict[str, Row]]
_LABELS = {
    "Name": "Opportunity Name",
    "StageName": "Stage",
    "Probability": "Probability (%)",
    "CurrencyIsoCode": "Opportunity Currency",
    "AccountId": "Account ID",
    "OwnerId": "Owner ID",
}
_MAX_AMOUNT = 10**16  # currency(18, 2): 16 digits before the point


def clean(body: Any, schema: dict[str, Field], table: Tables) -> Row:
    """The body's fields as stored values; Salesforce's 400 for the first bad one."""
    if not isinstance(body, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    values: Row = {}
    for name, raw in body.items():
        if name == "attributes":
            continue
        known = next((f for f in schema if f.lower() == name.lower()), None)
        if known is None:
            raise SalesforceError(
                400, "INVALID_FIELD", f"No such column '{name}' on sobject of type Opportunity"
            )
        if not schema[known].writable:
            raise SalesforceError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {known}. Please check the security "
                "settings of this field and verify that it is read/write for your profile "
                "or permission set.",
                [known],
            )
        values[known] = _value(known, schema[known], raw, table)
    return values


def _value(name: str, field: Field, raw: Any, table: Tables) -> Any:
    label = _LABELS.get(name, name)
    if raw is None:
        return None
    if field.type in {"string", "textarea", "picklist"}:
        text = raw if isinstance(raw, str) else str(raw)
        if field.length and len(text) > field.length:
            raise SalesforceError(
                400, "STRING_TOO_LONG",
                f"{label}: data value too large: {text[:40]} (max length={field.length})",
                [name],
            )  # fmt: skip
        return _picklist(name, label, text, table)
    if field.type == "date":
        try:
            return dt.date.fromisoformat(str(raw)[:10]) if isinstance(raw, str) else _bad(raw)
        except ValueError:
            return _bad(raw, "date")
    if field.type in {"currency", "percent"}:
        number = _number(raw, field.type)
        if name == "Probability" and not 0 <= number <= 100:
            raise SalesforceError(
                400, "NUMBER_OUTSIDE_VALID_RANGE",
                f"{label}: value outside of valid range on numeric field: {raw}", [name],
            )  # fmt: skip
        if abs(number) >= _MAX_AMOUNT:
            raise SalesforceError(
                400, "NUMBER_OUTSIDE_VALID_RANGE",
                f"{label}: value outside of valid range on numeric field: {raw}", [name],
            )  # fmt: skip
        return float(round(number)) if name == "Probability" else round(number, 2)
    return _reference(name, label, raw, table)


def _picklist(name: str, label: str, text: str, table: Tables) -> str:
    allowed: list[str] | None = None
    if name == "StageName":
        allowed = [s["ApiName"] for s in table("stages").values() if s["IsActive"]]
    elif name == "CurrencyIsoCode":
        allowed = [c["IsoCode"] for c in table("currencies").values() if c["IsActive"]]
    if allowed is not None and text not in allowed:
        raise SalesforceError(
            400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{label}: bad value for restricted picklist field: {text}", [name],
        )  # fmt: skip
    return text


def _reference(name: str, label: str, raw: Any, table: Tables) -> str:
    target = "users" if name == "OwnerId" else "accounts"
    prefix = PREFIXES["User" if name == "OwnerId" else "Account"]
    full = normalise_id(raw) if isinstance(raw, str) else None
    if full is None or not full.startswith(prefix):
        raise SalesforceError(
            400, "MALFORMED_ID", f"{label}: id value of incorrect type: {raw}", [name]
        )
    if full not in table(target):
        raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
    return full


def _number(raw: Any, kind: str) -> float:
    if isinstance(raw, bool):
        return float(_bad(raw, kind))
    if isinstance(raw, int | float) and math.isfinite(raw):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    return float(_bad(raw, kind))


def _bad(raw: Any, kind: str = "date") -> Any:
    raise SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {kind} from VALUE_STRING value {raw} or request may "
        "be missing a required field",
    )
