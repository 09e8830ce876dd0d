"""The deal endpoints: ``/crm/v3/objects/deals`` (also spelled ``/crm/v3/objects/0-3``) —
list, get, create, update, archive, the five batch endpoints and search.

The API's rules are in the package docstring (``sync.emulators.hubspot``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync.emulators.hubspot import search
from sync.emulators.hubspot.common import (
    BATCH_LIMIT,
    COMPANY_TYPE_IDS,
    LIST_LIMIT,
    SEARCH_CAP,
    HubSpotError,
    flag,
    json_body,
    stamp,
    validation,
    wanted_properties,
)
from sync.emulators.hubspot.data import Deal, HubSpotData
from sync.emulators.hubspot.properties import DEFINITIONS, derived, project


class DealEndpoints(HubSpotData):
    """The handlers of the deal routes (routing and auth: ``HubSpotEmulator``)."""

    # -- single deals -----------------------------------------------------------------------
    async def list_deals(self, request: Request) -> Response:
        params = request.query_params
        limit = _int(params.get("limit"), 10, "limit")
        if not 0 < limit <= LIST_LIMIT:
            raise validation(f"limit must be between 1 and {LIST_LIMIT}")
        archived = flag(request, "archived")
        after = params.get("after")
        rows = sorted(
            (d for d in self.collections["deals"].values() if d["archived"] == archived),
            key=lambda d: int(d["id"]),
        )
        if after is not None:
            if not after.isdigit():
                raise validation(f"Invalid after: {after}")
            rows = [d for d in rows if int(d["id"]) > int(after)]
        page = rows[:limit]
        wanted, associations = wanted_properties(request), _associations(request)
        body: dict[str, Any] = {"results": [self.render(d, wanted, associations) for d in page]}
        if len(rows) > limit:
            token = page[-1]["id"]
            body["paging"] = {"next": {"after": token, "link": f"{request.url.path}?after={token}"}}
        return JSONResponse(body)

    async def get_deal(self, request: Request) -> Response:
        deal = self.find(
            request.path_params["id"],
            request.query_params.get("idProperty"),
            archived=flag(request, "archived"),
        )
        rendered = self.render(deal, wanted_properties(request), _associations(request))
        return JSONResponse(rendered)

    async def create_deal_endpoint(self, request: Request) -> Response:
        body = await json_body(request)
        deal = self.create_deal(_properties(body), self._association_targets(body))
        return JSONResponse(self.render(deal, list(body.get("properties") or {})), 201)

    async def update_deal_endpoint(self, request: Request) -> Response:
        body = await json_body(request)
        deal = self.find(request.path_params["id"], request.query_params.get("idProperty"))
        self.update_deal(deal, _properties(body))
        return JSONResponse(self.render(deal, list(body.get("properties") or {})))

    async def archive_deal_endpoint(self, request: Request) -> Response:
        deal = self.lookup(request.path_params["id"], None)
        if deal is not None and not deal["archived"]:
            self.archive_deal(deal)
        return Response(status_code=204)  # archiving a missing deal is not an error

    # -- batches ----------------------------------------------------------------------------
    async def batch_read(self, request: Request) -> Response:
        body = await json_body(request)
        inputs = _inputs(body)
        id_property = body.get("idProperty")
        archived = flag(request, "archived")
        wanted = list(body.get("properties") or []) or None
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        for item in inputs:
            key = str(item.get("id", ""))
            deal = self.lookup(key, id_property)
            if deal is None or deal["archived"] != archived:
                missing.append(key)
            else:
                found.append(self.render(deal, wanted))
        errors = []
        if missing:
            errors.append(
                HubSpotError(
                    404,
                    "Could not get some DEAL objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    "OBJECT_NOT_FOUND",
                ).standard({"ids": missing})
            )
        return self._batch_answer(found, errors, 200)

    async def batch_create(self, request: Request) -> Response:
        inputs = _inputs(await json_body(request))
        results, errors = [], []
        for item in inputs:
            trace = item.get("objectWriteTraceId")
            try:
                deal = self.create_deal(_properties(item), self._association_targets(item))
            except HubSpotError as exc:
                errors.append(exc.standard(_trace(trace)))
                continue
            results.append(self._written(deal, item, trace))
        return self._batch_answer(results, errors, 201)

    async def batch_update(self, request: Request) -> Response:
        inputs = _inputs(await json_body(request), unique_ids=True)
        results, errors = [], []
        for item in inputs:
            key, trace = str(item.get("id", "")), item.get("objectWriteTraceId")
            try:
                deal = self.find(key, item.get("idProperty"))
                self.update_deal(deal, _properties(item))
            except HubSpotError as exc:
                errors.append(exc.standard({"ids": [key], **_trace(trace)}))
                continue
            results.append(self._written(deal, item, trace))
        return self._batch_answer(results, errors, 200)

    async def batch_upsert(self, request: Request) -> Response:
        """By a unique property's value: update the deal holding it, else create one with it."""
        inputs = _inputs(await json_body(request), unique_ids=True)
        results, errors = [], []
        for item in inputs:
            key, trace = str(item.get("id", "")), item.get("objectWriteTraceId")
            id_property = item.get("idProperty")
            try:
                if not id_property:
                    raise validation("idProperty is required for upsert")
                deal = self.lookup(key, str(id_property))
                new = deal is None
                if deal is None:
                    values = {**_properties(item), str(id_property): key}
                    deal = self.create_deal(values, [])
                else:
                    self.update_deal(deal, _properties(item))
            except HubSpotError as exc:
                errors.append(exc.standard({"ids": [key], **_trace(trace)}))
                continue
            results.append({**self._written(deal, item, trace), "new": new})
        return self._batch_answer(results, errors, 200)

    async def batch_archive(self, request: Request) -> Response:
        for item in _inputs(await json_body(request)):
            deal = self.lookup(str(item.get("id", "")), None)
            if deal is not None and not deal["archived"]:
                self.archive_deal(deal)
        return Response(status_code=204)

    def _written(self, deal: Deal, item: dict[str, Any], trace: Any) -> dict[str, Any]:
        out = self.render(deal, list(item.get("properties") or {}))
        if trace:
            out["objectWriteTraceId"] = str(trace)
        return out

    def _batch_answer(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]], ok: int
    ) -> Response:
        now = stamp(self.clock.peek())
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if errors:
            body["errors"], body["numErrors"] = errors, len(errors)
        return JSONResponse(body, 207 if errors else ok)

    # -- search -----------------------------------------------------------------------------
    async def search_deals(self, request: Request) -> Response:
        body = await json_body(request)
        if body.get("query"):
            raise validation("Free-text 'query' is not supported by this emulator.")
        matches = search.matcher(body.get("filterGroups") or [])
        key, descending = search.sort_key(body.get("sorts"))
        offset, limit = search.paging(body)
        rows = [
            props
            for props in (derived(self, d, self.company_currency) for d in self.indexed())
            if matches(props)
        ]
        rows.sort(key=key, reverse=descending)
        end = min(offset + limit, SEARCH_CAP)
        wanted = list(body.get("properties") or []) or None
        page = [self._search_row(props, wanted) for props in rows[offset:end]]
        answer: dict[str, Any] = {"total": len(rows), "results": page}
        if end < len(rows):  # at the cap too: the next request is refused (search.paging)
            answer["paging"] = {"next": {"after": str(end), "link": f"?after={end}"}}
        return JSONResponse(answer)

    def _search_row(self, props: dict[str, str], wanted: list[str] | None) -> dict[str, Any]:
        """A search result from the index's copy (which may lag the deal itself)."""
        return {
            "id": props["hs_object_id"],
            "properties": project(props, wanted),
            "createdAt": props["createdate"],
            "updatedAt": props["hs_lastmodifieddate"],
            "archived": False,
        }

    # -- property definitions ---------------------------------------------------------------
    async def get_property(self, request: Request) -> Response:
        """``GET /crm/v3/properties/deals/{name}``: a deal property's definition."""
        prop = DEFINITIONS.get(request.path_params["name"])
        if prop is None or request.path_params["type"] not in ("deals", "0-3"):
            raise HubSpotError(
                404, f"Property {request.path_params['name']} does not exist", "OBJECT_NOT_FOUND"
            )
        custom = prop.name.startswith("crmsync_")
        return JSONResponse(
            {
                "name": prop.name,
                "label": prop.name,
                "type": prop.kind,
                "fieldType": "text" if prop.kind == "string" else prop.kind,
                "groupName": "dealinformation",
                "hasUniqueValue": prop.unique,
                "calculated": prop.read_only,
                "hubspotDefined": not custom,
                "modificationMetadata": {"readOnlyValue": prop.read_only, "archivable": custom},
            }
        )

    # -- associations, v4 batch ---------------------------------------------------------------
    async def batch_read_associations(self, request: Request) -> Response:
        """``POST /crm/v4/associations/deals/companies/batch/read``: each deal's companies
        (a deal without any is left out of ``results``; an unknown one is in ``errors``)."""
        results, missing = [], []
        for item in _inputs(await json_body(request), limit=1000):
            deal = self.collections["deals"].get(str(item.get("id", "")))
            if deal is None or deal["archived"]:
                missing.append(str(item.get("id", "")))
            elif deal["companies"]:
                to = [
                    {
                        "toObjectId": int(company),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None}
                        ],
                    }
                    for company in deal["companies"]
                ]
                results.append({"from": {"id": deal["id"]}, "to": to})
        errors = []
        if missing:
            errors.append(
                HubSpotError(404, "No deals with these ids", "OBJECT_NOT_FOUND").standard(
                    {"ids": missing}
                )
            )
        return self._batch_answer(results, errors, 200)

    # -- associations given on create -------------------------------------------------------
    def _association_targets(self, body: dict[str, Any]) -> list[str]:
        """The companies a create associates the deal with (``associations`` on create)."""
        targets: list[str] = []
        for item in body.get("associations") or []:
            to = str((item.get("to") or {}).get("id", ""))
            types = item.get("types") or []
            type_ids = {t.get("associationTypeId") for t in types if isinstance(t, dict)}
            if not type_ids or not type_ids <= set(COMPANY_TYPE_IDS):
                raise validation(
                    f"association types {sorted(map(str, type_ids))} are not deal to company"
                )
            if to not in self.collections["companies"]:
                raise validation(f"No company with id {to}", ids=[to])
            targets.append(to)
        return list(dict.fromkeys(targets))


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    props = body.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise validation("properties must be an object")
    return props


def _inputs(
    body: dict[str, Any], *, unique_ids: bool = False, limit: int = BATCH_LIMIT
) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise validation("inputs must be a list of objects")
    if len(inputs) > limit:
        raise validation(f"Batch input size {len(inputs)} exceeds the limit of {limit}.")
    if unique_ids:
        ids = [str(i.get("id", "")) for i in inputs]
        if len(set(ids)) != len(ids):
            raise validation("Duplicate IDs found in batch input")
    return inputs


def _trace(trace: Any) -> dict[str, list[str]]:
    return {"objectWriteTraceId": [str(trace)]} if trace else {}


def _associations(request: Request) -> list[str]:
    values = request.query_params.getlist("associations")
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def _int(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    if not raw.isdigit():
        raise validation(f"{name} must be an integer")
    return int(raw)
