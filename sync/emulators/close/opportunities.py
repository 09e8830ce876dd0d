"""The Close emulator's opportunity endpoints and event log: listing, reads and writes.

The API's rules are in the package docstring (``sync.emulators.close``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync.emulators.close.common import (
    CREATE_KEYS,
    DEFAULT_LIMIT,
    EVENT_COMBOS,
    EVENT_LIMIT,
    EVENT_RETENTION,
    IN_FILTERS,
    MAX_LIMIT,
    MAX_SKIP,
    ORDERABLE,
    RANGE_OPS,
    STATUS_TYPES,
    UNSUPPORTED_PARAMS,
    UPDATE_KEYS,
    bad_request,
    field_error,
    int_param,
    json_body,
    new_id,
    not_found,
    project,
    tz_of,
)
from sync.emulators.close.listing import (
    INDEXED_STAMPS,
    LISTING_PARAMS,
    StampIndex,
    aggregates,
    cursor_page,
    equals,
    member,
    null_last,
    public_event,
    range_bounds,
    range_checks,
)
from sync.emulators.close.writes import CloseWrites, reject_unknown


class OpportunityEndpoints(CloseWrites):
    """``/opportunity/`` and ``/event/``: the endpoints a sync reads and writes."""

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
        body = await json_body(request)
        tz = tz_of(request)
        reject_unknown(body, CREATE_KEYS, allow_ops=False)
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
        return self._written("created", opp, None, request)

    async def _update_opportunity(self, request: Request) -> Response:
        opp = self._opportunity(request.path_params["id"])
        body = await json_body(request)
        reject_unknown(body, UPDATE_KEYS, allow_ops=True)
        before = self.render_opportunity(opp)
        draft = {**opp, "custom": dict(opp["custom"])}
        draft["status_id"] = self._resolve_status(body, current=opp["status_id"])
        self._apply(draft, body, tz_of(request), previous_status=opp["status_id"])
        draft["date_updated"] = self.clock.now()
        draft["updated_by"] = self.api_user_id
        opp.update(draft)
        return self._written("updated", opp, before, request)

    async def _delete_opportunity(self, request: Request) -> Response:
        opp = self._opportunity(request.path_params["id"])
        before = self.render_opportunity(opp)
        del self.collections["opportunity"][opp["id"]]
        self._generation += 1
        self._log_event("deleted", opp, None, before, request)
        return JSONResponse({})

    def _written(
        self, action: str, opp: dict[str, Any], before: dict[str, Any] | None, request: Request
    ) -> Response:
        """The answer to a create or update, once its event is logged and the indexes stale."""
        self._generation += 1
        data = self.render_opportunity(opp)
        self._log_event(action, opp, data, before, request)
        return JSONResponse(data)

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
