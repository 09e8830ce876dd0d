"""Reading records: SOQL query and query-more (snapshot locators), get by id, describe, limits.

The API's rules are in the package docstring (``sync.emulators.salesforce``).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync.emulators.salesforce import soql
from sync.emulators.salesforce.common import (
    EXTERNAL_ID,
    MAX_BATCH,
    MIN_BATCH,
    SalesforceError,
    invalid_field,
    not_found,
)
from sync.emulators.salesforce.data import Row, SalesforceData
from sync.emulators.salesforce.query import Resolved, attributes, execute, render
from sync.emulators.salesforce.windows import expire_deleted

_OPEN_LOCATORS = 500
_OTHER = {"Account": "accounts", "User": "users"}


class Records(SalesforceData):
    """The read side of the API."""

    _locators: OrderedDict[str, tuple[list[Row], int]]

    def run_query(self, request: Request, ver: str, parts: list[str]) -> Response:
        if len(parts) == 2:
            return JSONResponse(self._more(parts[1], ver))
        if len(parts) != 1:
            raise not_found()
        text = request.query_params.get("q")
        if not text:
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string must be provided.")
        parsed = soql.parse(text)
        expire_deleted(self, self.clock.peek())
        rows = execute(parsed, self.schema, parts[0] == "queryAll", ver)
        if parsed.count_only:
            return JSONResponse({"totalSize": len(rows), "done": True, "records": []})
        return JSONResponse(self._page(rows, 0, _batch_size(request), ver, len(rows)))

    def _page(self, rows: list[Row], start: int, batch: int, ver: str, total: int) -> Any:
        end = start + batch
        page: dict[str, Any] = {"totalSize": total, "done": end >= len(rows)}
        if end < len(rows):
            locator = self._locator_for(rows, batch)
            page["nextRecordsUrl"] = f"/services/data/v{ver}/query/{locator}-{end}"
        page["records"] = rows[start:end]
        return page

    def _locator_for(self, rows: list[Row], batch: int) -> str:
        if not hasattr(self, "_locators"):
            self._locators = OrderedDict()
        for locator, (held, _) in self._locators.items():
            if held is rows:
                return locator
        locator = "01g" + secrets.token_hex(8)[:15]
        self._locators[locator] = (rows, batch)
        while len(self._locators) > _OPEN_LOCATORS:
            self._locators.popitem(last=False)
        return locator

    def _more(self, token: str, ver: str) -> Any:
        locator, _, offset = token.rpartition("-")
        held = getattr(self, "_locators", {}).get(locator)
        if held is None or not offset.isdigit():
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        rows, batch = held
        return self._page(rows, int(offset), batch, ver, len(rows))

    # -- single records ---------------------------------------------------------------------
    def get_opportunity(self, record_id: str, request: Request, ver: str) -> Row:
        row = self.live(record_id)
        return self._project("Opportunity", row, request, ver)

    def get_other(self, kind: str, record_id: str, request: Request, ver: str) -> Row:
        if kind not in _OTHER:
            raise not_found()
        row = self.table(_OTHER[kind]).get(record_id)
        if row is None:
            raise not_found()
        return self._project(kind, row, request, ver)

    def _project(self, kind: str, row: Row, request: Request, ver: str) -> Row:
        schema, _ = self.schema(kind)
        wanted = request.query_params.get("fields")
        names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted else list(schema)
        resolved = [Resolved(kind, self.schema, (name,)) for name in names]
        return render(kind, row, resolved, ver)

    def read_many(self, request: Request, ver: str) -> list[Row | None]:
        """``GET /composite/sobjects/Opportunity?ids=…&fields=…`` (≤ 2,000 ids, in order)."""
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not request.query_params.get("fields"):
            raise SalesforceError(400, "MISSING_ARGUMENT", "fields parameter is required")
        if not ids or len(ids) > 2000:
            raise SalesforceError(400, "EXCEEDED_ID_LIMIT", "between 1 and 2000 ids")
        out: list[Row | None] = []
        for record_id in ids:
            row = self.opportunities.get(record_id)
            if row is None or row["IsDeleted"]:
                out.append(None)
            else:
                out.append(self._project("Opportunity", row, request, ver))
        return out

    # -- metadata -----------------------------------------------------------------------------
    def queryable(self) -> list[str]:
        names = ["Opportunity", "Account", "User", "OpportunityStage", "Organization"]
        return names + (["CurrencyType"] if self.multi_currency else [])

    def describe(self) -> dict[str, Any]:
        """The Opportunity describe: fields with type, access, External ID flag, picklists."""
        schema, _ = self.schema("Opportunity")
        fields = []
        for name, field in schema.items():
            item: dict[str, Any] = {
                "name": name,
                "type": field.type,
                "length": field.length,
                "createable": field.writable,
                "updateable": field.writable,
                "externalId": name == EXTERNAL_ID,
                "unique": False,
                "nillable": name not in {"Name", "StageName", "CloseDate", "OwnerId", "Id"},
                "restrictedPicklist": name in {"StageName", "CurrencyIsoCode"},
                "picklistValues": [],
            }
            if name == "StageName":
                item["picklistValues"] = [
                    {"value": s["ApiName"], "label": s["MasterLabel"], "active": s["IsActive"]}
                    for s in self.table("stages").values()
                ]
            fields.append(item)
        return {
            "name": "Opportunity",
            "keyPrefix": "006",
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "replicateable": True,
            "fields": fields,
        }

    def api_used(self) -> int:
        raise NotImplementedError  # the app counts requests

    def limits(self) -> dict[str, Any]:
        used = self.api_used()
        return {"DailyApiRequests": {"Max": self.api_limit, "Remaining": self.api_limit - used}}


def _batch_size(request: Request) -> int:
    """``Sforce-Query-Options: batchSize=N`` (200..2000, default 2000)."""
    header = request.headers.get("sforce-query-options", "")
    for option in header.split(","):
        key, _, value = option.strip().partition("=")
        if key.strip() == "batchSize":
            if not value.strip().isdigit():
                raise invalid_field(f"Invalid batch size: {value}")
            return min(MAX_BATCH, max(MIN_BATCH, int(value)))
    return MAX_BATCH


__all__ = ["Records", "attributes"]
