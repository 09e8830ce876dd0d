"""The Salesforce emulator app: OAuth, sessions, the daily allocation and the REST routes.

The API's rules are in the package docstring (``sync.emulators.salesforce``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
from typing import Any, ClassVar
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sync.emulators.salesforce import accounts, collections, windows
from sync.emulators.salesforce.common import (
    CLIENT_ID,
    CLIENT_SECRET,
    EXTERNAL_ID,
    MAX_VERSION,
    MIN_VERSION,
    TOKEN,
    SalesforceError,
    not_found,
)
from sync.emulators.salesforce.records import Records

_METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD"]


class SalesforceEmulator(Records):
    """Salesforce's REST API under ``/services`` over an in-memory org."""

    vendor: ClassVar[str] = "salesforce"
    # the host root, as a config names an instance URL (the connector adds /services itself)
    prefix: ClassVar[str] = ""

    # -- auth --------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.url.path.startswith("/services/oauth2/"):
            return None  # the token endpoint authenticates the client itself
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() in {"bearer", "oauth"} and token:
            if token == TOKEN:
                return None
            expiry = self.sessions.get(token)
            if expiry is not None and self.clock.peek() < expiry:
                return None
        body = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        return JSONResponse(body, 401, headers={"WWW-Authenticate": 'Token realm="Salesforce"'})

    def rate_limited_response(self, retry_in: float) -> Response:
        return self._limit_exceeded()

    def _limit_exceeded(self) -> Response:
        body = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        return JSONResponse(body, 403, headers=self._usage_header())

    # -- the daily allocation (a rolling 24 hours) ---------------------------------------------
    def api_used(self) -> int:
        since = self.clock.peek() - dt.timedelta(hours=24)
        self.api_usage = [(minute, n) for minute, n in self.api_usage if minute > since]
        return sum(n for _, n in self.api_usage)

    def _count_call(self) -> None:
        minute = self.clock.peek().replace(second=0, microsecond=0)
        if self.api_usage and self.api_usage[-1][0] == minute:
            self.api_usage[-1] = (minute, self.api_usage[-1][1] + 1)
        else:
            self.api_usage.append((minute, 1))

    def _usage_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used()}/{self.api_limit}"}

    # -- routes ------------------------------------------------------------------------------
    def vendor_routes(self) -> list[BaseRoute]:
        data = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=_METHODS)])
        data.router.redirect_slashes = False
        return [
            Route("/services/oauth2/token", self._token, methods=["POST"]),
            Route("/services/data", self._versions, methods=["GET"]),
            Mount("/services/data", app=data),
        ]

    def _build_app(self) -> Starlette:
        app = super()._build_app()
        control = Route("/_emulator/salesforce", self._ctl_salesforce, methods=["GET", "POST"])
        app.router.routes.insert(0, control)
        return app

    async def _versions(self, request: Request) -> Response:
        return JSONResponse(
            [
                {"label": f"v{v}.0", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                for v in range(MIN_VERSION, MAX_VERSION + 1)
            ]
        )

    async def _dispatch(self, request: Request) -> Response:
        if self.api_used() >= self.api_limit:
            return self._limit_exceeded()
        self._count_call()
        try:
            response = await self._route(request)
        except SalesforceError as exc:
            status = exc.status
            response = JSONResponse(exc.body(), status)
        response.headers.update(self._usage_header())
        return response

    async def _route(self, request: Request) -> Response:
        path = request.path_params["path"]
        version, _, rest = path.partition("/")
        if not _valid_version(version):
            raise not_found()
        parts = [p for p in rest.split("/") if p]
        method = request.method
        ver = version[1:]
        if parts[:1] in (["query"], ["queryAll"]) and method == "GET":
            return self.run_query(request, ver, parts)
        if parts == ["limits"] and method == "GET":
            return JSONResponse(self.limits())
        if parts[:1] == ["sobjects"]:
            return await self.sobjects(request, ver, parts[1:])
        if parts[:2] == ["composite", "sobjects"]:
            return await self.composite(request, ver, parts[2:])
        raise not_found()

    async def sobjects(self, request: Request, ver: str, parts: list[str]) -> Response:
        method = request.method
        if not parts:
            return JSONResponse({"sobjects": [{"name": n} for n in self.queryable()]})
        kind, rest = parts[0], parts[1:]
        if kind == "Account" and (method, len(rest)) in {("POST", 0), ("PATCH", 1)}:
            if rest:
                accounts.update(self, rest[0], await _body(request))
                return Response(status_code=204)
            row = accounts.create(self, await _body(request))
            return JSONResponse({"id": row["Id"], "success": True, "errors": []}, 201)
        if kind != "Opportunity":
            if len(rest) == 1 and method == "GET":
                return JSONResponse(self.get_other(kind, rest[0], request, ver))
            raise not_found()
        if not rest:
            if method != "POST":
                raise _not_allowed(method, "POST")
            row = self.create(await _body(request))
            return JSONResponse({"id": row["Id"], "success": True, "errors": []}, 201)
        if rest == ["describe"]:
            return JSONResponse(self.describe())
        if rest in (["updated"], ["deleted"]):
            handler = windows.updated if rest == ["updated"] else windows.deleted
            return JSONResponse(handler(self, request.query_params))
        if rest[0] == EXTERNAL_ID and len(rest) == 2:
            return await self.by_external(request, ver, rest[1])
        if len(rest) != 1:
            raise not_found()
        if method == "GET":
            return JSONResponse(self.get_opportunity(rest[0], request, ver))
        if method == "PATCH":
            self.update(rest[0], await _body(request))
            return Response(status_code=204)
        if method == "DELETE":
            self.delete(rest[0])
            return Response(status_code=204)
        raise _not_allowed(method, "GET,PATCH,DELETE")

    async def by_external(self, request: Request, ver: str, value: str) -> Response:
        method = request.method
        if method == "GET":
            matches = self.by_external_id(value)
            if not matches:
                raise not_found()
            if len(matches) > 1:
                return self._several(matches, ver)
            return JSONResponse(self.get_opportunity(matches[0]["Id"], request, ver))
        if method != "PATCH":
            raise _not_allowed(method, "GET,PATCH")
        body = await _body(request)
        if isinstance(body, dict) and body.get(EXTERNAL_ID) not in (None, value):
            raise SalesforceError(
                400, "INVALID_FIELD", f"{EXTERNAL_ID} in the body differs from the URL"
            )
        if request.query_params.get("updateOnly") == "true" and not self.by_external_id(value):
            raise not_found()
        if len(self.by_external_id(value)) > 1:
            return self._several(self.by_external_id(value), ver)
        row, created = collections.upsert(self, value, body if isinstance(body, dict) else {})
        result = {"id": row["Id"], "success": True, "errors": [], "created": created}
        if created:
            return JSONResponse(result, 201)
        return JSONResponse(result, 200) if float(ver) >= 46 else Response(status_code=204)

    def _several(self, rows: list[dict[str, Any]], ver: str) -> Response:
        urls = [f"/services/data/v{ver}/sobjects/Opportunity/{row['Id']}" for row in rows]
        return JSONResponse(urls, 300)

    async def composite(self, request: Request, ver: str, parts: list[str]) -> Response:
        method = request.method
        if float(ver) < 42:
            raise not_found()
        if not parts and method == "DELETE":
            params = request.query_params
            ids = [i for i in params.get("ids", "").split(",") if i]
            if not ids or len(ids) > 200:
                raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "between 1 and 200 ids")
            all_or_none = params.get("allOrNone") == "true"
            return JSONResponse(collections.run(self, ids, all_or_none, collections.delete_one))
        if parts == ["Opportunity"] and method == "GET":
            return JSONResponse(self.read_many(request, ver))
        if parts == ["Opportunity", EXTERNAL_ID] and method == "PATCH" and float(ver) >= 46:
            one = collections.upsert_one
        elif not parts and method in {"POST", "PATCH"}:
            one = collections.create_one if method == "POST" else collections.update_one
        else:
            raise not_found()
        records, all_or_none = collections.records_of(await _body(request))
        return JSONResponse(collections.run(self, records, all_or_none, one))

    # -- OAuth 2.0 client credentials ----------------------------------------------------------
    async def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = None
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            return _oauth_error("invalid_client", "invalid client credentials")
        token = f"{self.org_id[:15]}!{secrets.token_urlsafe(32)}"
        now = self.clock.peek()
        self.sessions[token] = now + dt.timedelta(seconds=self.session_seconds)
        base = str(request.base_url).rstrip("/")
        user = self.running_user
        return JSONResponse(
            {
                "access_token": token,
                "instance_url": base,
                "id": f"{base}/id/{self.org_id}/{user}",
                "token_type": "Bearer",
                "issued_at": str(int(now.timestamp() * 1000)),
                "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
                "scope": "api",
            }
        )

    # -- control -------------------------------------------------------------------------------
    async def _ctl_salesforce(self, request: Request) -> Response:
        """Org switches: ``multi_currency``, ``expire_sessions``, ``session_seconds``,
        ``api_limit``, ``api_used`` (the calls already spent today), ``purge_deleted``,
        ``organization_id`` (serve another org id), ``shared_deals`` (seed the deals Ruddr's
        ``salesforceId`` names: this org is then the one Ruddr's integration is connected to)."""
        raw = await request.body()
        body = json.loads(raw) if raw and request.method == "POST" else {}
        if "organization_id" in body:
            self.organization["Id"] = str(body["organization_id"])
        if body.get("shared_deals"):
            self.seed_shared_deals(self.seed)
        if "multi_currency" in body:
            self.set_multi_currency(bool(body["multi_currency"]))
        if body.get("expire_sessions"):
            self.sessions = dict.fromkeys(self.sessions, self.clock.peek())
        if "session_seconds" in body:
            self.session_seconds = int(body["session_seconds"])
        if "api_limit" in body:
            self.api_limit = int(body["api_limit"])
        if "api_used" in body:
            minute = self.clock.peek().replace(second=0, microsecond=0)
            self.api_usage = [(minute, int(body["api_used"]))]
        if body.get("purge_deleted"):
            windows.purge(self, self.clock.peek())
        return JSONResponse(
            {
                "multi_currency": self.multi_currency,
                "api_used": self.api_used(),
                "api_limit": self.api_limit,
                "sessions": len(self.sessions),
                "organization_id": self.org_id,
            }
        )


def _valid_version(version: str) -> bool:
    if not version.startswith("v") or not version.endswith(".0"):
        return False
    number = version[1:-2]
    return number.isdigit() and MIN_VERSION <= int(number) <= MAX_VERSION


def _not_allowed(method: str, allowed: str) -> SalesforceError:
    return SalesforceError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )


def _oauth_error(error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, 400)


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", "Unexpected character: was expecting a JSON value"
        ) from None
