"""The Truto emulator app: routes, listing, cursors, idempotency over the integrated accounts.

The unified API's rules are in the package docstring (``sync.emulators.truto``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators.base import Emulator
from sync.emulators.truto.capsule import (
    CapsuleIntegration,
)
from sync.emulators.truto.close import (
    CloseIntegration,
)
from sync.emulators.truto.common import (
    COMMON_PARAMS,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    OPERATORS,
    RESPONSE_FORMATS,
    TOKEN,
    UNIFIED_FIELDS,
    Integration,
    TrutoError,
    error_response,
    parse_datetime,
    parse_stamp,
    validation_failure,
)
from sync.emulators.truto.salesforce import (
    SalesforceIntegration,
)

_BRACKET = re.compile(r"^(\w+)\[(\w*)\]$")

INTEGRATIONS: tuple[type[Integration], ...] = (
    SalesforceIntegration,
    CapsuleIntegration,
    CloseIntegration,
)


# -- the emulator ---------------------------------------------------------------------------
class TrutoEmulator(Emulator):
    """Truto's unified CRM API with Salesforce, Capsule and Close integrated accounts."""

    vendor = "truto"
    prefix = "/unified/crm"
    default_rate = 10.0
    default_burst = 20.0

    integrations: dict[str, Integration]
    by_account: dict[str, Integration]
    id_rng: random.Random
    capsule_next_id: int
    close_org: str
    _idempotency: dict[tuple[str, str], tuple[str, int, bytes]]

    # -- state ---------------------------------------------------------------------------
    def reset_state(self, *, seed: int, opportunities: int) -> None:
        self.collections = {}
        self._idempotency = {}
        self.id_rng = random.Random(seed)
        self.capsule_next_id = 11_000_000
        self.close_org = ""
        self.integrations = {cls.name: cls(self) for cls in INTEGRATIONS}
        self.by_account = {i.account_id: i for i in self.integrations.values()}
        for integration in self.integrations.values():
            integration.seed_reference(random.Random(f"truto-{integration.name}-{seed}"))
        salesforce = self.integrations["salesforce"]
        assert isinstance(salesforce, SalesforceIntegration)
        salesforce.seed_shared_deals(seed)
        self.add_opportunities(opportunities, seed)

    def add_opportunities(self, count: int, seed: int) -> None:
        """Random deals, three in five to Salesforce, one each to Capsule and Close."""
        existing = sum(len(i.collection("opportunities")) for i in self.integrations.values())
        rng = random.Random(f"truto-opportunities-{seed}-{existing}")
        order = ("salesforce", "salesforce", "salesforce", "capsule", "close")
        for n in range(count):
            integration = self.integrations[order[n % len(order)]]
            raw = integration.random_opportunity(rng)
            integration.collection("opportunities")[integration.record_id(raw)] = raw

    # -- base hooks ----------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {TOKEN}":
            return None
        return error_response(401, "Invalid or missing API token")

    def rate_limited_response(self, retry_in: float) -> Response:
        return error_response(429, "Rate limit exceeded. Please try again later.")

    def rate_limit_key(self, request: Request) -> str:
        return request.query_params.get("integrated_account_id", "")

    def rate_limit_headers(self, remaining: float, reset_in: float) -> dict[str, str]:
        return {
            "ratelimit-limit": str(int(self.rate_limit.burst)),
            "ratelimit-remaining": str(max(0, math.floor(remaining))),
            "ratelimit-reset": str(max(1, math.ceil(reset_in))),
        }

    def vendor_routes(self) -> list[BaseRoute]:
        return [
            Route("/opportunities", self._endpoint(self._opportunities), methods=["GET", "POST"]),
            Route("/opportunities/meta/{method}", self._endpoint(self._meta), methods=["GET"]),
            Route(
                "/opportunities/{id}",
                self._endpoint(self._opportunity),
                methods=["GET", "PATCH", "DELETE"],
            ),
            Route("/accounts", self._endpoint(self._reference_list("accounts")), methods=["GET"]),
            Route("/accounts/{id}", self._endpoint(self._account), methods=["GET", "PATCH"]),
            Route("/users", self._endpoint(self._reference_list("users")), methods=["GET"]),
            Route("/users/{id}", self._endpoint(self._reference_one("users")), methods=["GET"]),
            Route("/stages", self._endpoint(self._reference_list("stages")), methods=["GET"]),
        ]

    # -- plumbing ------------------------------------------------------------------------
    def _endpoint(self, handler: Callable[[Request, Integration], Any]) -> Callable[[Request], Any]:
        """Resolve ``integrated_account_id`` and turn :class:`TrutoError` into the envelope."""

        async def endpoint(request: Request) -> Response:
            try:
                integration = self._integration(request)
                response: Response = await handler(request, integration)
            except TrutoError as error:
                return error.response()
            return response

        return endpoint

    def _integration(self, request: Request) -> Integration:
        account_id = request.query_params.get("integrated_account_id")
        if not account_id:
            raise TrutoError(
                400,
                "integrated_account_id is required",
                {"failures": [{"field": "integrated_account_id", "message": "is required"}]},
            )
        integration = self.by_account.get(account_id)
        if integration is None:
            raise TrutoError(404, f"Integrated account {account_id} not found")
        return integration

    # -- opportunities -------------------------------------------------------------------
    async def _opportunities(self, request: Request, integration: Integration) -> Response:
        if request.method == "POST":
            return await self._idempotent(request, integration, self._create)
        return self._list_opportunities(request, integration)

    async def _opportunity(self, request: Request, integration: Integration) -> Response:
        record_id = request.path_params["id"]
        if request.method == "PATCH":
            return await self._idempotent(request, integration, self._update)
        raw = self._find(integration, record_id)
        if request.method == "DELETE":
            del integration.collection("opportunities")[record_id]
            return JSONResponse({"id": record_id})
        return JSONResponse(self._shape(integration, "opportunities", raw, request))

    async def _account(self, request: Request, integration: Integration) -> Response:
        """``GET`` an account, or ``PATCH`` it (a rename: "Update Accounts", supported for
        Salesforce, Capsule and Close among others)."""
        if request.method == "GET":
            answer: Response = await self._reference_one("accounts")(request, integration)
            return answer
        raw = integration.reference_collection("accounts").get(request.path_params["id"])
        if raw is None:
            raise TrutoError(404, "Account not found")
        _check_formats(request)
        integration.update_account(raw, await _body(request))
        return JSONResponse(self._shape(integration, "accounts", raw, request))

    def _find(self, integration: Integration, record_id: str) -> dict[str, Any]:
        raw = integration.collection("opportunities").get(record_id)
        if raw is None:
            raise TrutoError(404, f"Opportunity {record_id} not found")
        return raw

    async def _create(
        self, request: Request, integration: Integration, body: dict[str, Any]
    ) -> Response:
        _check_formats(request)
        raw = integration.create(body)
        integration.collection("opportunities")[integration.record_id(raw)] = raw
        return JSONResponse(self._shape(integration, "opportunities", raw, request), 201)

    async def _update(
        self, request: Request, integration: Integration, body: dict[str, Any]
    ) -> Response:
        _check_formats(request)
        raw = self._find(integration, request.path_params["id"])
        draft = json.loads(json.dumps(raw))  # a failed update leaves the record untouched
        integration.update(draft, body)
        raw.clear()
        raw.update(draft)
        return JSONResponse(self._shape(integration, "opportunities", raw, request))

    async def _idempotent(
        self,
        request: Request,
        integration: Integration,
        handler: Callable[[Request, Integration, dict[str, Any]], Any],
    ) -> Response:
        """Run a write once per ``Idempotency-Key``; replay its first 2xx answer after that."""
        body = await _body(request)
        key = request.headers.get("idempotency-key")
        fingerprint = hashlib.sha256(
            f"{request.method} {request.url.path} {json.dumps(body, sort_keys=True)}".encode()
        ).hexdigest()
        if key:
            stored = self._idempotency.get((integration.name, key))
            if stored is not None:
                if stored[0] != fingerprint:
                    raise TrutoError(
                        422,
                        "Idempotency-Key was already used with a different request",
                        {"idempotency_key": key},
                    )
                return Response(stored[2], stored[1], media_type="application/json")
        response: Response = await handler(request, integration, body)
        if key and 200 <= response.status_code < 300:
            self._idempotency[(integration.name, key)] = (
                fingerprint,
                response.status_code,
                bytes(response.body),
            )
        return response

    def _list_opportunities(self, request: Request, integration: Integration) -> Response:
        limit = _limit(request)
        _check_formats(request)
        query = self._list_query(request, integration)
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
        result = [self._shape(integration, "opportunities", raw, request) for _, raw in page]
        return _list_response(result, next_cursor)

    def _list_query(self, request: Request, integration: Integration) -> dict[str, Any]:
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
                    {"supported": sorted(_query_schema(integration))},
                )
            filters.setdefault(field, {})[operator] = parse_datetime(value, name).isoformat()
        mode = "updated" if "updated_at" in filters else "created"
        return {"filters": filters, "mode": mode, "after": None}

    async def _meta(self, request: Request, integration: Integration) -> Response:
        method = request.path_params["method"]
        if method not in {"list", "get", "create", "update", "delete"}:
            raise TrutoError(404, f"Method {method} not found for opportunities")
        body_fields = {
            f: {"type": "object" if f in {"owner", "account", "stage"} else "string"}
            for f in integration.populated
            if f not in {"id", "status", "updated_at"}
        }
        return JSONResponse(
            {
                "method": method,
                "schema": {"type": "object", "properties": {f: {} for f in integration.populated}},
                "documentation_link": "https://truto.one/docs/api-reference/unified-crm-api/opportunities",
                "response_mapping": None,
                "query_schema": _query_schema(integration) if method == "list" else {},
                "request_body_schema": (
                    {
                        "type": "object",
                        "properties": body_fields,
                        "required": list(integration.required),
                    }
                    if method in {"create", "update"}
                    else {}
                ),
                "default_query": {},
                "default_body": {},
            }
        )

    # -- accounts and users --------------------------------------------------------------
    def _reference_list(self, kind: str) -> Callable[[Request, Integration], Any]:
        async def handler(request: Request, integration: Integration) -> Response:
            limit = _limit(request)
            _check_formats(request)
            items = list(integration.reference_collection(kind).values())
            start = 0
            if cursor := request.query_params.get("next_cursor"):
                start = int(_decode_cursor(cursor).get("offset", 0))
            page = items[start : start + limit]
            more = start + limit < len(items)
            next_cursor = _encode_cursor({"offset": start + limit}) if more else None
            result = [self._shape(integration, kind, raw, request) for raw in page]
            return _list_response(result, next_cursor)

        return handler

    def _reference_one(self, kind: str) -> Callable[[Request, Integration], Any]:
        async def handler(request: Request, integration: Integration) -> Response:
            raw = integration.reference_collection(kind).get(request.path_params["id"])
            if raw is None:
                raise TrutoError(404, f"{kind[:-1].capitalize()} not found")
            return JSONResponse(self._shape(integration, kind, raw, request))

        return handler

    # -- response formats ----------------------------------------------------------------
    def _shape(
        self, integration: Integration, kind: str, raw: Mapping[str, Any], request: Request
    ) -> dict[str, Any]:
        """``unified`` / ``raw`` / ``normalized``, minus excluded fields and ``remote_data``."""
        fmt, ignore_remote, excluded = _check_formats(request)
        mapper = {
            "opportunities": integration.unified,
            "accounts": integration.unified_account,
            "users": integration.unified_user,
            "stages": integration.unified_stage,
        }[kind]
        if fmt == "raw":
            out = json.loads(json.dumps(raw))
        elif fmt == "normalized":
            unified = mapper(raw)
            names: Iterable[str] = UNIFIED_FIELDS if kind == "opportunities" else unified
            out = {name: unified.get(name) for name in names}
        else:
            out = mapper(raw)
            if not ignore_remote:
                out["remote_data"] = json.loads(json.dumps(raw))
        for name in excluded:
            out.pop(name, None)
        return dict(out)


