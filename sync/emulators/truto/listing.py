"""The Truto emulator's lists: filters on the stamps, ordering, and cursors that carry both.

The unified API's rules are in the package docstring (``sync.emulators.truto``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync.emulators.truto.common import (
    COMMON_PARAMS,
    OPERATORS,
    Integration,
    TrutoError,
    parse_datetime,
    parse_stamp,
)
from sync.emulators.truto.formats import check_formats, page_limit, shape

_BRACKET = re.compile(r"^(\w+)\[(\w*)\]$")


def list_opportunities(request: Request, integration: Integration) -> Response:
    """A page of opportunities ordered by the stamp the filters name, with a cursor."""
    limit = page_limit(request)
    check_formats(request)
    query = list_query(request, integration)
    rows = []
    for raw in integration.collection("opportunities").values():
        created, updated = integration.stamps(raw)
        if _matches(integration, query["filters"], created, updated):
            stamp = updated if query["mode"] == "updated" else created
            rows.append(((stamp, integration.record_id(raw)), raw))
    rows.sort(key=lambda row: row[0])
    if query["after"] is not None:
        after = (parse_stamp(query["after"][0]), query["after"][1])
        rows = [row for row in rows if row[0] > after]
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last_stamp, last_id = page[-1][0]
        next_cursor = _encode_cursor(
            {**query, "after": [last_stamp.isoformat(), last_id], "ia": integration.account_id}
        )
    result = [shape(integration, "opportunities", raw, request) for _, raw in page]
    return _list_response(result, next_cursor)


def list_query(request: Request, integration: Integration) -> dict[str, Any]:
    """Filters and ordering from the request, or from the cursor that carries them."""
    cursor = request.query_params.get("next_cursor")
    if cursor:
        query = _decode_cursor(cursor)
        if query.get("ia") != integration.account_id or "filters" not in query:
            raise TrutoError(400, "next_cursor is not valid for this request")
        return query
    filters: dict[str, dict[str, str]] = {}
    for name, value in request.query_params.multi_items():
        if name in COMMON_PARAMS:
            continue
        field, operator = _filter_name(name)
        if field not in integration.filterable or operator not in OPERATORS:
            raise TrutoError(
                400,
                f"Query parameter {name} is not supported for {integration.name} opportunities",
                {"supported": sorted(query_schema(integration))},
            )
        filters.setdefault(field, {})[operator] = parse_datetime(value, name).isoformat()
    mode = "updated" if "updated_at" in filters else "created"
    return {"filters": filters, "mode": mode, "after": None}


def reference_page(request: Request, integration: Integration, kind: str) -> Response:
    """A page of accounts, users or stages: offset cursors, no filters."""
    limit = page_limit(request)
    check_formats(request)
    items = list(integration.reference_collection(kind).values())
    start = 0
    if cursor := request.query_params.get("next_cursor"):
        start = int(_decode_cursor(cursor).get("offset", 0))
    page = items[start : start + limit]
    more = start + limit < len(items)
    next_cursor = _encode_cursor({"offset": start + limit}) if more else None
    result = [shape(integration, kind, raw, request) for raw in page]
    return _list_response(result, next_cursor)


def _filter_name(name: str) -> tuple[str, str]:
    match = _BRACKET.match(name)
    return (match.group(1), match.group(2)) if match else (name, "")


def query_schema(integration: Integration) -> dict[str, Any]:
    return {
        field: {
            "type": "string",
            "format": "date-time",
            "description": f"Filter on {field} with the {', '.join(OPERATORS)} operators",
            "operators": list(OPERATORS),
        }
        for field in integration.filterable
    }


def _matches(
    integration: Integration,
    filters: Mapping[str, Mapping[str, str]],
    created: dt.datetime,
    updated: dt.datetime,
) -> bool:
    values = {"created_at": created, "updated_at": updated}
    for field, operators in filters.items():
        actual = values[field]
        for operator, text in operators.items():
            bound = integration.filter_value(parse_stamp(text))
            if not _compare(operator, actual, bound):
                return False
    return True


def _compare(operator: str, actual: dt.datetime, bound: dt.datetime) -> bool:
    if operator == "gt":
        return actual > bound
    if operator == "gte":
        return actual >= bound
    if operator == "lt":
        return actual < bound
    return actual <= bound


def _encode_cursor(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError) as exc:
        raise TrutoError(400, "next_cursor is not valid") from exc
    if not isinstance(state, dict):
        raise TrutoError(400, "next_cursor is not valid")
    return state


def _list_response(result: list[dict[str, Any]], next_cursor: str | None) -> JSONResponse:
    return JSONResponse(
        {
            "result": result,
            "next_cursor": next_cursor,
            "prev_cursor": None,
            "result_count": len(result),
        }
    )
