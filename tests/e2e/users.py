"""People using the vendors' own APIs (not our connectors): they create, edit and delete deals
the way a sales rep's tools would, so scenarios exercise crmsync from the outside."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import httpx

from sync.emulators.reference import CLOSE_CUSTOM_FIELDS, TRUTO_ACCOUNTS

CLOSE_NAME = CLOSE_CUSTOM_FIELDS[0][0]


class VendorUser:
    """Base: an authenticated raw client, cached look-ups (name -> id of a reference list) and
    the single-deal calls, which differ between vendors only in path, verb and envelope."""

    item: ClassVar[str]  # one deal's path, "{}" for its id
    edit_method: ClassVar[str] = "PATCH"
    rows: ClassVar[str] = "results"  # the list envelope's key

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self._cache: dict[str, dict[str, str]] = {}

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code < 300, (
            f"{response.request.method} {response.request.url}"
            f" -> {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def _params(self, **extra: Any) -> dict[str, Any]:
        """Query parameters every call carries (Truto: the integrated account)."""
        return extra

    def _lookup_params(self, path: str) -> dict[str, Any]:
        return self._params(limit=100)

    def _lookup(self, path: str, key: str) -> dict[str, str]:
        if path not in self._cache:
            body = self._ok(self.client.get(path, params=self._lookup_params(path)))
            self._cache[path] = {row[key]: row["id"] for row in body[self.rows]}
        return self._cache[path]

    #: (list path, name key, one company's path, rename verb) of the vendor's companies
    companies: ClassVar[tuple[str, str, str, str]]

    def rename_company(self, name: str, new_name: str) -> None:
        """Rename a company (Ruddr company, Close lead, ParsaLink account, Truto account)
        through the vendor's own API, as a person would."""
        listing, key, item, verb = self.companies
        company_id = self._lookup(listing, key)[name]
        url, body = item.format(company_id), {"name": new_name}
        self._ok(self.client.request(verb, url, params=self._params(), json=body))
        self._cache.pop(listing, None)

    def _deal(self, method: str, deal_id: str, **kw: Any) -> Any:
        url = self.item.format(deal_id)
        return self._ok(self.client.request(method, url, params=self._params(), **kw))

    def edit(self, deal_id: str, **fields: Any) -> dict[str, Any]:
        return dict(self._deal(self.edit_method, deal_id, json=fields))

    def get(self, deal_id: str) -> dict[str, Any]:
        return dict(self._deal("GET", deal_id))

    def delete(self, deal_id: str) -> None:
        self._deal("DELETE", deal_id)


class RuddrUser(VendorUser):
    item = "/opportunities/{}"
    companies = ("/companies", "name", "/companies/{}", "PATCH")

    def create(
        self,
        name: str,
        company: str = "Acme Corp",
        amount: float = 1000.0,
        stage: str = "Prospecting",
        owner: str | None = "john.davis@example.com",
    ) -> str:
        body = {
            "name": name,
            "companyId": self._lookup("/companies", "name")[company],
            "amount": amount,
            "opportunityStageId": self._lookup("/opportunity-stages", "name")[stage],
            "probability": 0.1,
            "closeDate": "2026-06-30",
        }
        if owner is not None:  # Ruddr deals may have no owner
            body["ownerId"] = self._lookup("/members", "email")[owner]
        return str(self._ok(self.client.post("/opportunities", json=body))["id"])

    def all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            body = self._ok(self.client.get("/opportunities", params=params))
            out.extend(body["results"])
            if not body["hasMore"] or not body["results"]:
                return out
            params["startingAfter"] = body["results"][-1]["id"]


class CloseUser(VendorUser):
    item = "/opportunity/{}/"
    companies = ("/lead/", "display_name", "/lead/{}/", "PUT")
    edit_method = "PUT"
    rows = "data"

    def _lookup_params(self, path: str) -> dict[str, Any]:
        return {} if path.startswith("/status/") else {"_limit": 100}

    def create(
        self,
        name: str,
        company: str = "Acme Corp",
        value_cents: int = 100000,
        status: str = "Prospecting",
    ) -> str:
        body = {
            "lead_id": self._lookup("/lead/", "display_name")[company],
            "status_id": self._lookup("/status/opportunity/", "label")[status],
            "value": value_cents,
            "confidence": 10,
            f"custom.{CLOSE_NAME}": name,
        }
        return str(self._ok(self.client.post("/opportunity/", json=body))["id"])

    def all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        skip = 0
        while True:
            body = self._ok(self.client.get("/opportunity/", params={"_skip": skip, "_limit": 100}))
            out.extend(body["data"])
            if not body["has_more"]:
                return out
            skip += 100


