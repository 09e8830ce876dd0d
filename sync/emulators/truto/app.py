"""The Truto emulator app: routes, writes and idempotency over the integrated accounts.

The unified API's rules are in the package docstring (``sync.emulators.truto``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators.base import Emulator
from sync.emulators.truto.capsule import CapsuleIntegration
from sync.emulators.truto.close import CloseIntegration
from sync.emulators.truto.common import (
    TOKEN,
    Integration,
    TrutoError,
    error_response,
)
from sync.emulators.truto.formats import check_formats, json_body, shape
from sync.emulators.truto.listing import list_opportunities, query_schema, reference_page
from sync.emulators.truto.salesforce import SalesforceIntegration

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
        return list_opportunities(request, integration)

    async def _opportunity(self, request: Request, integration: Integration) -> Response:
        record_id = request.path_params["id"]
        if request.method == "PATCH":
            return await self._idempotent(request, integration, self._update)
        raw = self._find(integration, record_id)
        if request.method == "DELETE":
            del integration.collection("opportunities")[record_id]
            return JSONResponse({"id": record_id})
        return JSONResponse(shape(integration, "opportunities", raw, request))

    async def _account(self, request: Request, integration: Integration) -> Response:
        """``GET`` an account, or ``PATCH`` it (a rename: "Update Accounts", supported for
        Salesforce, Capsule and Close among others)."""
        if request.method == "GET":
            answer: Response = await self._reference_one("accounts")(request, integration)
            return answer
        raw = integration.reference_collection("accounts").get(request.path_params["id"])
        if raw is None:
            raise TrutoError(404, "Account not found")
        check_formats(request)
        integration.update_account(raw, await json_body(request))
        return JSONResponse(shape(integration, "accounts", raw, request))

    def _find(self, integration: Integration, record_id: str) -> dict[str, Any]:
        raw = integration.collection("opportunities").get(record_id)
        if raw is None:
            raise TrutoError(404, f"Opportunity {record_id} not found")
        return raw

    async def _create(
        self, request: Request, integration: Integration, body: dict[str, Any]
    ) -> Response:
        check_formats(request)
        raw = integration.create(body)
        integration.collection("opportunities")[integration.record_id(raw)] = raw
        return JSONResponse(shape(integration, "opportunities", raw, request), 201)

    async def _update(
        self, request: Request, integration: Integration, body: dict[str, Any]
    ) -> Response:
        check_formats(request)
        raw = self._find(integration, request.path_params["id"])
        draft = json.loads(json.dumps(raw))  # a failed update leaves the record untouched
        integration.update(draft, body)
        raw.clear()
        raw.update(draft)
        return JSONResponse(shape(integration, "opportunities", raw, request))

    async def _idempotent(
        self,
        request: Request,
        integration: Integration,
        handler: Callable[[Request, Integration, dict[str, Any]], Any],
    ) -> Response:
        """Run a write once per ``Idempotency-Key``; replay its first 2xx answer after that."""
        body = await json_body(request)
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
                "query_schema": query_schema(integration) if method == "list" else {},
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
            return reference_page(request, integration, kind)

        return handler

    def _reference_one(self, kind: str) -> Callable[[Request, Integration], Any]:
        async def handler(request: Request, integration: Integration) -> Response:
            raw = integration.reference_collection(kind).get(request.path_params["id"])
            if raw is None:
                raise TrutoError(404, f"{kind[:-1].capitalize()} not found")
            return JSONResponse(shape(integration, kind, raw, request))

        return handler
