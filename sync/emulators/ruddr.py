"""Ruddr workspace API emulator (``/api/workspace``).

Written from shared/seeds/000 (Ruddr "Create an opportunity",
https://docs.ruddr.io/api-reference/opportunities/create-an-opportunity) and shared/vendors.md §1
(pagination https://docs.ruddr.io/guides/pagination, errors https://docs.ruddr.io/guides/errors,
rate limits https://docs.ruddr.io/guides/rate-limits, conventions
https://docs.ruddr.io/guides/conventions).

Documented behaviour reproduced: Bearer auth with the documented 401 body; lists sorted by
``createdAt`` descending with ``startingAfter`` / ``endingBefore`` / ``limit`` (1-100, default 10)
and ``{"results", "hasMore"}``; full opportunity objects as in seed 000 (nested ``owner``,
``company{client}``, ``opportunityStage{statusId}``, ``opportunityPipeline``, ``weightedAmount``,
read-only ``salesforceId`` / ``hubspotId``); stamps in ISO 8601 UTC with milliseconds and ``Z``;
empty strings become null and an explicit null unsets; 20 req/s with a burst of 60 shared by
the workspace; 429 ``{"status": 429, "message": "Too many requests"}`` with no Retry-After.

Stricter behaviour where the docs leave a gap (each choice is deliberate):

- ``GET /opportunities`` accepts only ``startingAfter``, ``endingBefore`` and ``limit``: the list
  page was never found, so no filter is confirmed (vendors.md §1.2b). Any other query parameter
  (``modifiedAtOnAfter``, ``companyId``…) answers 400 rather than being silently ignored, so a
  connector cannot believe it filtered server-side.
- ``startingAfter`` / ``endingBefore`` must name an existing record of the list: a cursor whose
  record was deleted answers 400, so a scan racing a delete must restart.
- Both cursors at once, a ``limit`` outside 1..100 or not an integer: 400.
- Request bodies may only hold the documented create fields: unknown keys answer 400, and so
  does writing the read-only ``salesforceId`` / ``hubspotId`` (``"'salesforceId' is read-only"``).
- ``opportunityStageId`` defaults to the stage with the lowest probability *as documented*, among
  the workspace's active stages: with the reference stages that is "Closed Lost" (0.0). Clients
  must send a stage; the emulator does not guess a friendlier "first open stage".
- ``probability`` defaults to the chosen stage's probability on create; a PATCH that changes the
  stage leaves ``probability`` alone (clients must send both).
- Non-nullable response fields (``name``, ``companyId``, ``probability``, ``isActive``,
  ``currency``, ``opportunityStageId``) reject null / empty strings with 400.
- ``currency`` must be three upper-case letters; the workspace default is ``USD``.
- ``projects`` must reference existing projects; the seed has none, so any project id is 400.
- ``modifiedAt`` is strictly later than the record's previous ``modifiedAt`` at millisecond
  precision on every write (also on control-API ``set``, which models Ruddr's own integrations).
- ``weightedAmount`` = ``amount`` × ``probability`` rounded to cents; null without an amount.
- ``GET /companies/{id}`` and ``PATCH /companies/{id}`` (a rename) follow the opportunity
  family's conventions; a rename moves the deals' ``modifiedAt`` only with
  ``rename_touches_deals`` (undocumented).
- ``GET /companies`` additionally accepts ``name`` (exact match, the documented string-filter
  naming); ``GET /members`` accepts pagination only.
- ``DELETE`` answers 204 with an empty body; unknown routes answer 404 and other methods 405, both
  with the documented ``{"status", "message"}`` body.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators import reference
from sync.emulators.base import ALL_METHODS, Emulator, Ordered, VendorError, tables

Record = dict[str, Any]

DEFAULT_TOKEN = "ruddr-test-token"
WORKSPACE_CURRENCY = "USD"
PRIORITIES = ("high", "medium", "low")
READ_ONLY = ("salesforceId", "hubspotId")
NULLABLE_STRINGS = {"description": 5000, "nextSteps": 255, "cloudFolderUrl": 1024}
REFERENCE_FIELDS = {  # body field -> collection it must name
    "ownerId": "members",
    "opportunityTypeId": "opportunity-types",
    "opportunityLeadSourceId": "opportunity-lead-sources",
    "practiceId": "practices",
}
WRITABLE = {
    "name",
    "companyId",
    "opportunityStageId",
    "amount",
    "isActive",
    "probability",
    "closeDate",
    "priorityId",
    "currency",
    "tagIds",
    "projects",
    *NULLABLE_STRINGS,
    *REFERENCE_FIELDS,
}
SINGULAR = {
    "companies": "company",
    "clients": "client",
    "members": "member",
    "opportunity-stages": "opportunity stage",
    "opportunity-types": "opportunity type",
    "opportunity-lead-sources": "opportunity lead source",
    "practices": "practice",
    "tags": "tag",
    "projects": "project",
}
OPPORTUNITY_TYPES = ("New Business", "Existing Business", "Renewal")
LEAD_SOURCES = ("Referral", "Website", "Outbound", "Partner")
PRACTICES = ("Consulting", "Implementation")
TAGS = ("Enterprise", "SMB", "Strategic")
DESCRIPTIONS = (
    "Proposal for a new engagement.",
    "Follow-on work after the pilot.",
    None,
    None,
)


#: Seeded records are dated before this instant, so the same seed gives the same ids and stamps.
SEED_EPOCH = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def seed_epoch(now: dt.datetime) -> dt.datetime:
    """The instant seeded history ends: fixed for determinism, never in the server's future."""
    return min(SEED_EPOCH, now)