class ParsaLinkUser(VendorUser):
    item = "/opportunities/{}/"
    companies = ("/accounts/", "name", "/accounts/{}/", "PATCH")

    def create(
        self,
        name: str,
        company: str = "Acme Corp",
        value: float = 1000.0,
        stage: str = "prospecting",
    ) -> str:
        body = {
            "name": name,
            "accountId": self._lookup("/accounts/", "name")[company],
            "value": value,
            "stage": stage,
            "probability": 10,
        }
        return str(self._ok(self.client.post("/opportunities/", json=body))["id"])

    def all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = "/opportunities/?limit=100"
        while url:
            body = self._ok(self.client.get(url))
            out.extend(body["results"])
            url = body["next"]
        return out


class TrutoUser(VendorUser):
    item = "/opportunities/{}"
    companies = ("/accounts", "name", "/accounts/{}", "PATCH")
    rows = "result"

    def __init__(self, client: httpx.Client, integration: str = "salesforce") -> None:
        super().__init__(client)
        self.integration = integration
        self.account = TRUTO_ACCOUNTS[integration]

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"integrated_account_id": self.account, **extra}

    def create(
        self,
        name: str,
        company: str = "Acme Corp",
        amount: float = 1000.0,
        stage: str | None = None,
    ) -> str:
        """A deal with what the integration requires (seed 001): Salesforce and Capsule a name
        and a stage (by name; Capsule's first milestone is "New"); Close an account and an
        owner, its name in the "Opportunity Name" custom field (Close deals have none)."""
        body: dict[str, Any] = {
            "amount": amount,
            "account": {"id": self._lookup("/accounts", "name")[company]},
            "close_date": dt.datetime(2026, 6, 30, tzinfo=dt.UTC).isoformat(),
        }
        if self.integration == "close":
            body["owner"] = {"id": next(iter(self._lookup("/users", "name").values()))}
            body["custom_fields"] = {CLOSE_NAME: name}
        else:
            body["name"] = name
            default = "New" if self.integration == "capsule" else "Prospecting"
            body["stage"] = {"name": stage or default}
            if self.integration == "salesforce":  # a StageName: its id is its name
                body["stage"] = {"id": stage or default}
        return str(
            self._ok(self.client.post("/opportunities", params=self._params(), json=body))["id"]
        )

    def all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params = self._params(limit=100)
        while True:
            body = self._ok(self.client.get("/opportunities", params=params))
            out.extend(body["result"])
            if not body.get("next_cursor") or not body["result"]:
                return out
            params["next_cursor"] = body["next_cursor"]


