"""The HubSpot emulator app: auth, the ten-secondly / daily / search budgets, the routes, and
the reference endpoints (pipelines, owners, companies, associations, account details).

The API's rules are in the package docstring (``sync.emulators.hubspot``).
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators.base import ALL_METHODS, RateLimitState
from sync.emulators.hubspot.common import (
    COMPANY_TYPE_IDS,
    DAILY,
    LIST_LIMIT,
    SCOPES,
    SEARCH_RATE,
    TEN_SECONDLY,
    TOKEN,
    HubSpotError,
    json_body,
    not_found,
    stamp,
    validation,
)
from sync.emulators.hubspot.deals import DealEndpoints

DEALS = ("/crm/v3/objects/deals", "/crm/v3/objects/0-3")
WRITE_SCOPE = "crm.objects.deals.write"


class HubSpotEmulator(DealEndpoints):
    """HubSpot's CRM API (deals and what they reference) at the host root."""

    vendor: ClassVar[str] = "hubspot"
    prefix: ClassVar[str] = ""
    default_rate: ClassVar[float] = TEN_SECONDLY / 10
    default_burst: ClassVar[float] = TEN_SECONDLY

    token: str = TOKEN

    def reset_state(self, *, seed: int, opportunities: int) -> None:
        super().reset_state(seed=seed, opportunities=opportunities)
        self.scopes: list[str] = list(SCOPES)
        self.search_limit = RateLimitState(True, SEARCH_RATE, SEARCH_RATE)
        self.daily_limit = DAILY
        self.daily_used: tuple[dt.date, int] = (self.clock.peek().date(), 0)

    # -- auth -------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            return self._auth_error(
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview"
            )
        if credentials.strip() != self.token:
            return self._auth_error("The access token provided is invalid.")
        writing = request.method in {"POST", "PATCH", "PUT", "DELETE"}
        reading = request.url.path.endswith(("/search", "/batch/read"))
        deals_write = writing and not reading and request.url.path.startswith(DEALS)
        if deals_write and WRITE_SCOPE not in self.scopes:
            return HubSpotError(
                403,
                "This app hasn't been granted all required scopes to make this call.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [WRITE_SCOPE]},
                    }
                ],
            ).response()
        return None

    def _auth_error(self, message: str) -> Response:
        return HubSpotError(401, message, "INVALID_AUTHENTICATION").response()

    # -- limits -----------------------------------------------------------------------------
    def check_rate_limit(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        """Search draws on its own per-second budget (exempt from the ten-secondly one, and
        answered without headers); everything else on the ten-secondly and daily budgets."""
        if request.method == "POST" and request.url.path.endswith("/search"):
            allowed, _, _ = self.search_limit.take("search")
            return (None if allowed else self._limited("SECONDLY", "secondly")), {}
        today = self.clock.peek().date()
        day, used = self.daily_used
        used = used if day == today else 0
        allowed, left, _ = self.rate_limit.take("all")
        daily_left = self.daily_limit - used - (1 if allowed else 0)
        if allowed and daily_left >= 0:
            self.daily_used = (today, used + 1)
        headers = {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, daily_left)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(int(self.rate_limit.burst)),
            "X-HubSpot-RateLimit-Remaining": str(max(0, math.floor(left))),
            "X-HubSpot-RateLimit-Secondly": str(math.ceil(self.rate_limit.burst / 10)),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(
                max(0, math.floor(left) - math.ceil(self.rate_limit.burst * 0.9))
            ),
        }
        if daily_left < 0:
            return self._limited("DAILY", "daily"), headers
        if not allowed:
            return self._limited("TEN_SECONDLY_ROLLING", "ten_secondly_rolling"), headers
        return None, headers

    def _limited(self, policy: str, name: str) -> Response:
        body = {
            "status": "error",
            "message": f"You have reached your {name} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": uuid.uuid4().hex,
        }
        return JSONResponse(body, 429)

    def rate_limited_response(self, retry_in: float) -> Response:
        return self._limited("TEN_SECONDLY_ROLLING", "ten_secondly_rolling")

    # -- routes -----------------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for base in DEALS:
            routes += [
                Route(
                    base,
                    self.dispatch(get=self.list_deals, post=self.create_deal_endpoint),
                    methods=ALL_METHODS,
                ),
                Route(f"{base}/search", self.dispatch(post=self.search_deals), methods=ALL_METHODS),
                Route(
                    f"{base}/batch/read", self.dispatch(post=self.batch_read), methods=ALL_METHODS
                ),
                Route(
                    f"{base}/batch/create",
                    self.dispatch(post=self.batch_create),
                    methods=ALL_METHODS,
                ),
                Route(
                    f"{base}/batch/update",
                    self.dispatch(post=self.batch_update),
                    methods=ALL_METHODS,
                ),
                Route(
                    f"{base}/batch/upsert",
                    self.dispatch(post=self.batch_upsert),
                    methods=ALL_METHODS,
                ),
                Route(
                    f"{base}/batch/archive",
                    self.dispatch(post=self.batch_archive),
                    methods=ALL_METHODS,
                ),
                Route(
                    f"{base}/{{id}}",
                    self.dispatch(
                        get=self.get_deal,
                        patch=self.update_deal_endpoint,
                        delete=self.archive_deal_endpoint,
                    ),
                    methods=ALL_METHODS,
                ),
            ]
        v4 = "/crm/v4/objects/deals/{id}/associations"
        routes += [
            Route(
                "/crm/v3/pipelines/{type}",
                self.dispatch(get=self.list_pipelines),
                methods=ALL_METHODS,
            ),
            Route(
                "/crm/v3/pipelines/{type}/{pipeline}",
                self.dispatch(get=self.get_pipeline),
                methods=ALL_METHODS,
            ),
            # the spec's path, and HubSpot's client's (with a trailing slash)
            Route("/crm/v3/owners", self.dispatch(get=self.list_owners), methods=ALL_METHODS),
            Route("/crm/v3/owners/", self.dispatch(get=self.list_owners), methods=ALL_METHODS),
            Route("/crm/v3/owners/{id}", self.dispatch(get=self.get_owner), methods=ALL_METHODS),
            Route(
                "/crm/v3/objects/companies",
                self.dispatch(get=self.list_companies, post=self.create_company),
                methods=ALL_METHODS,
            ),
            Route(
                "/crm/v3/objects/companies/{id}",
                self.dispatch(get=self.get_company, patch=self.update_company),
                methods=ALL_METHODS,
            ),
            Route(
                f"{v4}/companies", self.dispatch(get=self.list_associations), methods=ALL_METHODS
            ),
            Route(
                f"{v4}/default/companies/{{to}}",
                self.dispatch(put=self.associate),
                methods=ALL_METHODS,
            ),
            Route(
                f"{v4}/companies/{{to}}", self.dispatch(delete=self.dissociate), methods=ALL_METHODS
            ),
            Route(
                "/crm/v3/properties/{type}/{name}",
                self.dispatch(get=self.get_property),
                methods=ALL_METHODS,
            ),
            Route(
                "/crm/v4/associations/deals/companies/batch/read",
                self.dispatch(post=self.batch_read_associations),
                methods=ALL_METHODS,
            ),
            Route(
                "/account-info/v3/details",
                self.dispatch(get=self.account_details),
                methods=ALL_METHODS,
            ),
            Route(
                "/oauth/v2/private-apps/get/access-token-info",
                self.dispatch(post=self.token_info),
                methods=ALL_METHODS,
            ),
            Route("/{path:path}", self.not_found, methods=ALL_METHODS),
        ]
        return routes

    def not_found_response(self) -> Response:
        return HubSpotError(404, "resource not found", "OBJECT_NOT_FOUND").response()

    def method_not_allowed(self, method: str) -> Response:
        return HubSpotError(
            405, f"HTTP method {method} is not supported", "VALIDATION_ERROR"
        ).response()

    def control_routes(self) -> list[BaseRoute]:
        return [
            Route("/_emulator/index_lag", self._ctl_index_lag, methods=["POST"]),
            Route("/_emulator/account", self._ctl_account, methods=["POST"]),
        ]

    # -- reference endpoints ----------------------------------------------------------------
    async def list_pipelines(self, request: Request) -> Response:
        self._deal_type(request)
        return JSONResponse({"results": self.pipelines})

    async def get_pipeline(self, request: Request) -> Response:
        self._deal_type(request)
        wanted = request.path_params["pipeline"]
        found = next((p for p in self.pipelines if p["id"] == wanted), None)
        if found is None:
            raise not_found(f"Unable to find pipeline {wanted}")
        return JSONResponse(found)

    def _deal_type(self, request: Request) -> None:
        if request.path_params["type"] not in ("deals", "0-3"):
            raise validation(f"Unsupported object type {request.path_params['type']}")

    async def list_owners(self, request: Request) -> Response:
        owners = sorted(self.collections["owners"].values(), key=lambda o: int(o["id"]))
        email = request.query_params.get("email")
        if email:
            owners = [o for o in owners if o["email"].lower() == email.lower()]
        return self._page(request, owners, lambda o: o)

    async def get_owner(self, request: Request) -> Response:
        owner = self.collections["owners"].get(request.path_params["id"])
        if owner is None:
            raise not_found()
        return JSONResponse(owner)

    async def list_companies(self, request: Request) -> Response:
        companies = sorted(self.collections["companies"].values(), key=lambda c: int(c["id"]))
        return self._page(request, companies, self._company_view)

    async def get_company(self, request: Request) -> Response:
        company = self.collections["companies"].get(request.path_params["id"])
        if company is None:
            raise not_found()
        return JSONResponse(self._company_view(company))

    async def create_company(self, request: Request) -> Response:
        body = await json_body(request)
        props = {str(k): str(v) for k, v in (body.get("properties") or {}).items()}
        if not props.get("name"):
            raise validation("a company needs a name")
        company = self.new_company(props, self.clock.now())
        return JSONResponse(self._company_view(company), 201)

    async def update_company(self, request: Request) -> Response:
        company = self.collections["companies"].get(request.path_params["id"])
        if company is None:
            raise not_found()
        body = await json_body(request)
        props = {str(k): str(v) for k, v in (body.get("properties") or {}).items()}
        if "name" in props and not props["name"].strip():
            raise validation("a company needs a name")
        self.rename_company(company, props)
        return JSONResponse(self._company_view(company))

    def _company_view(self, company: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": company["id"],
            "properties": {
                **company["props"],
                "hs_object_id": company["id"],
                "createdate": stamp(company["created"]),
                "hs_lastmodifieddate": stamp(company["updated"]),
            },
            "createdAt": stamp(company["created"]),
            "updatedAt": stamp(company["updated"]),
            "archived": False,
        }

    def _page(self, request: Request, rows: list[dict[str, Any]], view: Any) -> Response:
        """``limit`` / ``after`` paging by id (owners, companies)."""
        params = request.query_params
        limit = int(params.get("limit", "10")) if params.get("limit", "10").isdigit() else 0
        if not 0 < limit <= LIST_LIMIT:
            raise validation(f"limit must be between 1 and {LIST_LIMIT}")
        after = params.get("after")
        if after is not None:
            rows = [r for r in rows if int(r["id"]) > int(after or 0)]
        body: dict[str, Any] = {"results": [view(r) for r in rows[:limit]]}
        if len(rows) > limit:
            body["paging"] = {"next": {"after": rows[limit - 1]["id"]}}
        return JSONResponse(body)

    # -- associations (v4) ------------------------------------------------------------------
    async def list_associations(self, request: Request) -> Response:
        deal = self.find(request.path_params["id"])
        results = [
            {
                "toObjectId": int(company),
                "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": label or None}
                    for type_id, label in COMPANY_TYPE_IDS.items()
                    if type_id == 341 or position == 0
                ],
            }
            for position, company in enumerate(deal["companies"])
        ]
        return JSONResponse({"results": results})

    async def associate(self, request: Request) -> Response:
        """The default (primary) association: the company becomes the deal's first."""
        deal, company = self.find(request.path_params["id"]), request.path_params["to"]
        if company not in self.collections["companies"]:
            raise not_found(f"No company with id {company}")
        deal["companies"] = [company, *(c for c in deal["companies"] if c != company)]
        self.reindex(deal)
        now = stamp(self.clock.peek())
        result = {
            "from": {"id": deal["id"]},
            "to": {"id": company},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5},
        }
        return JSONResponse(
            {"status": "COMPLETE", "results": [result], "startedAt": now, "completedAt": now}
        )

    async def dissociate(self, request: Request) -> Response:
        deal, company = self.find(request.path_params["id"]), request.path_params["to"]
        deal["companies"] = [c for c in deal["companies"] if c != company]
        self.reindex(deal)
        return Response(status_code=204)

    # -- the portal -------------------------------------------------------------------------
    async def account_details(self, request: Request) -> Response:
        return JSONResponse(
            {
                "portalId": self.portal_id,
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": self.company_currency,
                "additionalCurrencies": list(self.additional_currencies),
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18_000_000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            }
        )

    async def token_info(self, request: Request) -> Response:
        body = await json_body(request)
        if body.get("tokenKey") != self.token:
            raise HubSpotError(400, "Invalid token key", "VALIDATION_ERROR")
        return JSONResponse(
            {
                "userId": 9_000_000,
                "hubId": self.portal_id,
                "appId": 4_000_000,
                "scopes": self.scopes,
            }
        )

    # -- control API ------------------------------------------------------------------------
    async def _ctl_index_lag(self, request: Request) -> Response:
        """``{"seconds": 0}`` turns the search index's lag off (tests), anything else sets it."""
        body = await json_body(request)
        self.index_lag = float(body.get("seconds", 0))
        self.indexed()  # what was pending is due now when the lag is off
        return JSONResponse({"seconds": self.index_lag})

    async def _ctl_account(self, request: Request) -> Response:
        """Portal settings: ``companyCurrency``, ``additionalCurrencies``, ``portalId``,
        ``scopes``, ``dailyLimit`` (the daily budget; ``dailyUsed`` sets what is spent)."""
        body = await json_body(request)
        self.company_currency = str(body.get("companyCurrency", self.company_currency))
        self.additional_currencies = list(
            body.get("additionalCurrencies", self.additional_currencies)
        )
        self.portal_id = int(body.get("portalId", self.portal_id))
        self.scopes = list(body.get("scopes", self.scopes))
        self.daily_limit = int(body.get("dailyLimit", self.daily_limit))
        if "dailyUsed" in body:
            self.daily_used = (self.clock.peek().date(), int(body["dailyUsed"]))
        return JSONResponse({"ok": True, "monotonic": time.monotonic()})
