"""sObject Collections (``/composite/sobjects``): up to 200 records a request, one SaveResult
per record in request order, ``allOrNone`` rolling back every write when one record fails.

The request counts once against the daily allocation (the caller counts requests).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sync.emulators.salesforce.common import (
    COLLECTION_LIMIT,
    EXTERNAL_ID,
    SalesforceError,
)
from sync.emulators.salesforce.data import Row, SalesforceData

_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}


def records_of(body: Any) -> tuple[list[Any], bool]:
    """``(records, allOrNone)`` of a collection body; 400 when it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SalesforceError(400, "JSON_PARSER_ERROR", 'Expected {"records": [...]}')
    records = body["records"]
    if not records:
        raise SalesforceError(400, "INVALID_FIELD", "No records to process")
    if len(records) > COLLECTION_LIMIT:
        raise SalesforceError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this "
            "call",
        )
    return records, bool(body.get("allOrNone", False))


def _type_of(record: Any) -> dict[str, Any]:
    """The record's fields after checking its ``attributes.type`` is Opportunity."""
    if not isinstance(record, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    kind = (record.get("attributes") or {}).get("type")
    if kind is None:
        raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.")
    if kind != "Opportunity":
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{kind}' is not supported.")
    return {k: v for k, v in record.items() if k != "attributes"}


def create_one(data: SalesforceData, record: Any) -> dict[str, Any]:
    fields = _type_of(record)
    if any(k.lower() == "id" for k in fields):
        raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
    return {"id": data.create(fields)["Id"], "success": True, "errors": []}


def update_one(data: SalesforceData, record: Any) -> dict[str, Any]:
    fields = _type_of(record)
    record_id = next((v for k, v in fields.items() if k.lower() == "id"), None)
    if not isinstance(record_id, str):
        raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
    fields = {k: v for k, v in fields.items() if k.lower() != "id"}
    return {"id": data.update(record_id, fields)["Id"], "success": True, "errors": []}


def upsert_one(data: SalesforceData, record: Any) -> dict[str, Any]:
    fields = _type_of(record)
    value = fields.get(EXTERNAL_ID)
    if not isinstance(value, str) or not value:
        raise SalesforceError(
            400, "MISSING_ARGUMENT", f"{EXTERNAL_ID} not specified", [EXTERNAL_ID]
        )
    row, created = upsert(data, value, fields)
    return {"id": row["Id"], "success": True, "errors": [], "created": created}


def upsert(data: SalesforceData, value: str, fields: dict[str, Any]) -> tuple[Row, bool]:
    """Create or update by ``Crmsync_Id__c``; ``DUPLICATE_EXTERNAL_ID`` on several matches."""
    matches = data.by_external_id(value)
    if len(matches) > 1:
        ids = ", ".join(row["Id"] for row in matches)
        raise SalesforceError(
            300,
            "DUPLICATE_EXTERNAL_ID",
            f"{EXTERNAL_ID}: more than one record found for external id field: [{ids}]",
            [EXTERNAL_ID],
        )
    if matches:
        return data.update(matches[0]["Id"], fields), False
    return data.create({**fields, EXTERNAL_ID: value}), True


def delete_one(data: SalesforceData, record_id: Any) -> dict[str, Any]:
    data.delete(str(record_id))
    return {"id": record_id, "success": True, "errors": []}


def run(
    data: SalesforceData,
    records: list[Any],
    all_or_none: bool,
    one: Callable[[SalesforceData, Any], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each record in order; with ``allOrNone`` a failure restores the state from before."""
    saved = _snapshot(data) if all_or_none else None
    results: list[dict[str, Any]] = []
    for record in records:
        try:
            results.append(one(data, record))
        except SalesforceError as exc:
            results.append({"success": False, "errors": [exc.save_error()]})
    if saved is not None and not all(r["success"] for r in results):
        _restore(data, saved)
        results = [
            r if not r["success"] else {"id": None, "success": False, "errors": [_ROLLED_BACK]}
            for r in results
        ]
    return results


def _snapshot(data: SalesforceData) -> tuple[dict[str, Row], int, dict[str, int]]:
    return (
        copy.deepcopy(dict(data.opportunities)),
        len(data.deleted_log),
        dict(data._counters),
    )


def _restore(data: SalesforceData, saved: tuple[dict[str, Row], int, dict[str, int]]) -> None:
    rows, log_length, counters = saved
    data.opportunities.clear()
    data.opportunities.update(rows)
    del data.deleted_log[log_length:]
    data._counters = counters
