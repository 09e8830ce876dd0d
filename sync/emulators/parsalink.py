"""ParsaLink CRM API emulator (``/api``).

Written from shared/seeds/003 (https://docs.parsalink.io/api-reference/crm/opportunities) and
shared/vendors.md §6 (introduction https://docs.parsalink.io/api-reference/introduction,
authentication https://docs.parsalink.io/api-reference/authentication). ParsaLink runs Django +
DRF (vendors.md §6), so where its docs are silent the emulator behaves as DRF does by default.

Documented behaviour reproduced: Bearer auth with a workspace API key (``pk_…``) or a JWT from
``POST /api/auth/login/`` (access 1 h, refresh 30 d, refresh tokens rotate on use);
``GET/POST /opportunities/`` and ``GET/PATCH/DELETE /opportunities/{id}/`` answering 200 / 201 /
200 / 204; ``page`` / ``limit`` (max 100) / ``offset`` with ``{count, next, previous, results}``
and absolute ``next`` / ``previous`` URLs; the filters ``stage``, ``accountId``, ``assignedTo``,
``closeDateAfter``, ``closeDateBefore``, ``valueMin``, ``valueMax``, ``search``; the fixed stage
enum; ``probability`` an integer 0-100; ``accountName`` / ``assignedToName`` derived; 422 on
validation; ids ``opp_`` / ``acc_`` / ``usr_`` + ULID; stamps ``2025-03-15T09:30:00Z`` (seconds,
so several writes within one second share a stamp, as on the real API); 100 requests/minute
(Starter plan) with ``X-RateLimit-Reset`` as a Unix timestamp.

Test credentials: API key ``pk_test_parsalink``; every seeded user logs in with the password
``parsalink-demo``, including the demo user ``demo@parsalink.test``.

Stricter behaviour where the docs leave a gap (each choice is deliberate):

- The list returns the *summary* object of the documented list example (no ``closedDate``,
  ``lossReason``, ``assignedToName``, ``contactIds``, ``description``); only
  ``GET /opportunities/{id}/`` returns the full object ("Retrieve full details"). Pass
  ``full_list_objects=True`` to return full objects from lists.
- Ordering is not documented and cannot be chosen: lists come in ``createdAt`` ascending order
  (id tiebreak), which clients must not rely on; an ``ordering`` parameter is ignored.
- Unknown query parameters and unknown / read-only body fields are silently ignored (DRF), so a
  misspelt filter or field does nothing — clients must check what they get back.
- ``limit`` above 100 is clamped to 100 without an error (DRF ``max_page_size``), an invalid or
  non-positive ``limit`` falls back to the default page size of 20, an invalid ``offset`` to 0.
  A ``page`` that is not a positive integer or lies past the last page answers 404
  ``{"detail": "Invalid page."}`` (DRF). With both ``page`` and ``offset``, ``offset`` wins.
- ``closeDateAfter`` / ``closeDateBefore`` are exclusive (strictly after / before) and accept a
  date or an ISO 8601 date-time (its date is used); ``valueMin`` / ``valueMax`` are inclusive;
  records without a close date / value never match those filters. ``search`` matches every
  whitespace-separated term case-insensitively in the name. A ``stage``, ``accountId`` or
  ``assignedTo`` that names nothing answers 400 (django-filter choice validation).
- Validation errors answer 422 with DRF's field map plus DRF's generic ``detail``:
  ``{"detail": "Invalid input.", "name": ["This field is required."]}``. Malformed JSON is 400
  ``{"detail": "JSON parse error - …"}``.
- ``value`` must be a JSON number ≥ 0 with at most 2 decimals (no numeric strings);
  ``probability`` a JSON integer (``40.0`` is refused). ``name`` ≤ 255, ``source`` ≤ 50,
  ``lossReason`` ≤ 255 characters. Defaults: ``stage`` ``prospecting``, ``probability`` 0.
- ``closedDate`` is set to today (server clock, UTC) when a write moves the stage to
  ``closed_won`` / ``closed_lost`` without sending ``closedDate``, and cleared when a write moves
  it back to an open stage.
- The refresh endpoint answers ``{access, refresh}``: the docs show only ``access`` but also say
  the refresh token rotates, so the new refresh token must be returned. A used, expired or
  forged refresh token answers 401.
- 429 bodies are ``{"detail": "Request was throttled."}`` with the ``X-RateLimit-*`` headers and
  no ``Retry-After``. ``X-RateLimit-Limit`` is the window size, ``X-RateLimit-Remaining`` the
  requests left, ``X-RateLimit-Reset`` the wall-clock Unix second at which the window is full
  again (the emulator clock offset is not applied, since the limiter runs on real time).
- ``GET/PATCH /accounts/{id}/`` (a rename) as for opportunities; a rename moves the deals'
  ``updatedAt`` only with ``rename_touches_deals`` (undocumented).
- ``GET /accounts/`` accepts ``search`` (name) like the opportunity list; paths without the
  trailing slash answer 404; methods other than the documented ones answer 405.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from ulid import ULID

from sync.emulators import reference
from sync.emulators.base import ALL_METHODS, Emulator, VendorError, tables

Record = dict[str, Any]

DEFAULT_API_KEY = "pk_test_parsalink"
DEMO_EMAIL = "demo@parsalink.test"
DEMO_PASSWORD = "parsalink-demo"
ACCESS_TTL = dt.timedelta(hours=1)
REFRESH_TTL = dt.timedelta(days=30)
PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
STAGES = reference.PARSALINK_STAGES
CLOSED_STAGES = ("closed_won", "closed_lost")
STAGE_PROBABILITY = {
    "prospecting": 10,
    "qualification": 20,
    "needs_analysis": 30,
    "proposal": 50,
    "negotiation": 70,
    "closed_won": 100,
    "closed_lost": 0,
}
SOURCES = ("inbound", "outbound", "referral", "partner", "event")
LOSS_REASONS = ("Chose competitor — price was primary objection", "No budget", "Went silent")
SUMMARY_FIELDS = (
    "id",
    "name",
    "accountId",
    "accountName",
    "value",
    "stage",
    "probability",
    "closeDate",
    "assignedTo",
    "source",
    "createdAt",
    "updatedAt",
)
STRING_LIMITS = {"name": 255, "lossReason": 255, "source": 50, "description": None}
REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
DATE_FORMAT = "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."


#: Seeded records are dated before this instant, so the same seed gives the same ids and stamps.
SEED_EPOCH = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def seed_epoch(now: dt.datetime) -> dt.datetime:
    """The instant seeded history ends: fixed for determinism, never in the server's future."""
    return min(SEED_EPOCH, now)