# -- helpers ----------------------------------------------------------------------------------
async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise TrutoError(400, f"Request body is not valid JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise TrutoError(400, "Request body must be a JSON object")
    if not isinstance(body.get("remote_data") or {}, dict):
        raise validation_failure("remote_data", "must be an object")
    return body


def _limit(request: Request) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise validation_failure("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def _check_formats(request: Request) -> tuple[str, bool, list[str]]:
    params = request.query_params
    fmt = params.get("truto_response_format", "unified")
    if fmt not in RESPONSE_FORMATS:
        raise validation_failure(
            "truto_response_format", f"must be one of {', '.join(RESPONSE_FORMATS)}"
        )
    ignore = params.get("truto_ignore_remote_data", "false").lower()
    if ignore not in {"true", "false", "1", "0"}:
        raise validation_failure("truto_ignore_remote_data", "must be a boolean")
    excluded = params.getlist("truto_exclude_fields[]")
    for value in params.getlist("truto_exclude_fields"):
        excluded += [v.strip() for v in value.split(",") if v.strip()]
    return fmt, ignore in {"true", "1"}, excluded


def _filter_name(name: str) -> tuple[str, str]:
    match = _BRACKET.match(name)
    return (match.group(1), match.group(2)) if match else (name, "")


def _query_schema(integration: Integration) -> dict[str, Any]:
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
