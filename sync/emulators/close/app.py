"""The Close emulator app: auth, rate limits, routes and the supporting resources' endpoints.

The API's rules are in the package docstring (``sync.emulators.close``).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators.close.common import (
    API_KEY,
    DEFAULT_LIMIT,
    LEAD_KEYS,
    MAX_LIMIT,
    MAX_SKIP,
    CloseError,
    bad_request,
    field_error,
    int_param,
    json_body,
    not_found,
    project,
)
from sync.emulators.close.listing import lead_matcher
from sync.emulators.close.opportunities import OpportunityEndpoints


class CloseEmulator(OpportunityEndpoints):
    """Close's REST API under ``/api/v1`` over an in-memory store (see the module docstring)."""

    vendor: ClassVar[str] = "close"
    prefix: ClassVar[str] = "/api/v1"
    default_rate: ClassVar[float] = 20.0
    default_burst: ClassVar[float] = 20.0

    api_key: str = API_KEY

    # -- auth and rate limits ---------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if not credentials:
            return self._unauthorized("Authentication credentials were not provided.")
        if scheme.lower() == "bearer":
            ok = credentials.strip() == self.api_key
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return self._unauthorized("Invalid Basic authorization header.")
            ok = decoded == f"{self.api_key}:"
        else:
            return self._unauthorized("Unsupported authorization scheme.")
        return None if ok else self._unauthorized("Invalid API key.")

    def _unauthorized(self, message: str) -> Response:
        return JSONResponse(
            {"error": message}, 401, headers={"WWW-Authenticate": 'Basic realm="Close API"'}
        )

    def rate_limit_key(self, request: Request) -> str:
        """Close limits per endpoint group (vendors.md §2.4); one key, so the group is the key."""
        path = request.url.path.removeprefix(self.prefix)
        if path.startswith("/opportunity/"):
            return "opportunity_read" if request.method == "GET" else "opportunity_write"
        if path.startswith("/lead/"):
            return "lead"
        if path.startswith("/event/"):
            return "event"
        return "other"

    def rate_limit_headers(self, remaining: float, reset_in: float) -> dict[str, str]:
        state = self.rate_limit
        full_in = max(reset_in, (state.burst - remaining) / state.rate)
        return {
            "ratelimit": (
                f"limit={int(state.burst)}, remaining={int(remaining)}, reset={math.ceil(full_in)}"
            )
        }

    def rate_limited_response(self, retry_in: float) -> Response:
        body = {
            "error": {
                "rate_reset": round(retry_in, 3),
                "message": "API call count exceeded for this period",
                "rate_limit": int(self.rate_limit.burst),
                "rate_limit_type": "key",
            }
        }
        return JSONResponse(body, 429, headers={"Retry-After": str(max(1, math.ceil(retry_in)))})

    # -- routes ------------------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        routes: list[tuple[str, Callable[[Request], Any], list[str]]] = [
            ("/opportunity/", self._list_opportunities, ["GET"]),
            ("/opportunity/", self._create_opportunity, ["POST"]),
            ("/opportunity/{id}/", self._get_opportunity, ["GET"]),
            ("/opportunity/{id}/", self._update_opportunity, ["PUT"]),
            ("/opportunity/{id}/", self._delete_opportunity, ["DELETE"]),
            ("/status/opportunity/", self._list_statuses, ["GET"]),
            ("/pipeline/", self._list_pipelines, ["GET"]),
            ("/lead/", self._list_leads, ["GET"]),
            ("/lead/", self._create_lead, ["POST"]),
            ("/lead/{id}/", self._get_lead, ["GET"]),
            ("/lead/{id}/", self._update_lead, ["PUT"]),
            ("/user/", self._list_users, ["GET"]),
            ("/user/{id}/", self._get_user, ["GET"]),
            ("/me/", self._get_me, ["GET"]),
            ("/organization/{id}/", self._get_organization, ["GET"]),
            ("/organization/{id}/", self._update_organization, ["PUT"]),
            ("/custom_field/opportunity/", self._list_custom_fields, ["GET"]),
            ("/custom_field/opportunity/{id}/", self._get_custom_field, ["GET"]),
            ("/event/", self._list_events, ["GET"]),
        ]
        return [Route(path, _wrap(handler), methods=methods) for path, handler, methods in routes]

    # -- supporting resources --------------------------------------------------------------------
    async def _list_statuses(self, request: Request) -> Response:
        self._only_params(request, {"_fields"})
        data = [self._render_status(s) for s in self.collections["status"].values()]
        fields = request.query_params.get("_fields")
        return JSONResponse({"data": [project(d, fields) for d in data], "has_more": False})

    async def _list_pipelines(self, request: Request) -> Response:
        self._only_params(request, {"_fields"})
        data = []
        for pipeline in self.collections["pipeline"].values():
            statuses = [
                self._render_status(s)
                for s in self.collections["status"].values()
                if s["pipeline_id"] == pipeline["id"]
            ]
            data.append({**pipeline, "organization_id": self.organization_id, "statuses": statuses})
        fields = request.query_params.get("_fields")
        return JSONResponse({"data": [project(d, fields) for d in data], "has_more": False})

    async def _list_leads(self, request: Request) -> Response:
        self._only_params(request, {"_limit", "_skip", "_fields", "query"})
        params = request.query_params
        limit = int_param(params, "_limit", DEFAULT_LIMIT, MAX_LIMIT)
        skip = int_param(params, "_skip", 0, MAX_SKIP)
        match = lead_matcher(params.get("query", ""))
        leads = sorted(
            (ld for ld in self.collections["lead"].values() if match(ld["name"] or "")),
            key=lambda ld: (ld["date_created"], ld["id"]),
            reverse=True,
        )
        data = [self._render_lead(ld, params.get("_fields")) for ld in leads[skip : skip + limit]]
        return JSONResponse(
            {"data": data, "has_more": skip + limit < len(leads), "total_results": len(leads)}
        )

    async def _create_lead(self, request: Request) -> Response:
        body = await _lead_body(request)
        status_id = body.get("status_id") or next(iter(self.collections["lead_status"]))
        if status_id not in self.collections["lead_status"]:
            raise field_error("status_id", "Invalid lead status.")
        lid = self._untitled_lead(self.clock.now())
        lead = self.collections["lead"][lid]
        lead.update(
            name=body.get("name"),
            description=body.get("description") or "",
            url=body.get("url"),
            status_id=status_id,
        )
        return JSONResponse(self._render_lead(lead))

    async def _get_lead(self, request: Request) -> Response:
        lead = self.collections["lead"].get(request.path_params["id"])
        if lead is None:
            raise not_found("Lead")
        return JSONResponse(self._render_lead(lead, request.query_params.get("_fields")))

    async def _update_lead(self, request: Request) -> Response:
        """``PUT /lead/{id}/`` (spec: "supports non-destructive patches"): a rename. Its deals
        show the new ``lead_name`` at once; whether their ``date_updated`` moves is not
        documented (``rename_touches_deals``)."""
        lead = self.collections["lead"].get(request.path_params["id"])
        if lead is None:
            raise not_found("Lead")
        body = await _lead_body(request)
        if "status_id" in body and body["status_id"] not in self.collections["lead_status"]:
            raise field_error("status_id", "Invalid lead status.")
        now = self.clock.now()
        lead.update(body, date_updated=now, updated_by=self.api_user_id)
        if self.rename_touches_deals:
            for opp in self.collections["opportunity"].values():
                if opp["lead_id"] == lead["id"]:
                    opp["date_updated"] = now
            self._generation += 1
        return JSONResponse(self._render_lead(lead))

    async def _list_users(self, request: Request) -> Response:
        self._only_params(request, {"_limit", "_skip", "_fields", "_order_by"})
        params = request.query_params
        limit = int_param(params, "_limit", DEFAULT_LIMIT, MAX_LIMIT)
        skip = int_param(params, "_skip", 0, MAX_SKIP)
        users = [self._render_user(u) for u in self.collections["user"].values()]
        data = [project(u, params.get("_fields")) for u in users[skip : skip + limit]]
        return JSONResponse({"data": data, "has_more": skip + limit < len(users)})

    async def _get_user(self, request: Request) -> Response:
        user = self.collections["user"].get(request.path_params["id"])
        if user is None:
            raise not_found("User")
        return JSONResponse(self._render_user(user))

    async def _get_me(self, request: Request) -> Response:
        return JSONResponse(self._render_user(self.collections["user"][self.api_user_id]))

    def _organization(self, request: Request) -> dict[str, Any]:
        if request.path_params["id"] != self.organization_id:
            raise not_found("Organization")
        return {
            "id": self.organization_id,
            "name": self.organization_name,
            "currency": self.currency,
            "memberships": [{"user_id": user_id} for user_id in self.collections["user"]],
            "inactive_memberships": [],
        }

    async def _get_organization(self, request: Request) -> Response:
        return JSONResponse(self._organization(request))

    async def _update_organization(self, request: Request) -> Response:
        """``name`` and ``currency`` (spec: "Update an organization's name, currency, …")."""
        self._organization(request)
        body = await json_body(request)
        if "currency" in body:
            code = body["currency"]
            if not (isinstance(code, str) and len(code) == 3 and code.isalpha()):
                raise field_error("currency", "Not a valid currency code.")
            self.currency = code.upper()
        if "name" in body:
            self.organization_name = str(body["name"])
        return JSONResponse(self._organization(request))

    async def _list_custom_fields(self, request: Request) -> Response:
        self._only_params(request, {"_limit", "_skip", "_fields"})
        fields = [self._render_custom_field(f) for f in self.collections["custom_field"].values()]
        wanted = request.query_params.get("_fields")
        return JSONResponse({"data": [project(f, wanted) for f in fields], "has_more": False})

    async def _get_custom_field(self, request: Request) -> Response:
        field = self.collections["custom_field"].get(request.path_params["id"])
        if field is None:
            raise not_found("Custom field")
        return JSONResponse(self._render_custom_field(field))

    def _only_params(self, request: Request, allowed: set[str]) -> None:
        for name in request.query_params:
            if name not in allowed:
                raise bad_request(f"Unknown query parameter: {name}")


# -- module helpers ----------------------------------------------------------------------------
def _wrap(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Turn a raised :class:`CloseError` into Close's error answer."""

    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except CloseError as exc:
            return JSONResponse(exc.body, exc.status)
        return response

    return endpoint


async def _lead_body(request: Request) -> dict[str, Any]:
    """A lead create or update body: known keys only, the text fields strings or null."""
    body = await json_body(request)
    unknown = sorted(set(body) - LEAD_KEYS)
    if unknown:
        raise bad_request(None, **{k: "Unknown field." for k in unknown})
    for key in ("name", "description", "url"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise field_error(key, "Not a valid string.")
    return body
