"""The HubSpot emulator app: auth, the ten-secondly / daily / search budgets, the routes, the
portal's details and the control API (the reference endpoints are in ``references``).

The API's rules are in the package docstring (``sync.emulators.hubspot``).
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators.base import ALL_METHODS, RateLimitState
from sync.emulators.hubspot.common import (
    DAILY,
    SCOPES,
    SEARCH_RATE,
    TEN_SECONDLY,
    TOKEN,
    HubSpotError,
    json_body,
)
from sync.emulators.hubspot.references import ReferenceEndpoints

DEALS = ("/crm/v3/objects/deals", "/crm/v3/objects/0-3")
WRITE_SCOPE = "crm.objects.deals.write"


class HubSpotEmulator(ReferenceEndpoints):
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
