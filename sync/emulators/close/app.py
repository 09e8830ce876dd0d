"""The Close emulator app: auth, rate limits, rendering and the endpoints over ``CloseData``.

The API's rules are in the package docstring (``sync.emulators.close``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import random
from collections.abc import Callable
from typing import Any, ClassVar

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sync.emulators.close.common import (
    API_KEY,
    CREATE_KEYS,
    DEFAULT_LIMIT,
    EVENT_COMBOS,
    EVENT_LIMIT,
    EVENT_RETENTION,
    IN_FILTERS,
    LEAD_KEYS,
    MAX_LIMIT,
    MAX_SKIP,
    ORDERABLE,
    RANGE_OPS,
    STATUS_TYPES,
    UNSUPPORTED_PARAMS,
    UPDATE_KEYS,
    VALUE_PERIODS,
    CloseError,
    bad_request,
    field_error,
    format_cents,
    int_param,
    iso_or_none,
    new_id,
    not_found,
    parse_moment,
    project,
    stamp,
    tz_of,
)
from sync.emulators.close.data import CloseData
from sync.emulators.close.listing import (
    INDEXED_STAMPS,
    LISTING_PARAMS,
    StampIndex,
    aggregates,
    cursor_page,
    equals,
    lead_matcher,
    member,
    null_last,
    public_event,
    range_bounds,
    range_checks,
)


class CloseEmulator(CloseData):
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

    # -- rendering -----------------------------------------------------------------------------
    def render_opportunity(self, opp: dict[str, Any]) -> dict[str, Any]:
        """The ``Opportunity`` schema of the spec, with derived values and flat custom keys."""
        status = self.collections["status"][opp["status_id"]]
        pipeline = self.collections["pipeline"][status["pipeline_id"]]
        lead = self.collections["lead"][opp["lead_id"]]
        value, confidence = opp["value"], opp["confidence"]
        annualized = (
            None if value is None else value * (12 if opp["value_period"] == "monthly" else 1)
        )
        out: dict[str, Any] = {
            "id": opp["id"],
            "organization_id": self.organization_id,
            "lead_id": lead["id"],
            "lead_name": lead["name"],
            "status_id": status["id"],
            "status_label": status["label"],
            "status_type": status["type"],
            "status_display_name": status["label"],
            "pipeline_id": pipeline["id"],
            "pipeline_name": pipeline["name"],
            "user_id": opp["user_id"],
            "user_name": self._user_name(opp["user_id"]),
            "contact_id": opp["contact_id"],
            "contact_name": None,
            "value": value,
            "value_formatted": format_cents(value),
            "value_currency": self.currency,
            "value_period": opp["value_period"],
            "expected_value": None if value is None else round(value * confidence / 100),
            "annualized_value": annualized,
            "annualized_expected_value": (
                None if annualized is None else round(annualized * confidence / 100)
            ),
            "confidence": confidence,
            "note": opp["note"],
            "date_won": iso_or_none(opp["date_won"]),
            "date_lost": iso_or_none(opp["date_lost"]),
            "date_created": stamp(opp["date_created"]),
            "date_updated": stamp(opp["date_updated"]),
            "created_by": opp["created_by"],
            "created_by_name": self._user_name(opp["created_by"]),
            "updated_by": opp["updated_by"],
            "updated_by_name": self._user_name(opp["updated_by"]),
            "attachments": [],
            "integration_links": [],
            "is_stalled": False,
            "stall_status": None,
        }
        for cf_id in sorted(opp["custom"]):
            out[f"custom.{cf_id}"] = opp["custom"][cf_id]
        return out

    def _user_name(self, user_id: str | None) -> str | None:
        user = self.collections["user"].get(user_id or "")
        return f"{user['first_name']} {user['last_name']}" if user else None

    def _render_status(self, status: dict[str, Any]) -> dict[str, Any]:
        pipeline = self.collections["pipeline"][status["pipeline_id"]]
        return {
            "id": status["id"],
            "label": status["label"],
            "type": status["type"],
            "pipeline_id": pipeline["id"],
            "pipeline_name": pipeline["name"],
            "organization_id": self.organization_id,
        }

    def _render_lead(self, lead: dict[str, Any], fields: str | None = None) -> dict[str, Any]:
        """The lead, projected to ``_fields``. Its opportunities (every deal scanned, each of
        its own rendered) only when asked for: a reference listing of a few leads over 500,000
        deals otherwise takes longer than a client waits."""
        if fields and "opportunities" not in {f.strip() for f in fields.split(",")}:
            opps: list[dict[str, Any]] = []
        else:
            opps = [
                o for o in self.collections["opportunity"].values() if o["lead_id"] == lead["id"]
            ]
        status = self.collections["lead_status"][lead["status_id"]]
        rendered = {
            "id": lead["id"],
            "name": lead["name"],
            "display_name": lead["name"] or "Untitled",
            "description": lead["description"],
            "url": lead["url"],
            "status_id": status["id"],
            "status_label": status["label"],
            "organization_id": self.organization_id,
            "html_url": f"https://app.close.com/lead/{lead['id']}/",
            "contact_ids": [],
            "contacts": [],
            "addresses": [],
            "opportunities": [self.render_opportunity(o) for o in opps],
            "tasks": [],
            "primary_email": None,
            "primary_phone": None,
            "date_created": stamp(lead["date_created"]),
            "date_updated": stamp(lead["date_updated"]),
            "created_by": lead["created_by"],
            "created_by_name": self._user_name(lead["created_by"]),
            "updated_by": lead["updated_by"],
            "updated_by_name": self._user_name(lead["updated_by"]),
        }
        return project(rendered, fields)

    def _render_user(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            **user,
            "date_created": stamp(user["date_created"]),
            "date_updated": stamp(user["date_updated"]),
            "organizations": [self.organization_id],
        }

    def _render_custom_field(self, field: dict[str, Any]) -> dict[str, Any]:
        return {
            **field,
            "description": None,
            "editable_with_roles": [],
            "organization_id": self.organization_id,
            "created_by": None,
            "updated_by": None,
            "date_created": stamp(field["date_created"]),
            "date_updated": stamp(field["date_updated"]),
        }

    # -- opportunity handlers ------------------------------------------------------------------
    async def _list_opportunities(self, request: Request) -> Response:
        params = request.query_params
        self._check_params(params)
        limit = int_param(params, "_limit", DEFAULT_LIMIT, MAX_LIMIT)
        skip = int_param(params, "_skip", 0, MAX_SKIP)
        fields = params.get("_fields")
        indexed = self._indexed_page(params, tz_of(request), skip, limit)
        if indexed is not None:
            page, total, sums = indexed
            body: dict[str, Any] = {
                "data": [project(self.render_opportunity(o), fields) for o in page],
                "has_more": skip + limit < total,
                "total_results": total,
                **sums,
            }
            return JSONResponse(body)
        predicate = self._opportunity_filter(params, tz_of(request))
        rendered = [self.render_opportunity(o) for o in self.collections["opportunity"].values()]
        matches = self._sorted([r for r in rendered if predicate(r)], params.get("_order_by"))
        body = {
            "data": [project(r, fields) for r in matches[skip : skip + limit]],
            "has_more": skip + limit < len(matches),
            "total_results": len(matches),
            **aggregates(matches),
        }
        return JSONResponse(body)

    def _indexed_page(
        self, params: QueryParams, tz: dt.timezone, skip: int, limit: int
    ) -> tuple[list[dict[str, Any]], int, dict[str, Any]] | None:
        """The common listing — ordered by ``date_created`` or ``date_updated``, filtered at
        most by a range on that same stamp — from a sorted index: a page costs O(page + log N)
        instead of rendering, filtering and sorting every opportunity (O(N) per page, O(N²)
        per listing). None for any other listing, which takes the general path."""
        order = (params.get("_order_by") or "-date_created").strip()
        key = order.lstrip("-")
        if "," in order or key not in INDEXED_STAMPS:
            return None
        ranges = {key + op for op in RANGE_OPS}
        if any(name not in ranges and name not in LISTING_PARAMS for name in params):
            return None
        index = self._index(key)
        lo, hi = 0, len(index.stamps)
        for op, bound in range_bounds(params, key, tz):
            lo, hi = index.narrow(op, bound, lo, hi)
        total = max(0, hi - lo)
        if order.startswith("-"):
            positions = range(hi - 1 - skip, max(lo, hi - skip - limit) - 1, -1)
        else:
            positions = range(lo + skip, min(hi, lo + skip + limit))
        opps = self.collections["opportunity"]
        page = [opps[index.ids[i]] for i in positions]
        return page, total, index.aggregates(lo, max(lo, hi))

    def _index(self, key: str) -> StampIndex:
        cached = self._indexes.get(key)
        if cached is None or cached[0] != self._generation:
            opps = list(self.collections["opportunity"].values())
            cached = (self._generation, StampIndex.build(opps, key))
            self._indexes[key] = cached
        return cached[1]

    def _check_params(self, params: QueryParams) -> None:
        known = {"_limit", "_skip", "_fields", "_order_by", "lead_id", "organization_id"}
        known.add("is_stalled")
        known |= {name + suffix for name in IN_FILTERS for suffix in ("", "__in")}
        known |= {
            f"{f}{op}" for f in ("date_created", "date_updated", "date_won") for op in RANGE_OPS
        }
        for name in params:
            if name in UNSUPPORTED_PARAMS:
                raise bad_request(f"The emulator does not implement the '{name}' parameter.")
            if name not in known:
                raise bad_request(f"Unknown query parameter: {name}")

    def _opportunity_filter(
        self, params: QueryParams, tz: dt.timezone
    ) -> Callable[[dict[str, Any]], bool]:
        checks: list[Callable[[dict[str, Any]], bool]] = []
        for name in ("lead_id", "organization_id"):
            if name in params:
                checks.append(equals(name, params[name]))
        for name in IN_FILTERS:
            if name in params:
                checks.append(member(name, {params[name]}))
            if f"{name}__in" in params:
                checks.append(member(name, set(params[f"{name}__in"].split(","))))
        for name in ("status_type", "status_type__in"):
            bad = set(params.get(name, "active").split(",")) - set(STATUS_TYPES)
            if bad:
                raise field_error(name, f"Invalid status type: {', '.join(sorted(bad))}")
        if "is_stalled" in params:
            checks.append(lambda r: str(r["is_stalled"]).lower() == params["is_stalled"].lower())
        for name in ("date_created", "date_updated", "date_won"):
            checks += range_checks(params, name, tz)
        return lambda r: all(check(r) for check in checks)

    def _sorted(self, rows: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
        """Sort by ``_order_by`` (default ``-date_created``), ties broken by id, nulls as in
        PostgreSQL (last ascending, first descending)."""
        keys = [k.strip() for k in (order_by or "-date_created").split(",") if k.strip()]
        for key in keys:
            if key.lstrip("-") not in ORDERABLE:
                raise field_error("_order_by", f"Cannot order by '{key}'.")
        rows = sorted(rows, key=lambda r: r["id"], reverse=keys[0].startswith("-"))
        for key in reversed(keys):
            rows.sort(key=null_last(key.lstrip("-")), reverse=key.startswith("-"))
        return rows

    async def _get_opportunity(self, request: Request) -> Response:
        opp = self._opportunity(request.path_params["id"])
        return JSONResponse(
            project(self.render_opportunity(opp), request.query_params.get("_fields"))
        )

    def _opportunity(self, opp_id: str) -> dict[str, Any]:
        try:
            return self.collections["opportunity"][opp_id]
        except KeyError:
            raise not_found("Opportunity") from None

    async def _create_opportunity(self, request: Request) -> Response:
        body = await _body(request)
        tz = tz_of(request)
        _reject_unknown(body, CREATE_KEYS, allow_ops=False)
        if body.get("lead_id") is None:
            body.pop("lead_id", None)
        now = self.clock.now()
        status_id = self._resolve_status(body, current=None)
        opp: dict[str, Any] = {
            "id": new_id(self._id_rng, "oppo_"),
            "lead_id": None,
            "status_id": status_id,
            "user_id": self.api_user_id,
            "contact_id": None,
            "value": None,
            "value_period": "one_time",
            "confidence": 0,
            "note": "",
            "date_won": None,
            "date_lost": None,
            "date_created": now,
            "date_updated": now,
            "created_by": self.api_user_id,
            "updated_by": self.api_user_id,
            "custom": {},
        }
        self._apply(opp, body, tz, previous_status=None)
        if opp["lead_id"] is None:  # only after validation: a refused create makes no lead
            opp["lead_id"] = self._untitled_lead(now)
        self.collections["opportunity"][opp["id"]] = opp
        self._generation += 1
        data = self.render_opportunity(opp)
        self._log_event("created", opp, data, None, request)
        return JSONResponse(data)

    async def _update_opportunity(self, request: Request) -> Response:
        opp = self._opportunity(request.path_params["id"])
        body = await _body(request)
        _reject_unknown(body, UPDATE_KEYS, allow_ops=True)
        before = self.render_opportunity(opp)
        draft = {**opp, "custom": dict(opp["custom"])}
        draft["status_id"] = self._resolve_status(body, current=opp["status_id"])
        self._apply(draft, body, tz_of(request), previous_status=opp["status_id"])
        draft["date_updated"] = self.clock.now()
        draft["updated_by"] = self.api_user_id
        opp.update(draft)
        self._generation += 1
        data = self.render_opportunity(opp)
        self._log_event("updated", opp, data, before, request)
        return JSONResponse(data)

    async def _delete_opportunity(self, request: Request) -> Response:
        opp = self._opportunity(request.path_params["id"])
        before = self.render_opportunity(opp)
        del self.collections["opportunity"][opp["id"]]
        self._generation += 1
        self._log_event("deleted", opp, None, before, request)
        return JSONResponse({})

    def _resolve_status(self, body: dict[str, Any], current: str | None) -> str:
        """Status + pipeline agreement, per seed 004's ``pipeline_id`` / ``status_id`` notes."""
        statuses = self.collections["status"]
        status_id, pipeline_id = body.get("status_id"), body.get("pipeline_id")
        if status_id is not None and status_id not in statuses:
            raise field_error("status_id", "Invalid opportunity status.")
        if pipeline_id is not None and pipeline_id not in self.collections["pipeline"]:
            raise field_error("pipeline_id", "Pipeline does not exist.")
        if status_id is not None:
            if pipeline_id is not None and statuses[status_id]["pipeline_id"] != pipeline_id:
                raise field_error("status_id", "Status does not belong to the given pipeline.")
            return str(status_id)
        if pipeline_id is not None:
            if current is not None and statuses[current]["pipeline_id"] == pipeline_id:
                return current
            return next(str(s["id"]) for s in statuses.values() if s["pipeline_id"] == pipeline_id)
        return current or next(iter(statuses))

    def _untitled_lead(self, now: dt.datetime) -> str:
        """Close creates a lead when ``lead_id`` is missing (seed 004: shown as "Untitled")."""
        lid = new_id(self._id_rng, "lead_")
        self.collections["lead"][lid] = {
            "id": lid,
            "name": None,
            "description": "",
            "url": None,
            "status_id": next(iter(self.collections["lead_status"])),
            "date_created": now,
            "date_updated": now,
            "created_by": self.api_user_id,
            "updated_by": self.api_user_id,
        }
        return lid

    def _apply(
        self,
        opp: dict[str, Any],
        body: dict[str, Any],
        tz: dt.timezone,
        previous_status: str | None,
    ) -> None:
        """Validate and write the plain fields, the custom fields and the won/lost dates."""
        for key, value in body.items():
            if key.startswith("custom."):
                self._apply_custom(opp["custom"], key, value)
            elif key not in ("status_id", "pipeline_id"):
                opp[key] = self._validate(key, value, tz)
        self._status_dates(opp, body, tz, previous_status)

    def _validate(self, key: str, value: Any, tz: dt.timezone) -> Any:
        validator = FIELD_VALIDATORS.get(key)
        if validator is not None:
            return validator(value)
        if key in ("lead_id", "user_id", "created_by"):
            collection = "lead" if key == "lead_id" else "user"
            if not isinstance(value, str) or value not in self.collections[collection]:
                raise field_error(key, f"Object does not exist: {value!r}")
            return value
        if key == "contact_id":
            if value is not None:
                raise field_error(key, f"Contact does not exist: {value!r}")
            return None
        return self._validate_date(key, value, tz)

    def _validate_date(self, key: str, value: Any, tz: dt.timezone) -> Any:
        if value is None and key == "date_won":
            return None
        if not isinstance(value, str):
            raise field_error(key, "Expected an ISO 8601 date or datetime.")
        try:
            moment = parse_moment(value, tz)
        except ValueError:
            raise field_error(key, "Expected an ISO 8601 date or datetime.") from None
        if key == "date_won":
            # A datetime is accepted (seed 004) and reduced to the date it names.
            return dt.datetime.fromisoformat(value.strip()).date()
        return moment

    def _status_dates(
        self, opp: dict[str, Any], body: dict[str, Any], tz: dt.timezone, previous: str | None
    ) -> None:
        statuses = self.collections["status"]
        new_type = statuses[opp["status_id"]]["type"]
        old_type = statuses[previous]["type"] if previous else None
        becomes_won = new_type == "won" and old_type != "won"
        if becomes_won and opp["date_won"] is None and "date_won" not in body:
            opp["date_won"] = self.clock.peek().astimezone(tz).date()
        if new_type == "lost" and old_type != "lost":
            opp["date_lost"] = self.clock.peek()
        elif new_type != "lost":
            opp["date_lost"] = None

    def _apply_custom(self, custom: dict[str, Any], key: str, value: Any) -> None:
        """``custom.cf_ID`` (set / null unsets), ``custom.cf_ID.add`` / ``.remove`` (multi)."""
        cf_id, _, op = key.removeprefix("custom.").partition(".")
        field = self.collections["custom_field"].get(cf_id)
        if field is None:
            raise field_error(key, "Unknown custom field (use custom.FIELD_ID with a valid id).")
        multi = field["accepts_multiple_values"]
        if op:
            if not multi:
                raise field_error(key, "add/remove requires a field that accepts multiple values.")
            _check_text(key, value)
            current = list(custom.get(cf_id) or [])
            if op == "add" and value not in current:
                current.append(value)
            elif op == "remove" and value in current:
                current.remove(value)
            custom[cf_id] = current
            if not current:
                custom.pop(cf_id)
            return
        if value is None:
            custom.pop(cf_id, None)
        elif multi:
            if not isinstance(value, list):
                raise field_error(key, "This field accepts multiple values; send a list.")
            for item in value:
                _check_text(key, item)
            custom[cf_id] = list(value)
        else:
            _check_text(key, value)
            custom[cf_id] = value

    # -- events ----------------------------------------------------------------------------------
    def _log_event(
        self,
        action: str,
        opp: dict[str, Any],
        data: dict[str, Any] | None,
        before: dict[str, Any] | None,
        request: Request,
    ) -> None:
        """One event per write, as the event log records it (vendors.md §2.5)."""
        now = opp["date_updated"] if data is not None else self.clock.now()
        if action == "updated" and before is not None and data is not None:
            changed = sorted(k for k in {*before, *data} if before.get(k) != data.get(k))
            previous = {k: before.get(k) for k in changed}
        else:
            changed, previous = [], (before or {})
        self._event_seq += 1
        self.events.append(
            {
                "_seq": self._event_seq,
                "_at": now,
                "id": new_id(self._id_rng, "ev_", 22),
                "date_created": stamp(now),
                "date_updated": stamp(now),
                "organization_id": self.organization_id,
                "user_id": self.api_user_id,
                "request_id": new_id(self._id_rng, "req_", 22),
                "api_key_id": new_id(random.Random(self.api_key), "api_", 22),
                "oauth_client_id": None,
                "oauth_scope": None,
                "object_type": "opportunity",
                "object_id": opp["id"],
                "lead_id": opp["lead_id"],
                "action": action,
                "changed_fields": changed,
                "meta": {"request_method": request.method, "request_path": request.url.path},
                "data": data,
                "previous_data": previous,
            }
        )

    async def _list_events(self, request: Request) -> Response:
        params = request.query_params
        filters = {
            k: params[k]
            for k in ("object_type", "object_id", "action", "lead_id", "user_id", "request_id")
            if k in params
        }
        allowed = {*filters, "_cursor", "_limit", "_fields"}
        allowed |= {f"date_updated{op}" for op in RANGE_OPS}
        for name in params:
            if name not in allowed:
                raise bad_request(f"Unsupported parameter for the event log: {name}")
        if frozenset(filters) not in EVENT_COMBOS:
            raise bad_request("This combination of filters is not supported.")
        limit = min(int_param(params, "_limit", EVENT_LIMIT, 10**9), EVENT_LIMIT) or EVENT_LIMIT
        cutoff = self.clock.peek() - EVENT_RETENTION
        times = range_checks(params, "date_updated", tz_of(request))
        matches = [
            e
            for e in self.events
            if e["_at"] >= cutoff
            and all(e[k] == v for k, v in filters.items())
            and all(check(e) for check in times)
        ]
        page, cursor_next, cursor_previous = cursor_page(matches, params.get("_cursor"), limit)
        data = [project(public_event(e), params.get("_fields")) for e in page]
        return JSONResponse(
            {"data": data, "cursor_next": cursor_next, "cursor_previous": cursor_previous}
        )

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
        body = await _body(request)
        unknown = sorted(set(body) - LEAD_KEYS)
        if unknown:
            raise bad_request(None, **{k: "Unknown field." for k in unknown})
        for key in ("name", "description", "url"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise field_error(key, "Not a valid string.")
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
        body = await _body(request)
        unknown = sorted(set(body) - LEAD_KEYS)
        if unknown:
            raise bad_request(None, **{k: "Unknown field." for k in unknown})
        for key in ("name", "description", "url"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise field_error(key, "Not a valid string.")
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
        body = await _body(request)
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


async def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        raise CloseError(415, {"error": "Unsupported media type: send application/json."})
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise bad_request("Invalid JSON body.") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    return body


def _reject_unknown(body: dict[str, Any], allowed: frozenset[str], *, allow_ops: bool) -> None:
    """``additionalProperties: false`` + ``patternProperties: ^custom\\.`` (vendors.md §2.2)."""
    errors = {}
    for key in body:
        if key.startswith("custom."):
            parts = key.split(".")
            ops_ok = allow_ops and len(parts) == 3 and parts[2] in ("add", "remove")
            if not parts[1].startswith("cf_") or not (len(parts) == 2 or ops_ok):
                errors[key] = "Use custom.FIELD_ID with a custom field id."
        elif key not in allowed:
            errors[key] = "Unknown field."
    if errors:
        raise bad_request(None, **errors)


def _int_field(
    name: str, low: int | None, high: int | None, nullable: bool
) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise field_error(name, "Must be an integer.")
        if (low is not None and value < low) or (high is not None and value > high):
            raise field_error(name, f"Must be between {low} and {high}.")
        return value

    return check


def _value_period(value: Any) -> Any:
    if value not in VALUE_PERIODS:
        raise field_error("value_period", f"Must be one of {', '.join(VALUE_PERIODS)}.")
    return value


def _note(value: Any) -> Any:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise field_error("note", "Not a valid string.")
    return value


FIELD_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "value": _int_field("value", None, None, nullable=True),
    "confidence": _int_field("confidence", 0, 100, nullable=False),
    "value_period": _value_period,
    "note": _note,
}


def _check_text(key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise field_error(key, "Not a valid string.")
