"""Account writes: create (``POST sobjects/Account``) and update (``PATCH sobjects/Account/{id}``)
— what an integration needs to add a missing company or rename one.

The API's rules are in the package docstring (``sync.emulators.salesforce``). Only ``Name`` is
writable here (the emulator's Account has no other field); ``Name`` is required and at most 255
characters. Salesforce does not move an opportunity's ``SystemModstamp`` when its account is
renamed (the opportunity's own fields are unchanged); ``rename_touches_deals`` makes it do so,
for scenarios that try both.
"""

from __future__ import annotations

from typing import Any

from sync.emulators.salesforce.common import SalesforceError, not_found
from sync.emulators.salesforce.data import Row, SalesforceData

_MAX_NAME = 255


def create(data: SalesforceData, body: Any) -> Row:
    name = _name(body, required=True)
    now = data.now()
    account_id = data.new_id("Account")
    row = {
        "Id": account_id, "IsDeleted": False, "Name": name, "CreatedDate": now,
        "LastModifiedDate": now, "SystemModstamp": now,
    }  # fmt: skip
    data.table("accounts")[account_id] = row
    return row


def update(data: SalesforceData, account_id: str, body: Any) -> None:
    row = data.table("accounts").get(account_id)
    if row is None:
        raise not_found()
    name = _name(body, required=False)
    now = data.now()
    if name is not None:
        row["Name"] = name
    row["LastModifiedDate"] = row["SystemModstamp"] = now
    if data.rename_touches_deals:
        for opportunity in data.opportunities.values():
            if opportunity["AccountId"] == account_id and not opportunity["IsDeleted"]:
                opportunity["LastModifiedDate"] = opportunity["SystemModstamp"] = now
        data.opportunities.touch()


def _name(body: Any, *, required: bool) -> str | None:
    if not isinstance(body, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    # field names are case-insensitive, as everywhere in the API
    fields = {key.lower(): value for key, value in body.items() if key != "attributes"}
    unknown = [key for key in fields if key != "name"]
    if unknown:
        raise SalesforceError(
            400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type Account"
        )
    name = fields.get("name")
    if name is None and not required:
        return None
    if not isinstance(name, str) or not name.strip():
        raise SalesforceError(
            400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ["Name"]
        )
    if len(name) > _MAX_NAME:
        raise SalesforceError(
            400, "STRING_TOO_LONG", f"Account Name: data value too large: {name[:40]}", ["Name"]
        )
    return name
