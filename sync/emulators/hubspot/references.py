"""The HubSpot emulator's reference endpoints: pipelines, owners, companies and the v4
deal-to-company associations (https://developers.hubspot.com/docs/api/crm/pipelines,
…/crm/owners, …/crm/companies, …/crm/associations/v4)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync.emulators.hubspot.common import (
    COMPANY_TYPE_IDS,
    LIST_LIMIT,
    json_body,
    not_found,
    stamp,
    validation,
)
from sync.emulators.hubspot.deals import DealEndpoints


class ReferenceEndpoints(DealEndpoints):
    """What deals refer to, as HubSpot lists and changes it."""

    async def list_pipelines(self, request: Request) -> Response:
        self._deal_type(request)
        return JSONResponse({"results": self.pipelines})

    async def get_pipeline(self, request: Request) -> Response:
        self._deal_type(request)
        wanted = request.path_params["pipeline"]
        found = next((p for p in self.pipelines if p["id"] == wanted), None)
        if found is None:
            raise not_found(f"Unable to find pipeline {wanted}")
        return JSONResponse(found)

    def _deal_type(self, request: Request) -> None:
        if request.path_params["type"] not in ("deals", "0-3"):
            raise validation(f"Unsupported object type {request.path_params['type']}")

    async def list_owners(self, request: Request) -> Response:
        owners = sorted(self.collections["owners"].values(), key=lambda o: int(o["id"]))
        email = request.query_params.get("email")
        if email:
            owners = [o for o in owners if o["email"].lower() == email.lower()]
        return self._page(request, owners, lambda o: o)

    async def get_owner(self, request: Request) -> Response:
        owner = self.collections["owners"].get(request.path_params["id"])
        if owner is None:
            raise not_found()
        return JSONResponse(owner)

    async def list_companies(self, request: Request) -> Response:
        companies = sorted(self.collections["companies"].values(), key=lambda c: int(c["id"]))
        return self._page(request, companies, self._company_view)

    async def get_company(self, request: Request) -> Response:
        company = self.collections["companies"].get(request.path_params["id"])
        if company is None:
            raise not_found()
        return JSONResponse(self._company_view(company))

    async def create_company(self, request: Request) -> Response:
        body = await json_body(request)
        props = {str(k): str(v) for k, v in (body.get("properties") or {}).items()}
        if not props.get("name"):
            raise validation("a company needs a name")
        company = self.new_company(props, self.clock.now())
        return JSONResponse(self._company_view(company), 201)

    async def update_company(self, request: Request) -> Response:
        company = self.collections["companies"].get(request.path_params["id"])
        if company is None:
            raise not_found()
        body = await json_body(request)
        props = {str(k): str(v) for k, v in (body.get("properties") or {}).items()}
        if "name" in props and not props["name"].strip():
            raise validation("a company needs a name")
        self.rename_company(company, props)
        return JSONResponse(self._company_view(company))

    def _company_view(self, company: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": company["id"],
            "properties": {
                **company["props"],
                "hs_object_id": company["id"],
                "createdate": stamp(company["created"]),
                "hs_lastmodifieddate": stamp(company["updated"]),
            },
            "createdAt": stamp(company["created"]),
            "updatedAt": stamp(company["updated"]),
            "archived": False,
        }

    def _page(self, request: Request, rows: list[dict[str, Any]], view: Any) -> Response:
        """``limit`` / ``after`` paging by id (owners, companies)."""
        params = request.query_params
        limit = int(params.get("limit", "10")) if params.get("limit", "10").isdigit() else 0
        if not 0 < limit <= LIST_LIMIT:
            raise validation(f"limit must be between 1 and {LIST_LIMIT}")
        after = params.get("after")
        if after is not None:
            rows = [r for r in rows if int(r["id"]) > int(after or 0)]
        body: dict[str, Any] = {"results": [view(r) for r in rows[:limit]]}
        if len(rows) > limit:
            body["paging"] = {"next": {"after": rows[limit - 1]["id"]}}
        return JSONResponse(body)

    # -- associations (v4) ------------------------------------------------------------------
    async def list_associations(self, request: Request) -> Response:
        deal = self.find(request.path_params["id"])
        results = [
            {
                "toObjectId": int(company),
                "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": label or None}
                    for type_id, label in COMPANY_TYPE_IDS.items()
                    if type_id == 341 or position == 0
                ],
            }
            for position, company in enumerate(deal["companies"])
        ]
        return JSONResponse({"results": results})

    async def associate(self, request: Request) -> Response:
        """The default (primary) association: the company becomes the deal's first."""
        deal, company = self.find(request.path_params["id"]), request.path_params["to"]
        if company not in self.collections["companies"]:
            raise not_found(f"No company with id {company}")
        deal["companies"] = [company, *(c for c in deal["companies"] if c != company)]
        self.reindex(deal)
        now = stamp(self.clock.peek())
        result = {
            "from": {"id": deal["id"]},
            "to": {"id": company},
            "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5},
        }
        return JSONResponse(
            {"status": "COMPLETE", "results": [result], "startedAt": now, "completedAt": now}
        )

    async def dissociate(self, request: Request) -> Response:
        deal, company = self.find(request.path_params["id"]), request.path_params["to"]
        deal["companies"] = [c for c in deal["companies"] if c != company]
        self.reindex(deal)
        return Response(status_code=204)
