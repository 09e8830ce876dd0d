"""The Ruddr emulator app: auth, routes, cursor pagination and the endpoints over its records.

The API's rules are in the package docstring (``sync.emulators.ruddr``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators.base import ALL_METHODS, Ordered
from sync.emulators.ruddr.common import DEFAULT_TOKEN, BadRequest, Record, error, stamp
from sync.emulators.ruddr.data import stage_view
from sync.emulators.ruddr.validation import RuddrValidation, check_string
from sync.emulators.state import add


class RuddrEmulator(RuddrValidation):
    """Ruddr's opportunities, companies, members and opportunity stages."""

    vendor: ClassVar[str] = "ruddr"
    prefix: ClassVar[str] = "/api/workspace"
    default_rate: ClassVar[float] = 20.0
    default_burst: ClassVar[float] = 60.0

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        seed: int = 1,
        seed_opportunities: int = 0,
        rate_limited: bool = False,
    ) -> None:
        self.token = token
        self._rng = random.Random(seed)
        super().__init__(
            seed=seed, seed_opportunities=seed_opportunities, rate_limited=rate_limited
        )

    # -- Emulator hooks --------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        return [
            Route(
                "/opportunities",
                self.dispatch(get=self._list_opps, post=self._create_opp),
                methods=ALL_METHODS,
            ),
            Route(
                "/opportunities/{id}",
                self.dispatch(get=self._get_opp, patch=self._patch_opp, delete=self._delete_opp),
                methods=ALL_METHODS,
            ),
            Route(
                "/companies",
                self.dispatch(get=self._list_companies, post=self._create_company),
                methods=ALL_METHODS,
            ),
            Route(
                "/companies/{id}",
                self.dispatch(get=self._get_company, patch=self._patch_company),
                methods=ALL_METHODS,
            ),
            Route("/members", self.dispatch(get=self._list_members), methods=ALL_METHODS),
            Route("/opportunity-stages", self.dispatch(get=self._list_stages), methods=ALL_METHODS),
            Route("/{path:path}", self.not_found, methods=ALL_METHODS),
        ]

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {self.token}":
            return None
        return error(401, "The provided bearer token is missing or invalid.")

    def rate_limited_response(self, retry_in: float) -> Response:
        # Ruddr documents no Retry-After / RateLimit headers; clients back off exponentially.
        return error(429, "Too many requests")

    # -- routing helpers -------------------------------------------------------------------
    def not_found_response(self) -> Response:
        return error(404, "The requested resource was not found.")

    def method_not_allowed(self, method: str) -> Response:
        return error(405, f"The {method} method is not allowed on this resource.")

    def _page(
        self, request: Request, ordered: Ordered, filters: tuple[str, ...] = ()
    ) -> tuple[list[Record], bool]:
        """Cursor pagination over ``ordered`` (``createdAt`` descending, id tiebreak)."""
        params = request.query_params
        allowed = {"startingAfter", "endingBefore", "limit", *filters}
        for key in params:
            if key not in allowed:
                raise BadRequest(f"'{key}' is not a supported query parameter.")
        limit = _limit(params.get("limit"))
        after, before = params.get("startingAfter"), params.get("endingBefore")
        if after is not None and before is not None:
            raise BadRequest("'startingAfter' and 'endingBefore' cannot be used together.")
        rows, position = ordered.rows, ordered.position
        for name, cursor in (("startingAfter", after), ("endingBefore", before)):
            if cursor is not None and cursor not in position:
                raise BadRequest(f"'{name}' must be the ID of an object in this list.")
        if before is not None:
            end = position[before]
            # Going backwards, hasMore says whether newer records remain before this page.
            return list(rows[max(0, end - limit) : end]), end > limit
        start = position[after] + 1 if after is not None else 0
        return list(rows[start : start + limit]), start + limit < len(rows)

    def _list(
        self,
        request: Request,
        records: list[Record] | Ordered,
        render: Callable[[Record], Any],
        filters: tuple[str, ...] = (),
    ) -> JSONResponse:
        ordered = records if isinstance(records, Ordered) else _newest_first(records)
        page, has_more = self._page(request, ordered, filters)
        return JSONResponse({"results": [render(r) for r in page], "hasMore": has_more})

    # -- opportunities ---------------------------------------------------------------------
    async def _list_opps(self, request: Request) -> Response:
        ordered = self.ordered("opportunities", "created", _created_key, newest_first=True)
        return self._list(request, ordered, self._render)

    def _find_opp(self, request: Request) -> Record | None:
        return self.collections["opportunities"].get(request.path_params["id"])

    async def _get_opp(self, request: Request) -> Response:
        record = self._find_opp(request)
        if record is None:
            return error(404, "Opportunity not found.")
        return JSONResponse(self._render(record))

    async def _create_opp(self, request: Request) -> Response:
        body = await json_body(request)
        changes = self._validate(body, creating=True)
        if "opportunityStageId" not in changes:
            changes["opportunityStageId"] = self._default_stage()["id"]
        if "probability" not in changes:
            stage = self.collections["opportunity-stages"][changes["opportunityStageId"]]
            changes["probability"] = stage["probability"]
        record = self._opportunity(self._new_id(), self.clock.now(), **changes)
        add(self.collections["opportunities"], record)
        return JSONResponse(self._render(record))

    async def _patch_opp(self, request: Request) -> Response:
        record = self._find_opp(request)
        if record is None:
            return error(404, "Opportunity not found.")
        changes = self._validate(await json_body(request), creating=False)
        record.update(changes)
        self._touch(record)
        return JSONResponse(self._render(record))

    async def _delete_opp(self, request: Request) -> Response:
        record = self._find_opp(request)
        if record is None:
            return error(404, "Opportunity not found.")
        del self.collections["opportunities"][record["id"]]
        return Response(status_code=204)

    def _default_stage(self) -> Record:
        """The active stage with the lowest probability, as documented (see module docstring)."""
        stages = [s for s in self.collections["opportunity-stages"].values() if s["isActive"]]
        return min(stages, key=lambda s: (s["probability"], s["createdAt"]))

    # -- companies, members, stages --------------------------------------------------------
    async def _list_companies(self, request: Request) -> Response:
        name = request.query_params.get("name")
        records = [
            c for c in self.collections["companies"].values() if name is None or c["name"] == name
        ]
        return self._list(request, records, self._company_full, filters=("name",))

    def _company_full(self, company: Record) -> dict[str, Any]:
        return {**self._company_view(company), "createdAt": company["createdAt"]}

    async def _create_company(self, request: Request) -> Response:
        body = await json_body(request)
        errors = [f"'{k}' is not allowed" for k in body if k not in ("name", "clientId")]
        name = body.get("name") or None
        if name is None:
            errors.append("'name' is required")
        elif problem := check_string("name", name, 255):
            errors.append(problem)
        client_id = body.get("clientId") or None
        if client_id is not None and (problem := self._check_ref("clientId", client_id, "clients")):
            errors.append(problem)
        if errors:
            raise BadRequest("The request body is invalid.", errors)
        company = add(
            self.collections["companies"],
            {
                "id": self._new_id(),
                "name": name,
                "clientId": client_id,
                "createdAt": stamp(self.clock.now()),
            },
        )
        return JSONResponse(self._company_full(company))

    async def _get_company(self, request: Request) -> Response:
        company = self.collections["companies"].get(request.path_params["id"])
        if company is None:
            return error(404, "Company not found.")
        return JSONResponse(self._company_full(company))

    async def _patch_company(self, request: Request) -> Response:
        """Rename a company (PATCH with a partial body, 200 with the full object, as Ruddr
        documents for the opportunity family). Its deals show the new name at once
        (``company{name}`` is rendered from it); whether their ``modifiedAt`` moves is not
        documented: ``rename_touches_deals``."""
        company = self.collections["companies"].get(request.path_params["id"])
        if company is None:
            return error(404, "Company not found.")
        body = await json_body(request)
        errors = [f"'{k}' is not allowed" for k in body if k not in ("name", "clientId")]
        if "name" in body:
            if not body["name"]:
                errors.append("'name' is required")
            elif problem := check_string("name", body["name"], 255):
                errors.append(problem)
        if errors:
            raise BadRequest("The request body is invalid.", errors)
        company.update({k: v for k, v in body.items() if k in ("name", "clientId")})
        if self.rename_touches_deals:
            for deal in self.collections["opportunities"].values():
                if deal["companyId"] == company["id"]:
                    self._touch(deal)
        return JSONResponse(self._company_full(company))

    async def _list_members(self, request: Request) -> Response:
        return self._list(request, list(self.collections["members"].values()), dict)

    async def _list_stages(self, request: Request) -> Response:
        name = request.query_params.get("name")
        records = [
            s
            for s in self.collections["opportunity-stages"].values()
            if name is None or s["name"] == name
        ]
        return self._list(request, records, stage_view, filters=("name",))


def _created_key(record: Record) -> tuple[str, str]:
    return (record["createdAt"], record["id"])


def _newest_first(records: list[Record]) -> Ordered:
    rows = sorted(records, key=_created_key, reverse=True)
    return Ordered(rows, {row["id"]: index for index, row in enumerate(rows)})


def _limit(raw: str | None) -> int:
    if raw is None:
        return 10
    if not re.fullmatch(r"\d+", raw) or not 1 <= int(raw) <= 100:
        raise BadRequest("'limit' must be an integer between 1 and 100.")
    return int(raw)


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise BadRequest("The request body must be valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body