class SalesforceUser(VendorUser):
    """A Salesforce user on the REST API (``base_url`` is the instance; fixed session)."""

    api = "/services/data/v59.0"
    item = api + "/sobjects/Opportunity/{}"
    rows = "records"

    def _soql(self, query: str) -> list[dict[str, Any]]:
        body = self._ok(self.client.get(f"{self.api}/query", params={"q": query}))
        rows = list(body["records"])
        while not body["done"]:
            body = self._ok(self.client.get(body["nextRecordsUrl"]))
            rows += body["records"]
        return rows

    def _lookup(self, path: str, key: str) -> dict[str, str]:
        if path not in self._cache:
            rows = self._soql(f"SELECT Id, {key} FROM {path}")
            self._cache[path] = {row[key]: row["Id"] for row in rows}
        return self._cache[path]

    def create(
        self,
        name: str,
        company: str = "Acme Corp",
        amount: float = 1000.0,
        stage: str = "Prospecting",
    ) -> str:
        body = {
            "Name": name,
            "Amount": amount,
            "StageName": stage,
            "AccountId": self._lookup("Account", "Name")[company],
            "CloseDate": "2026-06-30",
        }
        return str(self._ok(self.client.post(f"{self.api}/sobjects/Opportunity", json=body))["id"])

    companies = ("Account", "Name", api + "/sobjects/Account/{}", "PATCH")
    #: the other users' keys, so scenarios over every system read and edit Salesforce alike
    ALIASES: ClassVar[dict[str, str]] = {"id": "Id", "name": "Name", "amount": "Amount"}

    def rename_company(self, name: str, new_name: str) -> None:
        """Rename a Salesforce Account (``PATCH sobjects/Account/{id}``)."""
        account = self._lookup("Account", "Name")[name]
        self._ok(
            self.client.patch(f"{self.api}/sobjects/Account/{account}", json={"Name": new_name})
        )
        self._cache.pop("Account", None)

    def edit(self, deal_id: str, **fields: Any) -> dict[str, Any]:
        body = {self.ALIASES.get(key, key): value for key, value in fields.items()}
        self._deal("PATCH", deal_id, json=body)  # 204: no body
        return self.get(deal_id)

    def _aliased(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, **{alias: row.get(key) for alias, key in self.ALIASES.items() if key in row}}

    def get(self, deal_id: str) -> dict[str, Any]:
        return self._aliased(dict(self._deal("GET", deal_id)))

    def all(self) -> list[dict[str, Any]]:
        rows = self._soql("SELECT Id, Name, Amount, StageName, Crmsync_Id__c FROM Opportunity")
        return [self._aliased(row) for row in rows]


class HubSpotUser(VendorUser):
    """A HubSpot user through the CRM v3 API: properties are strings, companies associations."""

    item = "/crm/v3/objects/deals/{}"

    def _lookup_params(self, path: str) -> dict[str, Any]:
        return {"limit": 100, "properties": "name"} if "companies" in path else {"limit": 100}

    def company_id(self, name: str) -> str:
        rows = self._ok(self.client.get("/crm/v3/objects/companies", params={"limit": 100}))
        return str(next(r["id"] for r in rows["results"] if r["properties"]["name"] == name))

    def rename_company(self, name: str, new_name: str) -> None:
        """Rename a HubSpot company: its name is a property (``PATCH`` of the company)."""
        url = f"/crm/v3/objects/companies/{self.company_id(name)}"
        self._ok(self.client.patch(url, json={"properties": {"name": new_name}}))

    def create(
        self,
        name: str,
        company: str = "Acme Corp",
        amount: float = 1000.0,
        stage: str = "appointmentscheduled",
    ) -> str:
        body = {
            "properties": {
                "dealname": name,
                "amount": f"{amount:g}",
                "dealstage": stage,
                "pipeline": "default",
                "closedate": "2026-06-30",
            },
            "associations": [
                {
                    "to": {"id": self.company_id(company)},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
                }
            ],
        }
        return str(self._ok(self.client.post("/crm/v3/objects/deals", json=body))["id"])

    def edit(self, deal_id: str, **fields: Any) -> dict[str, Any]:
        properties = {k: "" if v is None else str(v) for k, v in fields.items()}
        return dict(self._deal("PATCH", deal_id, json={"properties": properties}))

    def get(self, deal_id: str) -> dict[str, Any]:
        properties = (
            "dealname,amount,dealstage,closedate,description,crmsync_id,hubspot_owner_id,"
            "hs_deal_stage_probability,deal_currency_code"
        )
        deal = self._ok(
            self.client.get(self.item.format(deal_id), params={"properties": properties})
        )
        return {"id": deal["id"], "name": deal["properties"].get("dealname"), **deal["properties"]}

    def stage_probability(self, stage: str) -> float:
        """The probability HubSpot's pipelines give ``stage`` (``metadata.probability``)."""
        pipelines = self._ok(self.client.get("/crm/v3/pipelines/deals"))["results"]
        found = [s for p in pipelines for s in p["stages"] if s["id"] == stage]
        return float(found[0]["metadata"]["probability"])

    def all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100, "properties": "dealname,amount,crmsync_id"}
        while True:
            body = self._ok(self.client.get("/crm/v3/objects/deals", params=params))
            out.extend(
                {"id": d["id"], "name": d["properties"].get("dealname"), **d["properties"]}
                for d in body["results"]
            )
            following = (body.get("paging") or {}).get("next")
            if not following:
                return out
            params["after"] = following["after"]