def stamp(moment: dt.datetime) -> str:
    """Ruddr's date-time format: UTC, milliseconds, ``Z`` (e.g. ``2025-01-15T20:47:03.284Z``)."""
    return (
        moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


def number(value: float | None) -> float | int | None:
    """JSON numbers as Ruddr's JavaScript backend writes them: ``50000``, not ``50000.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parse_stamp(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def error(status: int, message: str, errors: list[str] | None = None) -> JSONResponse:
    """Ruddr's error body (https://docs.ruddr.io/guides/errors)."""
    body: dict[str, Any] = {"status": status, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status)


class BadRequest(VendorError):
    """A 400 with Ruddr's body; raised by parsing and validation helpers."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(400, message)
        self.message = message
        self.errors = errors

    def response(self) -> JSONResponse:
        return error(400, self.message, self.errors)


class RuddrEmulator(Emulator):
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

    def reset_state(self, *, seed: int, opportunities: int) -> None:
        self._rng = random.Random(f"ruddr-{seed}")
        self.collections = dict(
            tables(
                "opportunities",
                "companies",
                "clients",
                "members",
                "opportunity-stages",
                "opportunity-pipelines",
                "opportunity-types",
                "opportunity-lead-sources",
                "practices",
                "tags",
                "projects",
            )
        )
        self._seed_reference()
        self._seed_shared_deals(seed)
        self.add_opportunities(opportunities, seed)

    def add_opportunities(self, count: int, seed: int) -> None:
        opps = self.collections["opportunities"]
        rng = random.Random(f"ruddr-opps-{seed}-{len(opps)}")
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
        if collection == "opportunities" and "modifiedAt" not in fields:
            self._touch(record)

    # -- reference data --------------------------------------------------------------------
    def _new_id(self, rng: random.Random | None = None) -> str:
        return str(uuid.UUID(int=(rng or self._rng).getrandbits(128), version=4))

    def _add(self, collection: str, record: Record) -> Record:
        self.collections[collection][record["id"]] = record
        return record

    def _seed_reference(self) -> None:
        created = stamp(dt.datetime(2024, 1, 2, 9, 0, tzinfo=dt.UTC))
        for name, email in reference.USERS:
            self._add(
                "members",
                {
                    "id": self._new_id(),
                    "name": name,
                    "email": email,
                    "isActive": True,
                    "createdAt": created,
                },
            )
        for company in reference.COMPANIES:
            client = self._add(
                "clients", {"id": self._new_id(), "name": company, "key": slug(company)}
            )
            self._add(
                "companies",
                {
                    "id": self._new_id(),
                    "name": company,
                    "clientId": client["id"],
                    "createdAt": created,
                },
            )
        pipeline = self._add("opportunity-pipelines", {"id": self._new_id(), "name": "Sales"})
        for index, (name, probability, status) in enumerate(reference.RUDDR_STAGES):
            self._add(
                "opportunity-stages",
                {
                    "id": self._new_id(),
                    "name": name,
                    "description": None,
                    "probability": probability,
                    "statusId": status,
                    "isActive": True,
                    "opportunityPipelineId": pipeline["id"],
                    # Distinct stamps so the createdAt-descending list order is stable.
                    "createdAt": stamp(dt.datetime(2024, 1, 2, 9, index, tzinfo=dt.UTC)),
                },
            )
        for collection, names in (
            ("opportunity-types", OPPORTUNITY_TYPES),
            ("opportunity-lead-sources", LEAD_SOURCES),
            ("practices", PRACTICES),
            ("tags", TAGS),
        ):
            for name in names:
                self._add(collection, {"id": self._new_id(), "name": name})

    def _by_name(self, collection: str, key: str, value: str) -> Record:
        return next(r for r in self.collections[collection].values() if r[key] == value)

    def _seed_shared_deals(self, seed: int) -> None:
        """Opportunities linked to Truto's Salesforce deals by the read-only ``salesforceId``."""
        open_stages = [s for s in reference.RUDDR_STAGES if s[2] == "open"]
        now = seed_epoch(self.clock.now())
        for i, deal in enumerate(reference.shared_deals(seed)):
            stage = self._by_name("opportunity-stages", "name", open_stages[deal.stage_index][0])
            created = now - dt.timedelta(days=60 - i, hours=i)
            record = self._opportunity(
                self._new_id(),
                created,
                name=deal.name,
                amount=deal.amount,
                closeDate=deal.close_date.isoformat(),
                companyId=self._by_name("companies", "name", deal.company)["id"],
                ownerId=self._by_name("members", "email", deal.owner_email)["id"],
                opportunityStageId=stage["id"],
                probability=stage["probability"],
                salesforceId=deal.salesforce_id,
                hubspotId=deal.hubspot_id,
            )
            self._add("opportunities", record)

    def _random_opportunity(self, rng: random.Random, now: dt.datetime) -> Record:
        company = rng.choice(list(self.collections["companies"].values()))
        stage = rng.choice(list(self.collections["opportunity-stages"].values()))
        created = now - dt.timedelta(
            seconds=rng.randrange(3600, 400 * 86400), milliseconds=rng.randrange(1000)
        )
        modified = created + (now - created) * rng.random()
        return self._opportunity(
            self._new_id(rng),
            created,
            modified=modified,
            name=f"{company['name']} - {rng.choice(reference.DEAL_WORDS)} {rng.randrange(1, 99)}",
            companyId=company["id"],
            opportunityStageId=stage["id"],
            probability=stage["probability"],
            amount=float(rng.randrange(1, 400) * 500),
            closeDate=(created.date() + dt.timedelta(days=rng.randrange(14, 365))).isoformat(),
            priorityId=rng.choice((*PRIORITIES, None)),
            description=rng.choice(DESCRIPTIONS),
            ownerId=rng.choice(list(self.collections["members"])) if rng.random() < 0.9 else None,
            opportunityTypeId=rng.choice(list(self.collections["opportunity-types"])),
        )

    def _opportunity(
        self,
        opp_id: str,
        created: dt.datetime,
        modified: dt.datetime | None = None,
        **fields: Any,
    ) -> Record:
        """A stored opportunity: writable fields by id plus server-owned fields."""
        record: Record = {
            "id": opp_id,
            "name": None,
            "companyId": None,
            "opportunityStageId": None,
            "description": None,
            "nextSteps": None,
            "amount": None,
            "isActive": True,
            "probability": 0.0,
            "closeDate": None,
            "priorityId": None,
            "currency": WORKSPACE_CURRENCY,
            "ownerId": None,
            "opportunityLeadSourceId": None,
            "opportunityTypeId": None,
            "tagIds": [],
            "practiceId": None,
            "projects": [],
            "cloudFolderUrl": None,
            "createdAt": stamp(created),
            "openDate": created.date().isoformat(),
            "modifiedAt": stamp(modified or created),
            "timeSpent": 0,
            "salesforceId": None,
            "hubspotId": None,
        }
        record.update(fields)
        return record

    def _touch(self, record: Record) -> None:
        """Stamp a write: strictly later than the previous ``modifiedAt`` at ms precision."""
        now = self.clock.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        previous = parse_stamp(record["modifiedAt"])
        record["modifiedAt"] = stamp(max(now, previous + dt.timedelta(milliseconds=1)))

    # -- rendering -------------------------------------------------------------------------
    def _ref(self, collection: str, ref_id: str | None) -> dict[str, Any] | None:
        if ref_id is None:
            return None
        record = self.collections[collection][ref_id]
        return {"id": record["id"], "name": record["name"]}

    def _company_view(self, company: Record) -> dict[str, Any]:
        client = self.collections["clients"].get(company["clientId"] or "")
        return {
            "id": company["id"],
            "name": company["name"],
            "client": None if client is None else dict(client),
        }

    def _render(self, r: Record) -> dict[str, Any]:
        """The full opportunity object of seed 000 (plus ``opportunityPipeline``, §1.2b)."""
        stage = self.collections["opportunity-stages"][r["opportunityStageId"]]
        pipeline = self.collections["opportunity-pipelines"][stage["opportunityPipelineId"]]
        weighted = None if r["amount"] is None else round(r["amount"] * r["probability"], 2)
        return {
            "id": r["id"],
            "name": r["name"],
            "description": r["description"],
            "nextSteps": r["nextSteps"],
            "amount": number(r["amount"]),
            "isActive": r["isActive"],
            "probability": number(r["probability"]),
            "priorityId": r["priorityId"],
            "createdAt": r["createdAt"],
            "openDate": r["openDate"],
            "closeDate": r["closeDate"],
            "modifiedAt": r["modifiedAt"],
            "currency": r["currency"],
            "cloudFolderUrl": r["cloudFolderUrl"],
            "owner": self._ref("members", r["ownerId"]),
            "opportunityType": self._ref("opportunity-types", r["opportunityTypeId"]),
            "opportunityLeadSource": self._ref(
                "opportunity-lead-sources", r["opportunityLeadSourceId"]
            ),
            "company": self._company_view(self.collections["companies"][r["companyId"]]),
            "practice": self._ref("practices", r["practiceId"]),
            "tags": [self._ref("tags", t) for t in r["tagIds"]],
            "opportunityStage": {
                "id": stage["id"],
                "name": stage["name"],
                "statusId": stage["statusId"],
            },
            "opportunityPipeline": {"id": pipeline["id"], "name": pipeline["name"]},
            "projects": [dict(p) for p in r["projects"]],
            "weightedAmount": number(weighted),
            "timeSpent": r["timeSpent"],
            "salesforceId": r["salesforceId"],
            "hubspotId": r["hubspotId"],
        }

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
        body = await _body(request)
        changes = self._validate(body, creating=True)
        if "opportunityStageId" not in changes:
            changes["opportunityStageId"] = self._default_stage()["id"]
        if "probability" not in changes:
            stage = self.collections["opportunity-stages"][changes["opportunityStageId"]]
            changes["probability"] = stage["probability"]
        record = self._opportunity(self._new_id(), self.clock.now(), **changes)
        self._add("opportunities", record)
        return JSONResponse(self._render(record))

    async def _patch_opp(self, request: Request) -> Response:
        record = self._find_opp(request)
        if record is None:
            return error(404, "Opportunity not found.")
        changes = self._validate(await _body(request), creating=False)
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

    # -- validation ------------------------------------------------------------------------
    def _validate(self, body: dict[str, Any], *, creating: bool) -> Record:
        """Check a create/update body; return the stored-field changes or raise BadRequest."""
        errors: list[str] = []
        changes: Record = {}
        for key in body:
            if key in READ_ONLY:
                errors.append(f"'{key}' is read-only")
            elif key not in WRITABLE:
                errors.append(f"'{key}' is not allowed")
        if creating:
            errors += [
                f"'{k}' is required" for k in ("name", "companyId") if body.get(k) in (None, "")
            ]
        for key, value in body.items():
            if key not in WRITABLE or (
                creating and key in ("name", "companyId") and value in (None, "")
            ):
                continue
            value = None if value == "" else value  # documented: empty strings become null
            problem = self._check(key, value)
            if problem:
                errors.append(problem)
            elif value is None and key in ("tagIds", "projects"):
                changes[key] = []  # unsetting a list leaves it empty
            else:
                changes[key] = value
        if errors:
            raise BadRequest("The request body is invalid.", errors)
        return changes

    def _check(self, key: str, value: Any) -> str | None:
        """One field's problem, or None when ``value`` may be stored."""
        if value is None:
            nullable = (
                key in NULLABLE_STRINGS
                or key in REFERENCE_FIELDS
                or key in ("amount", "closeDate", "priorityId", "tagIds", "projects")
            )
            return None if nullable else f"'{key}' cannot be null"
        if key in NULLABLE_STRINGS or key in ("name", "currency"):
            return _check_string(key, value, NULLABLE_STRINGS.get(key, 255))
        checker = {
            "companyId": lambda v: self._check_ref(key, v, "companies"),
            "opportunityStageId": lambda v: self._check_ref(key, v, "opportunity-stages"),
            "amount": lambda v: None if _is_number(v) else f"'{key}' must be a number",
            "isActive": lambda v: None if isinstance(v, bool) else f"'{key}' must be a boolean",
            "probability": _check_probability,
            "closeDate": lambda v: _check_date(key, v),
            "priorityId": lambda v: (
                None if v in PRIORITIES else f"'{key}' must be one of: high, medium, low"
            ),
            "tagIds": lambda v: self._check_refs(key, v, "tags"),
            "projects": self._check_projects,
        }.get(key)
        if checker is not None:
            return checker(value)
        return self._check_ref(key, value, REFERENCE_FIELDS[key])

    def _check_ref(self, key: str, value: Any, collection: str) -> str | None:
        if isinstance(value, str) and value in self.collections[collection]:
            return None
        return f"'{key}' must be the ID of an existing {SINGULAR[collection]}"

    def _check_refs(self, key: str, value: Any, collection: str) -> str | None:
        if not isinstance(value, list):
            return f"'{key}' must be an array"
        problems = [self._check_ref(key, v, collection) for v in value]
        return next((p for p in problems if p), None)

    def _check_projects(self, value: Any) -> str | None:
        if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
            return "'projects' must be an array of objects"
        ids = [p.get("id") for p in value]
        if len(set(ids)) != len(ids):
            return "'projects' IDs must be unique"
        return self._check_refs("projects", ids, "projects")

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
        body = await _body(request)
        errors = [f"'{k}' is not allowed" for k in body if k not in ("name", "clientId")]
        name = body.get("name") or None
        if name is None:
            errors.append("'name' is required")
        elif problem := _check_string("name", name, 255):
            errors.append(problem)
        client_id = body.get("clientId") or None
        if client_id is not None and (problem := self._check_ref("clientId", client_id, "clients")):
            errors.append(problem)
        if errors:
            raise BadRequest("The request body is invalid.", errors)
        company = self._add(
            "companies",
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
        body = await _body(request)
        errors = [f"'{k}' is not allowed" for k in body if k not in ("name", "clientId")]
        if "name" in body:
            if not body["name"]:
                errors.append("'name' is required")
            elif problem := _check_string("name", body["name"], 255):
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
        return self._list(request, records, _stage_view, filters=("name",))


# -- module helpers ----------------------------------------------------------------------------
def _created_key(record: Record) -> tuple[str, str]:
    return (record["createdAt"], record["id"])


def _newest_first(records: list[Record]) -> Ordered:
    rows = sorted(records, key=_created_key, reverse=True)
    return Ordered(rows, {row["id"]: index for index, row in enumerate(rows)})


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _limit(raw: str | None) -> int:
    if raw is None:
        return 10
    if not re.fullmatch(r"\d+", raw) or not 1 <= int(raw) <= 100:
        raise BadRequest("'limit' must be an integer between 1 and 100.")
    return int(raw)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise BadRequest("The request body must be valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_string(key: str, value: Any, max_length: int) -> str | None:
    if not isinstance(value, str):
        return f"'{key}' must be a string"
    if key == "currency":
        return (
            None
            if re.fullmatch(r"[A-Z]{3}", value)
            else ("'currency' must be a 3-letter currency code")
        )
    if len(value) > max_length:
        return f"'{key}' must be at most {max_length} characters"
    return None


def _check_probability(value: Any) -> str | None:
    message = "'probability' must be a number from 0 to 1 with at most four decimals"
    if not _is_number(value):
        return message
    try:
        exact = Decimal(repr(value))
    except InvalidOperation:
        return message
    exponent = exact.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return None if 0 <= exact <= 1 and decimals <= 4 else message


def _check_date(key: str, value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            dt.date.fromisoformat(value)
            return None
        except ValueError:
            pass
    return f"'{key}' must be a date (YYYY-MM-DD)"


def _stage_view(stage: Record) -> dict[str, Any]:
    return {**stage, "probability": number(stage["probability"])}