def stamp(moment: dt.datetime) -> str:
    """ParsaLink's date-time format: UTC, whole seconds, ``Z`` (``2025-03-15T09:30:00Z``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def detail(status: int, message: str, **extra: Any) -> JSONResponse:
    """DRF's error body ``{"detail": …}``."""
    return JSONResponse({"detail": message, **extra}, status)


class Invalid(VendorError):
    """A DRF-style error answer raised by parsing and validation helpers."""


class ParsaLinkEmulator(Emulator):
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

    def authenticate(self, request: Request) -> Response | None:
        if request.url.path.startswith(f"{self.prefix}/auth/"):
            return None  # login and refresh are how a client gets a token
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return _unauthorized("Authentication credentials were not provided.")
        token = header[7:].strip()
        if hmac.compare_digest(token, self.api_key) or self._claims(token, "access"):
            return None
        return _unauthorized("Given token not valid for any token type", code="token_not_valid")

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

    def reset_state(self, *, seed: int, opportunities: int) -> None:
        self._rng = random.Random(f"parsalink-{seed}")
        self._used_refresh = set()
        self._passwords: dict[str, str] = {}
        self.collections = dict(tables("opportunities", "accounts", "users"))
        self.workspace_id = self._new_id("ws_", dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
        self._seed_reference()
        self.add_opportunities(opportunities, seed)

    def _rep_ids(self) -> list[str]:
        return [uid for uid, u in self.collections["users"].items() if u.get("email") != DEMO_EMAIL]

    def add_opportunities(self, count: int, seed: int) -> None:
        opps = self.collections["opportunities"]
        rng = random.Random(f"parsalink-opps-{seed}-{len(opps)}")
        now = seed_epoch(self.clock.now())
        for _ in range(count):
            record = self._random_opportunity(rng, now)
            opps[record["id"]] = record

    def set_fields(self, collection: str, record_id: str, fields: dict[str, Any]) -> None:
        record = self.collections[collection][record_id]
        unknown = set(fields) - set(record)
        if unknown:
            raise KeyError(f"field {sorted(unknown)[0]}")
        record.update(fields)
        if "updatedAt" not in fields:
            record["updatedAt"] = stamp(self.clock.now())

    # -- reference data --------------------------------------------------------------------
    def _new_id(self, prefix: str, moment: dt.datetime, rng: random.Random | None = None) -> str:
        """``prefix`` + a ULID whose time part is ``moment`` and random part comes from the seed."""
        millis = int(moment.timestamp() * 1000).to_bytes(6, "big")
        return prefix + str(ULID.from_bytes(millis + (rng or self._rng).randbytes(10)))

    def _add(self, collection: str, record: Record) -> Record:
        self.collections[collection][record["id"]] = record
        return record

    def _seed_reference(self) -> None:
        created = dt.datetime(2024, 1, 2, 9, 0, tzinfo=dt.UTC)
        people = [*reference.USERS, ("Parsa Demo", DEMO_EMAIL)]
        for index, (name, email) in enumerate(people):
            first, _, last = name.partition(" ")
            moment = created + dt.timedelta(minutes=index)
            user = self._add(
                "users",
                {
                    "id": self._new_id("usr_", moment),
                    "email": email,
                    "firstName": first,
                    "lastName": last,
                    "role": "admin" if index == 0 else "member",
                    "isActive": True,
                    "createdAt": stamp(moment),
                },
            )
            self._passwords[user["email"]] = DEMO_PASSWORD
        for index, company in enumerate(reference.COMPANIES):
            moment = created + dt.timedelta(hours=1, minutes=index)
            self._add(
                "accounts",
                {
                    "id": self._new_id("acc_", moment),
                    "name": company,
                    "createdAt": stamp(moment),
                    "updatedAt": stamp(moment),
                },
            )

    def _random_opportunity(self, rng: random.Random, now: dt.datetime) -> Record:
        account = rng.choice(list(self.collections["accounts"].values()))
        stage = rng.choice(STAGES)
        created = now - dt.timedelta(seconds=rng.randrange(3600, 400 * 86400))
        updated = created + (now - created) * rng.random()
        closed = stage in CLOSED_STAGES
        return self._opportunity(
            self._new_id("opp_", created, rng),
            created,
            updated,
            name=f"{account['name']} — {rng.choice(reference.DEAL_WORDS)} {rng.randrange(1, 99)}",
            accountId=account["id"],
            value=rng.randrange(1, 400) * 500,
            stage=stage,
            probability=STAGE_PROBABILITY[stage],
            closeDate=(created.date() + dt.timedelta(days=rng.randrange(14, 365))).isoformat(),
            closedDate=updated.date().isoformat() if closed else None,
            lossReason=rng.choice(LOSS_REASONS) if stage == "closed_lost" else None,
            # sales reps only: the API's own demo user owns no deals (other vendors lack it)
            assignedTo=rng.choice(self._rep_ids()) if rng.random() < 0.9 else None,
            source=rng.choice(SOURCES),
        )

    def _opportunity(
        self, opp_id: str, created: dt.datetime, updated: dt.datetime | None = None, **fields: Any
    ) -> Record:
        record: Record = {
            "id": opp_id,
            "name": None,
            "accountId": None,
            "value": None,
            "stage": "prospecting",
            "probability": 0,
            "closeDate": None,
            "closedDate": None,
            "lossReason": None,
            "assignedTo": None,
            "source": None,
            "contactIds": [],
            "description": None,
            "createdAt": stamp(created),
            "updatedAt": stamp(updated or created),
        }
        record.update(fields)
        return record

    # -- rendering -------------------------------------------------------------------------
    def _render(self, r: Record) -> dict[str, Any]:
        """The full object of seed 003's "Get an Opportunity"."""
        account = self.collections["accounts"][r["accountId"]]
        user = self.collections["users"].get(r["assignedTo"] or "")
        return {
            "id": r["id"],
            "name": r["name"],
            "accountId": r["accountId"],
            "accountName": account["name"],
            "value": _number(r["value"]),
            "stage": r["stage"],
            "probability": r["probability"],
            "closeDate": r["closeDate"],
            "closedDate": r["closedDate"],
            "lossReason": r["lossReason"],
            "assignedTo": r["assignedTo"],
            "assignedToName": None if user is None else f"{user['firstName']} {user['lastName']}",
            "source": r["source"],
            "contactIds": list(r["contactIds"]),
            "description": r["description"],
            "createdAt": r["createdAt"],
            "updatedAt": r["updatedAt"],
        }

    def _render_summary(self, r: Record) -> dict[str, Any]:
        """The list item of seed 003's "List Opportunities" example."""
        full = self._render(r)
        return full if self.full_list_objects else {k: full[k] for k in SUMMARY_FIELDS}

    # -- routing helpers -------------------------------------------------------------------
    def not_found_response(self) -> Response:
        return detail(404, "Not found.")

    def method_not_allowed(self, method: str) -> Response:
        return detail(405, f'Method "{method}" not allowed.')

    def _paginate(
        self, request: Request, items: Sequence[Any], render: Callable[[Any], Any]
    ) -> JSONResponse:
        """DRF-style page/limit/offset pagination with absolute next/previous URLs."""
        params, url = request.query_params, request.url
        limit = min(_positive_int(params.get("limit"), PAGE_SIZE), MAX_PAGE_SIZE)
        count = len(items)
        if "offset" in params:
            offset = _positive_int(params.get("offset"), 0, allow_zero=True)
            start = offset
            nxt = _replace(url, "offset", offset + limit) if offset + limit < count else None
            prev = None
            if offset > 0:
                back = offset - limit
                prev = _replace(url, "offset", None if back <= 0 else back)
        else:
            page = _page_number(params.get("page"), max(1, math.ceil(count / limit)))
            start = (page - 1) * limit
            nxt = _replace(url, "page", page + 1) if start + limit < count else None
            prev = None
            if page > 1:
                prev = _replace(url, "page", None if page == 2 else page - 1)
        return JSONResponse(
            {
                "count": count,
                "next": nxt,
                "previous": prev,
                "results": [render(item) for item in items[start : start + limit]],
            }
        )

    # -- authentication --------------------------------------------------------------------
    def _token(self, user_id: str, kind: str, ttl: dt.timedelta) -> str:
        self._token_count += 1
        now = self.clock.peek()
        claims = {
            "token_type": kind,
            "user_id": user_id,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": f"{self._token_count:08d}",
        }
        return _jwt_encode(claims, self._secret)

    def _claims(self, token: str, kind: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired token of ``kind``, else None."""
        claims = _jwt_decode(token, self._secret)
        if claims is None or claims.get("token_type") != kind:
            return None
        if claims.get("user_id") not in self.collections["users"]:
            return None
        return claims if claims.get("exp", 0) > self.clock.peek().timestamp() else None

    def _token_pair(self, user_id: str) -> dict[str, str]:
        return {
            "access": self._token(user_id, "access", ACCESS_TTL),
            "refresh": self._token(user_id, "refresh", REFRESH_TTL),
        }

    async def _login(self, request: Request) -> Response:
        body = await _body(request)
        missing = {k: [REQUIRED] for k in ("email", "password") if not body.get(k)}
        if missing:
            raise Invalid(400, missing)
        user = next(
            (u for u in self.collections["users"].values() if u["email"] == body["email"]), None
        )
        if user is None or self._passwords.get(user["email"]) != body["password"]:
            return detail(401, "No active account found with the given credentials")
        keys = ("id", "email", "firstName", "lastName")
        profile = {**{k: user[k] for k in keys}, "workspaceId": self.workspace_id}
        return JSONResponse({**self._token_pair(user["id"]), "user": profile})

    async def _refresh(self, request: Request) -> Response:
        body = await _body(request)
        token = body.get("refresh")
        if not token or not isinstance(token, str):
            raise Invalid(400, {"refresh": [REQUIRED]})
        claims = self._claims(token, "refresh")
        if claims is None:
            return detail(401, "Token is invalid or expired", code="token_not_valid")
        if claims["jti"] in self._used_refresh:
            return detail(401, "Token is blacklisted", code="token_not_valid")
        self._used_refresh.add(claims["jti"])  # rotation: the old refresh token dies now
        return JSONResponse(self._token_pair(claims["user_id"]))

    # -- opportunities ---------------------------------------------------------------------
    async def _list_opps(self, request: Request) -> Response:
        ordered = self.ordered("opportunities", "created", _created_key, newest_first=False)
        return self._paginate(request, self._filter(request, ordered.rows), self._render_summary)

    def _filter(self, request: Request, records: Sequence[Record]) -> Sequence[Record]:
        params = {k: v for k, v in request.query_params.items() if v != ""}
        checks: list[Callable[[Record], bool]] = []
        if "stage" in params:
            stage = _choice("stage", params["stage"], STAGES)
            checks.append(lambda r: r["stage"] == stage)
        for key, collection in (("accountId", "accounts"), ("assignedTo", "users")):
            if key in params:
                wanted = _choice(key, params[key], self.collections[collection], show=False)
                checks.append(_equals(key, wanted))
        if "closeDateAfter" in params:
            after = _query_date("closeDateAfter", params["closeDateAfter"])
            checks.append(lambda r: r["closeDate"] is not None and r["closeDate"] > after)
        if "closeDateBefore" in params:
            before = _query_date("closeDateBefore", params["closeDateBefore"])
            checks.append(lambda r: r["closeDate"] is not None and r["closeDate"] < before)
        if "valueMin" in params:
            low = _query_number("valueMin", params["valueMin"])
            checks.append(lambda r: r["value"] is not None and Decimal(str(r["value"])) >= low)
        if "valueMax" in params:
            high = _query_number("valueMax", params["valueMax"])
            checks.append(lambda r: r["value"] is not None and Decimal(str(r["value"])) <= high)
        if "search" in params:
            terms = params["search"].replace(",", " ").lower().split()
            checks.append(lambda r: all(t in r["name"].lower() for t in terms))
        if not checks:
            return records  # no copy: a 100,000-deal scan asks 1,000 times
        return [r for r in records if all(check(r) for check in checks)]

    def _find_opp(self, request: Request) -> Record:
        record = self.collections["opportunities"].get(request.path_params["id"])
        if record is None:
            raise Invalid(404, {"detail": "Not found."})
        return record

    async def _get_opp(self, request: Request) -> Response:
        return JSONResponse(self._render(self._find_opp(request)))

    async def _create_opp(self, request: Request) -> Response:
        changes = self._validate(await _body(request), creating=True)
        now = self.clock.now()
        self._close_bookkeeping(changes, previous_stage="prospecting", today=now.date())
        record = self._opportunity(self._new_id("opp_", now), now, **changes)
        self._add("opportunities", record)
        return JSONResponse(self._render(record), 201)

    async def _patch_opp(self, request: Request) -> Response:
        record = self._find_opp(request)
        changes = self._validate(await _body(request), creating=False)
        now = self.clock.now()
        self._close_bookkeeping(changes, previous_stage=record["stage"], today=now.date())
        record.update(changes)
        record["updatedAt"] = stamp(now)
        return JSONResponse(self._render(record))

    async def _delete_opp(self, request: Request) -> Response:
        record = self._find_opp(request)
        del self.collections["opportunities"][record["id"]]
        return Response(status_code=204)

    @staticmethod
    def _close_bookkeeping(changes: Record, *, previous_stage: str, today: dt.date) -> None:
        """Stamp ``closedDate`` on a move to a closed stage and clear it on a reopen."""
        stage = changes.get("stage")
        if stage is None or stage == previous_stage or "closedDate" in changes:
            return
        changes["closedDate"] = today.isoformat() if stage in CLOSED_STAGES else None

    # -- validation ------------------------------------------------------------------------
    def _validate(self, body: dict[str, Any], *, creating: bool) -> Record:
        """DRF serializer validation: known fields only, errors as ``{field: [message]}``."""
        errors: dict[str, list[str]] = {}
        changes: Record = {}
        if creating:
            errors.update({k: [REQUIRED] for k in ("name", "accountId") if k not in body})
        validators: dict[str, Callable[[Any], str | None]] = {
            "name": lambda v: _string(v, 255, blank=False),
            "accountId": lambda v: self._related(v, "accounts"),
            "value": _value,
            "stage": lambda v: None if v in STAGES else f'"{v}" is not a valid choice.',
            "probability": _probability,
            "closeDate": _date,
            "closedDate": _date,
            "lossReason": lambda v: _string(v, 255),
            "assignedTo": lambda v: self._related(v, "users"),
            "source": lambda v: _string(v, 50),
            "contactIds": _contact_ids,
            "description": lambda v: _string(v, None),
        }
        nullable = {
            "value",
            "closeDate",
            "closedDate",
            "lossReason",
            "assignedTo",
            "source",
            "description",
        }
        for key, value in body.items():
            if key not in validators:
                continue  # DRF ignores unknown and read-only fields
            problem = (
                (None if key in nullable else NOT_NULL)
                if value is None
                else (validators[key](value))
            )
            if problem:
                errors[key] = [problem]
            else:
                changes[key] = value
        if errors:
            raise Invalid(422, {"detail": "Invalid input.", **errors})
        return changes

    def _related(self, value: Any, collection: str) -> str | None:
        if isinstance(value, str) and value in self.collections[collection]:
            return None
        return f'Invalid pk "{value}" - object does not exist.'

    # -- accounts and users ----------------------------------------------------------------
    async def _list_accounts(self, request: Request) -> Response:
        accounts = sorted(
            self.collections["accounts"].values(), key=lambda a: (a["createdAt"], a["id"])
        )
        terms = request.query_params.get("search", "").lower().split()
        accounts = [a for a in accounts if all(t in a["name"].lower() for t in terms)]
        return self._paginate(request, accounts, dict)

    async def _create_account(self, request: Request) -> Response:
        body = await _body(request)
        name = body.get("name")
        problem = (
            REQUIRED
            if "name" not in body
            else (NOT_NULL if name is None else _string(name, 255, blank=False))
        )
        if problem:
            raise Invalid(422, {"detail": "Invalid input.", "name": [problem]})
        now = self.clock.now()
        account = self._add(
            "accounts",
            {
                "id": self._new_id("acc_", now),
                "name": name,
                "createdAt": stamp(now),
                "updatedAt": stamp(now),
            },
        )
        return JSONResponse(dict(account), 201)

    def _find_account(self, request: Request) -> Record:
        account = self.collections["accounts"].get(request.path_params["id"])
        if account is None:
            raise Invalid(404, {"detail": "Not found."})
        return account

    async def _get_account(self, request: Request) -> Response:
        return JSONResponse(dict(self._find_account(request)))

    async def _patch_account(self, request: Request) -> Response:
        """A rename (PATCH, 200 with the object, as for opportunities). Its deals show the
        new ``accountName`` at once; whether their ``updatedAt`` moves is not documented
        (``rename_touches_deals``)."""
        account = self._find_account(request)
        body = await _body(request)
        if "name" in body:
            name = body["name"]
            problem = NOT_NULL if name is None else _string(name, 255, blank=False)
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
        return self._paginate(request, users, dict)


# -- module helpers ----------------------------------------------------------------------------
def _created_key(record: Record) -> tuple[Any, str]:
    return (record["createdAt"], record["id"])


def _replace(url: URL, key: str, value: int | None) -> str:
    """DRF's ``replace_query_param`` / ``remove_query_param``: set or drop one parameter and
    re-encode the query with its keys sorted, on the request's absolute URL."""
    query = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != key]
    if value is not None:
        query.append((key, str(value)))
    return str(url.replace(query=urlencode(sorted(query))))


def _equals(key: str, wanted: str) -> Callable[[Record], bool]:
    return lambda record: bool(record[key] == wanted)


def _unauthorized(message: str, **extra: Any) -> JSONResponse:
    response = detail(401, message, **extra)
    response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_encode(claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWT, like the ``eyJ…`` tokens in ParsaLink's authentication docs."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _jwt_decode(token: str, secret: bytes) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64(expected), parts[2]):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise Invalid(400, {"detail": f"JSON parse error - {exc}"}) from None
    if not isinstance(body, dict):
        raise Invalid(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    return body


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _positive_int(raw: str | None, default: int, *, allow_zero: bool = False) -> int:
    """DRF's ``_positive_int``: anything unparsable or out of range gives the default."""
    if raw is None or not re.fullmatch(r"\d+", raw):
        return default
    value = int(raw)
    return value if value > 0 or (allow_zero and value == 0) else default


def _page_number(raw: str | None, last: int) -> int:
    if raw is None:
        return 1
    if raw == "last":
        return last
    if not re.fullmatch(r"\d+", raw) or not 1 <= int(raw) <= last:
        raise Invalid(404, {"detail": "Invalid page."})
    return int(raw)


def _choice(key: str, value: str, choices: Any, *, show: bool = True) -> str:
    if value in choices:
        return value
    shown = value if show else "That choice"
    raise Invalid(
        400, {key: [f"Select a valid choice. {shown} is not one of the available choices."]}
    )


def _query_date(key: str, raw: str) -> str:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return dt.date.fromisoformat(raw).isoformat()
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise Invalid(400, {key: ["Enter a valid date."]}) from None


def _query_number(key: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise Invalid(400, {key: ["Enter a number."]})
    return value


def _string(value: Any, max_length: int | None, *, blank: bool = True) -> str | None:
    if not isinstance(value, str):
        return "Not a valid string."
    if not blank and not value.strip():
        return "This field may not be blank."
    if max_length is not None and len(value) > max_length:
        return f"Ensure this field has no more than {max_length} characters."
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value(value: Any) -> str | None:
    if not _is_number(value) or not math.isfinite(value):
        return "A valid number is required."
    exponent = Decimal(repr(value)).as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return "Ensure that there are no more than 2 decimal places."
    return None if value >= 0 else "Ensure this value is greater than or equal to 0."


def _probability(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return "A valid integer is required."
    if value < 0:
        return "Ensure this value is greater than or equal to 0."
    return None if value <= 100 else "Ensure this value is less than or equal to 100."


def _date(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            dt.date.fromisoformat(value)
            return None
        except ValueError:
            pass
    return DATE_FORMAT


def _contact_ids(value: Any) -> str | None:
    if not isinstance(value, list):
        return f'Expected a list of items but got type "{type(value).__name__}".'
    return None if all(isinstance(v, str) and v for v in value) else "Not a valid string."
