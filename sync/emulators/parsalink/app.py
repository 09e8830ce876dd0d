"""The ParsaLink emulator app: routes, rate-limit headers and the endpoints over its records.

The API's rules are in the package docstring (``sync.emulators.parsalink``).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators.base import ALL_METHODS
from sync.emulators.parsalink.auth import ParsaLinkAuth
from sync.emulators.parsalink.common import (
    CLOSED_STAGES,
    DEFAULT_API_KEY,
    NOT_NULL,
    REQUIRED,
    STAGES,
    Invalid,
    Record,
    detail,
    json_body,
    stamp,
)
from sync.emulators.parsalink.listing import (
    choice,
    created_key,
    equals,
    paginate,
    query_date,
    query_number,
)
from sync.emulators.parsalink.validation import ParsaLinkValidation, check_string
from sync.emulators.state import add


class ParsaLinkEmulator(ParsaLinkAuth, ParsaLinkValidation):
    """ParsaLink's opportunities, accounts, users and JWT authentication."""

    vendor: ClassVar[str] = "parsalink"
    prefix: ClassVar[str] = "/api"
    default_rate: ClassVar[float] = 100 / 60  # Starter plan: 100 requests per minute
    default_burst: ClassVar[float] = 100.0

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        full_list_objects: bool = False,
        seed: int = 1,
        seed_opportunities: int = 0,
        rate_limited: bool = False,
    ) -> None:
        self.api_key = api_key
        self.full_list_objects = full_list_objects
        self._secret = f"parsalink-emulator-{seed}".encode()
        self._used_refresh: set[str] = set()
        self._token_count = 0
        self._rng = random.Random(seed)
        super().__init__(
            seed=seed, seed_opportunities=seed_opportunities, rate_limited=rate_limited
        )

    # -- Emulator hooks --------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        routes = {
            "/auth/login/": {"post": self._login},
            "/auth/token/refresh/": {"post": self._refresh},
            "/opportunities/": {"get": self._list_opps, "post": self._create_opp},
            "/opportunities/{id}/": {
                "get": self._get_opp,
                "patch": self._patch_opp,
                "delete": self._delete_opp,
            },
            "/accounts/": {"get": self._list_accounts, "post": self._create_account},
            "/accounts/{id}/": {"get": self._get_account, "patch": self._patch_account},
            "/users/": {"get": self._list_users},
        }
        return [
            *(Route(path, self.dispatch(**h), methods=ALL_METHODS) for path, h in routes.items()),
            Route("/{path:path}", self.not_found, methods=ALL_METHODS),
        ]

    def rate_limited_response(self, retry_in: float) -> Response:
        return detail(429, "Request was throttled.")

    def rate_limit_headers(self, remaining: float, reset_in: float) -> dict[str, str]:
        limit = self.rate_limit
        full_in = (limit.burst - remaining) / limit.rate
        return {
            "X-RateLimit-Limit": str(int(limit.burst)),
            "X-RateLimit-Remaining": str(max(0, math.floor(remaining))),
            "X-RateLimit-Reset": str(math.ceil(time.time() + max(full_in, reset_in))),
        }

    # -- routing helpers -------------------------------------------------------------------
    def not_found_response(self) -> Response:
        return detail(404, "Not found.")

    def method_not_allowed(self, method: str) -> Response:
        return detail(405, f'Method "{method}" not allowed.')

    # -- opportunities ---------------------------------------------------------------------
    async def _list_opps(self, request: Request) -> Response:
        ordered = self.ordered("opportunities", "created", created_key, newest_first=False)
        return paginate(request, self._filter(request, ordered.rows), self._render_summary)

    def _filter(self, request: Request, records: Sequence[Record]) -> Sequence[Record]:
        params = {k: v for k, v in request.query_params.items() if v != ""}
        checks: list[Callable[[Record], bool]] = []
        if "stage" in params:
            stage = choice("stage", params["stage"], STAGES)
            checks.append(lambda r: r["stage"] == stage)
        for key, collection in (("accountId", "accounts"), ("assignedTo", "users")):
            if key in params:
                wanted = choice(key, params[key], self.collections[collection], show=False)
                checks.append(equals(key, wanted))
        if "closeDateAfter" in params:
            after = query_date("closeDateAfter", params["closeDateAfter"])
            checks.append(lambda r: r["closeDate"] is not None and r["closeDate"] > after)
        if "closeDateBefore" in params:
            before = query_date("closeDateBefore", params["closeDateBefore"])
            checks.append(lambda r: r["closeDate"] is not None and r["closeDate"] < before)
        if "valueMin" in params:
            low = query_number("valueMin", params["valueMin"])
            checks.append(lambda r: r["value"] is not None and Decimal(str(r["value"])) >= low)
        if "valueMax" in params:
            high = query_number("valueMax", params["valueMax"])
            checks.append(lambda r: r["value"] is not None and Decimal(str(r["value"])) <= high)
        if "search" in params:
            terms = params["search"].replace(",", " ").lower().split()
            checks.append(lambda r: all(t in r["name"].lower() for t in terms))
        if not checks:
            return records  # no copy: a 100,000-deal scan asks 1,000 times
        return [r for r in records if all(check(r) for check in checks)]

    def _find(self, request: Request, collection: str) -> Record:
        """The record the path names, or DRF's 404."""
        record = self.collections[collection].get(request.path_params["id"])
        if record is None:
            raise Invalid(404, {"detail": "Not found."})
        return record

    async def _get_opp(self, request: Request) -> Response:
        return JSONResponse(self._render(self._find(request, "opportunities")))

    async def _create_opp(self, request: Request) -> Response:
        changes = self._validate(await json_body(request), creating=True)
        now = self.clock.now()
        self._close_bookkeeping(changes, previous_stage="prospecting", today=now.date())
        record = self._opportunity(self._new_id("opp_", now), now, **changes)
        add(self.collections["opportunities"], record)
        return JSONResponse(self._render(record), 201)

    async def _patch_opp(self, request: Request) -> Response:
        record = self._find(request, "opportunities")
        changes = self._validate(await json_body(request), creating=False)
        now = self.clock.now()
        self._close_bookkeeping(changes, previous_stage=record["stage"], today=now.date())
        record.update(changes)
        record["updatedAt"] = stamp(now)
        return JSONResponse(self._render(record))

    async def _delete_opp(self, request: Request) -> Response:
        record = self._find(request, "opportunities")
        del self.collections["opportunities"][record["id"]]
        return Response(status_code=204)

    @staticmethod
    def _close_bookkeeping(changes: Record, *, previous_stage: str, today: dt.date) -> None:
        """Stamp ``closedDate`` on a move to a closed stage and clear it on a reopen."""
        stage = changes.get("stage")
        if stage is None or stage == previous_stage or "closedDate" in changes:
            return
        changes["closedDate"] = today.isoformat() if stage in CLOSED_STAGES else None

    # -- accounts and users ----------------------------------------------------------------
    async def _list_accounts(self, request: Request) -> Response:
        accounts = sorted(
            self.collections["accounts"].values(), key=lambda a: (a["createdAt"], a["id"])
        )
        terms = request.query_params.get("search", "").lower().split()
        accounts = [a for a in accounts if all(t in a["name"].lower() for t in terms)]
        return paginate(request, accounts, dict)

    async def _create_account(self, request: Request) -> Response:
        body = await json_body(request)
        name = body.get("name")
        problem = (
            REQUIRED
            if "name" not in body
            else (NOT_NULL if name is None else check_string(name, 255, blank=False))
        )
        if problem:
            raise Invalid(422, {"detail": "Invalid input.", "name": [problem]})
        now = self.clock.now()
        account = add(
            self.collections["accounts"],
            {
                "id": self._new_id("acc_", now),
                "name": name,
                "createdAt": stamp(now),
                "updatedAt": stamp(now),
            },
        )
        return JSONResponse(dict(account), 201)

    async def _get_account(self, request: Request) -> Response:
        return JSONResponse(dict(self._find(request, "accounts")))

    async def _patch_account(self, request: Request) -> Response:
        """A rename (PATCH, 200 with the object, as for opportunities). Its deals show the
        new ``accountName`` at once; whether their ``updatedAt`` moves is not documented
        (``rename_touches_deals``)."""
        account = self._find(request, "accounts")
        body = await json_body(request)
        if "name" in body:
            name = body["name"]
            problem = NOT_NULL if name is None else check_string(name, 255, blank=False)
            if problem:
                raise Invalid(422, {"detail": "Invalid input.", "name": [problem]})
            account["name"] = name
        now = self.clock.now()
        account["updatedAt"] = stamp(now)
        if self.rename_touches_deals:
            for deal in self.collections["opportunities"].values():
                if deal["accountId"] == account["id"]:
                    deal["updatedAt"] = stamp(now)
        return JSONResponse(dict(account))

    async def _list_users(self, request: Request) -> Response:
        users = sorted(self.collections["users"].values(), key=lambda u: (u["createdAt"], u["id"]))
        return paginate(request, users, dict)
