"""Salesforce's own records behind Truto's Salesforce account, in Salesforce's shape (what
``truto_response_format=raw`` and ``remote_data`` show): the sObjects, the stage defaults
Salesforce derives from, and Salesforce's error as Truto relays it.

How Truto maps them to its unified shape and writes them is ``salesforce.py``'s.
"""

from __future__ import annotations

from typing import Any

from sync.emulators.truto.common import TrutoError, first_last

#: Salesforce's default probability per standard stage (Setup → Opportunity Stages).
PROBABILITY = {
    "Prospecting": 10,
    "Qualification": 10,
    "Needs Analysis": 20,
    "Proposal/Price Quote": 75,
    "Negotiation/Review": 90,
    "Closed Won": 100,
    "Closed Lost": 0,
}
FORECAST = {"Closed Won": "Closed", "Closed Lost": "Omitted", "Negotiation/Review": "Commit"}
#: Opportunity text fields' lengths and labels (vendors.md §4.3: ``Name`` is string(120)); a
#: longer value is Salesforce's ``STRING_TOO_LONG``, which Truto relays as a 400
LENGTHS = {"Name": (120, "Opportunity Name")}


def error(message: str, code: str, fields: list[str]) -> TrutoError:
    """Salesforce's error body, relayed by Truto as a 400 with ``remote_error``."""
    remote = [{"message": message, "errorCode": code, "fields": fields}]
    return TrutoError(400, message, {"remote_error": remote})


def _attributes(sobject: str, record_id: str) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/v59.0/sobjects/{sobject}/{record_id}"}


def stage(order: int, name: str, closed: bool, won: bool) -> dict[str, Any]:
    """An ``OpportunityStage`` picklist value."""
    return {
        "ApiName": name, "MasterLabel": name, "IsActive": True, "IsClosed": closed,
        "IsWon": won, "DefaultProbability": PROBABILITY[name], "SortOrder": order,
        "ForecastCategoryName": FORECAST.get(name, "Pipeline"),
    }  # fmt: skip


def user(user_id: str, full_name: str, email: str, stamp: str) -> dict[str, Any]:
    first, last = first_last(full_name)
    return {
        "attributes": _attributes("User", user_id),
        "Id": user_id,
        "Username": email,
        "Name": full_name,
        "FirstName": first,
        "LastName": last,
        "Email": email,
        "IsActive": True,
        "CreatedDate": stamp,
        "SystemModstamp": stamp,
    }


def account(account_id: str, name: str, owner: str, stamp: str) -> dict[str, Any]:
    return {
        "attributes": _attributes("Account", account_id),
        "Id": account_id,
        "Name": name,
        "OwnerId": owner,
        "Industry": None,
        "Website": None,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
    }


def opportunity(
    opp_id: str,
    name: str,
    stage_name: str,
    close_date: str | None,
    owner: str,
    account_id: str | None,
    amount: float | None,
    stamp: str,
) -> dict[str, Any]:
    """A new ``Opportunity``, before the fields Salesforce derives from its stage."""
    return {
        "attributes": _attributes("Opportunity", opp_id),
        "Id": opp_id,
        "IsDeleted": False,
        "Name": name,
        "Description": None,
        "AccountId": account_id,
        "OwnerId": owner,
        "Amount": amount,
        "StageName": stage_name,
        "CloseDate": close_date,
        "Type": None,
        "LeadSource": None,
        "CreatedDate": stamp,
        "LastModifiedDate": stamp,
        "SystemModstamp": stamp,
        "Crmsync_Id__c": None,
        "Tags__c": None,
    }
