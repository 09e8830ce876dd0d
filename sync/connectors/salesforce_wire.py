"""Salesforce's wire formats, for ``sync.connectors.salesforce``: error bodies, SaveResults,
SOQL literals, and the Opportunity fields Salesforce derives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import httpx

from sync.connectors.base import DerivedField, VendorRecord
from sync.connectors.errors import ConnectorError, NotFound, Rejected
from sync.timefmt import EPOCH, as_utc

_GONE = {"ENTITY_IS_DELETED", "NOT_FOUND"}

#: ``Probability`` takes the stage's default on every ``StageName`` change that does not
#: carry one (the stage reference's ``probability`` says which); ``IsClosed``/``IsWon``
#: are the stage's (vendors.md §4.3).
DERIVED: tuple[DerivedField, ...] = (
    DerivedField(
        "Probability",
        "StageName",
        True,
        "Salesforce resets Probability to the stage's default when the stage changes",
        default="probability",  # OpportunityStage.DefaultProbability
    ),
    DerivedField("IsClosed", "StageName", False, "Salesforce derives IsClosed"),
    DerivedField("IsWon", "StageName", False, "Salesforce derives IsWon"),
)


def error_message(response: httpx.Response) -> tuple[str, dict[str, str]]:
    """``[{message, errorCode, fields}]``, or OAuth's ``{error, error_description}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase, {}
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('error')}: {body.get('error_description', '')}", {}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        messages, fields = [], {}
        for item in body:
            messages.append(f"{item.get('errorCode')}: {item.get('message')}")
            for name in item.get("fields") or []:
                fields[str(name)] = str(item.get("message"))
        return "; ".join(messages), fields
    return str(body)[:500], {}


def save_outcomes(
    system: str,
    sent: Sequence[dict[str, Any]],
    results: Sequence[dict[str, Any]],
    fresh: dict[str, VendorRecord],
) -> list[VendorRecord | ConnectorError]:
    """One outcome per record sent, from the collection's SaveResults (in request order):
    the record read back, ``NotFound`` for a deal gone, ``Rejected`` with Salesforce's reason."""
    outcomes: list[VendorRecord | ConnectorError] = []
    for record, result in zip(sent, results, strict=True):
        label = str(record.get("id") or record.get("Name"))
        if result.get("success") and str(result["id"]) in fresh:
            outcomes.append(fresh[str(result["id"])])
            continue
        errors = result.get("errors") or [{"statusCode": "NOT_FOUND", "message": "gone"}]
        message = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors)
        fields = {str(f): str(e.get("message")) for e in errors for f in e.get("fields") or []}
        if any(e.get("statusCode") in _GONE for e in errors):
            outcomes.append(NotFound(message, system=system, record=label))
        else:
            outcomes.append(Rejected(message, field_errors=fields, system=system, record=label))
    return outcomes


def soql_datetime(moment: dt.datetime) -> str:
    """An unquoted SOQL datetime literal, to the millisecond, in UTC."""
    utc = as_utc(moment)
    utc = max(utc, EPOCH)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def iso(moment: dt.datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def quote(text: str) -> str:
    """A SOQL string literal's body: backslashes and quotes escaped."""
    return text.replace("\\", "\\\\").replace("'", "\\'")
