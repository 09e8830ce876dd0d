"""HubSpot deals (https://developers.hubspot.com/docs/api/crm/deals).

HubSpot's quirks, each handled here and nowhere else:

- **Auth** is a private app's bearer token (scopes ``crm.objects.deals.read/write``,
  ``crm.objects.companies.read``, ``crm.objects.owners.read``).
- **Every property value is a string**, read and written; a property without a value is left
  out of ``properties``. A record's ``data`` is the properties flat (``dealname``, ``amount``,
  …) plus ``id`` and ``company_id`` (the deal's first associated company), so mapping paths are
  HubSpot's own property names.
- **Capture** is ``search`` on ``hs_lastmodifieddate``, re-windowed before its 10,000-result
  cap (``hubspot_search``). Search lags writes by seconds: the engine's lookback overlaps the
  cursor.
- **Deletes** are archives: search never returns them, ``GET …/deals?archived=true`` lists them
  with ``archivedAt``.
- **Creates are idempotent by crmsync's id**: the mapping's ``record_id`` names a custom property
  with unique values (``options.id_property``, default ``crmsync_id``). A create HubSpot answers
  409 (the id already exists: an earlier attempt whose answer was lost) answers with that deal,
  marked ``existing`` for the engine to adopt; so a create in doubt is simply sent again.
- **Reads by POST** (``search``, ``batch/read``, the v4 associations' batch read) change
  nothing: they are marked read-only, and retried like GETs.
- **Companies** are associations: on create in the body (type 5, primary), on update through
  the v4 default association (the old ones are removed).
- **Limits**: ten-secondly and daily budgets per account, reported in ``X-HubSpot-RateLimit-*``
  headers; a 429's ``policyName`` says which (https://developers.hubspot.com/docs/api/usage-details).
  The headers size the shared limiter and pause a nearly spent day (``hubspot_limits``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from sync.connectors import hubspot_batch, hubspot_refs, hubspot_search, hubspot_setup
from sync.connectors.base import (
    BaseConnector,
    CaptureMode,
    Deletion,
    DerivedField,
    Keep,
    ListingClock,
    Reference,
    SetupFinding,
    VendorRecord,
    error_body,
    kept,
)
from sync.connectors.errors import AuthFailed, ConnectorError
from sync.connectors.hubspot_batch import COMPANY_FIELD, refused_fields, split
from sync.connectors.hubspot_limits import Pacing, policy_wait
from sync.connectors.hubspot_setup import TokenAuth
from sync.timefmt import parse_http_date, parse_optional_timestamp, parse_timestamp, utcnow

DEALS = "/crm/v3/objects/deals"
LIST_PAGE = 100
#: what a capture reads of every deal (custom ones are added from the options)
PROPERTIES = (
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "deal_currency_code",
    "closedate",
    "hubspot_owner_id",
    "description",
    "hs_next_step",
    "hs_priority",
    "dealtype",
    "closed_lost_reason",
    "hs_deal_stage_probability",
    "hs_is_closed_won",
    "hs_is_closed",
    "createdate",
    "hs_lastmodifieddate",
)


class HubSpotConnector(BaseConnector):
    """Deals in one HubSpot portal.

    Options: ``id_property`` (default ``crmsync_id``: a deal property with unique values where
    crmsync keeps its id), ``properties`` (extra deal properties the mapping reads),
    ``portal_id`` (the portal the system is bound to; checked against the token's).
    """

    vendor: ClassVar[str] = "hubspot"
    capture: ClassVar[CaptureMode] = "incremental"
    has_delete_feed: ClassVar[bool] = True
    max_page_size: ClassVar[int] = hubspot_search.SEARCH_PAGE
    batch_limit: ClassVar[int] = 100  # batch/create and batch/update take 100 inputs
    idempotent_by_record_id: ClassVar[bool] = True  # our id's property has unique values
    #: HubSpot computes a deal's probability from its stage (the pipeline stage's
    #: ``metadata.probability``) and refuses a written one (a read-only property, vendors.md
    #: §5.3): the stage alone decides it, so what moves with the stage is never an edit.
    derived: ClassVar[tuple[DerivedField, ...]] = (
        DerivedField(
            "hs_deal_stage_probability",
            "dealstage",
            False,
            "HubSpot computes hs_deal_stage_probability from the deal's stage",
        ),
    )

    def __init__(
        self, system: str, client: httpx.Client, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(system, client, options)
        #: the burst window and daily allowance the answers announce (``hubspot_limits``)
        self.pacing = Pacing(system, self.options)

    def _request(
        self, method: str, url: str, *, record: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        self.pacing.daily.check()
        response = super()._request(method, url, record=record, **kwargs)
        self.pacing.note(response, self.limiter)
        return response

    @property
    def id_property(self) -> str:
        return str(self.options.get("id_property") or "crmsync_id")

    @property
    def record_id_property(self) -> str | None:
        return self.id_property

    def properties(self) -> list[str]:
        extra = [str(p) for p in self.options.get("properties") or []]
        return list(dict.fromkeys([*PROPERTIES, self.id_property, *extra]))

    # -- capture -------------------------------------------------------------------------------
    def list_changed(self, since: dt.datetime) -> Iterator[list[VendorRecord]]:
        """Deals modified at or after ``since``, oldest first (``hubspot_search``)."""
        self.check_portal()
        self.listing_clock = None
        yield from hubspot_search.changed(self, since)

    def search(self, body: dict[str, Any], *, clocked: bool = False) -> dict[str, Any]:
        """One ``POST …/deals/search``; ``clocked``: a listing's, whose first answer's clock
        is the listing's."""
        response = self._request("POST", f"{DEALS}/search", json=body, read=True)
        if clocked and self.listing_clock is None:
            self.listing_clock = ListingClock(
                parse_http_date(response.headers.get("date")), utcnow()
            )
        answer: dict[str, Any] = response.json()
        return answer

    def scan(self) -> Iterator[list[VendorRecord]]:
        """Every deal, through the plain list (100 a page, companies included)."""
        self.check_portal()
        self.listing_clock = None
        for page in self._list_pages(archived=False, clocked=True):
            yield [self.to_record(item) for item in page]

    def _list_pages(
        self, *, archived: bool, clocked: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {
            "limit": LIST_PAGE,
            "properties": ",".join(self.properties()),
            "associations": "companies",
            "archived": str(archived).lower(),
        }
        while True:
            response = self._request("GET", DEALS, params=params)
            if clocked and self.listing_clock is None:
                self.listing_clock = ListingClock(
                    parse_http_date(response.headers.get("date")), utcnow()
                )
            body = response.json()
            results = body.get("results") or []
            if results:
                yield results
            following = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not following or not results or following == params.get("after"):
                return
            params["after"] = following

    def deleted_since(self, since: dt.datetime) -> Iterator[Deletion]:
        """Deals archived at or after ``since`` (the archived listing, read in full)."""
        for page in self._list_pages(archived=True):
            for item in page:
                at = parse_optional_timestamp(item.get("archivedAt"))
                if at is not None and at >= since:
                    yield Deletion(str(item["id"]), at)

    def with_companies(self, items: list[dict[str, Any]]) -> list[VendorRecord]:
        """Search results with their companies (one v4 batch read per page)."""
        companies = self._companies_of([str(item["id"]) for item in items])
        return [self.to_record(item, companies.get(str(item["id"]))) for item in items]

    def _companies_of(self, deal_ids: list[str]) -> dict[str, str]:
        body = {"inputs": [{"id": deal_id} for deal_id in deal_ids]}
        answer = self._request(
            "POST", "/crm/v4/associations/deals/companies/batch/read", json=body, read=True
        ).json()
        found: dict[str, str] = {}
        for result in answer.get("results") or []:
            targets = result.get("to") or []
            if targets:
                found[str(result["from"]["id"])] = str(targets[0]["toObjectId"])
        return found

    def to_record(self, item: Mapping[str, Any], company: str | None = None) -> VendorRecord:
        """A deal as crmsync maps it: the properties flat, ``id`` and ``company_id``."""
        data: dict[str, Any] = dict(item.get("properties") or {})
        data["id"] = str(item["id"])
        if company is None:
            linked = ((item.get("associations") or {}).get("companies") or {}).get("results") or []
            company = str(linked[0]["id"]) if linked else None
        data[COMPANY_FIELD] = company
        if not data.get("deal_currency_code"):  # empty means the company currency (§5.9)
            data["deal_currency_code"] = self.account_currency()
        stamp = data.get("hs_lastmodifieddate") or item.get("updatedAt")
        return VendorRecord(
            data["id"],
            parse_timestamp(str(stamp)),
            data,
            created=parse_optional_timestamp(data.get("createdate") or item.get("createdAt")),
        )

    # -- single records ------------------------------------------------------------------------
    def get(self, external_id: str) -> VendorRecord:
        params = {"properties": ",".join(self.properties()), "associations": "companies"}
        response = self._request("GET", f"{DEALS}/{external_id}", params=params, record=external_id)
        return self.to_record(response.json())

    def create(self, payload: Mapping[str, Any], *, idempotency_key: str) -> VendorRecord:
        """One create (``hubspot_batch.create_one``): a 409 on crmsync's id answers with the
        deal that holds it, ``existing``."""
        return hubspot_batch.create_one(self, payload, idempotency_key)

    def rename_company(self, external_id: str, name: str) -> None:
        """``PATCH /crm/v3/objects/companies/{id}`` with the new ``name`` property."""
        path = f"/crm/v3/objects/companies/{external_id}"
        self._request("PATCH", path, json={"properties": {"name": name}}, record=name)
        self._renamed(external_id, name)

    def update(self, external_id: str, payload: Mapping[str, Any]) -> VendorRecord:
        """PATCH the properties given; a company moves the deal's association."""
        properties, company = split(payload)
        answer: dict[str, Any] = {"id": external_id, "properties": {}}
        if properties or not company:
            response = self._request(
                "PATCH",
                f"{DEALS}/{external_id}",
                json={"properties": properties},
                record=external_id,
            )
            answer = response.json()
        if COMPANY_FIELD in payload:
            self.move_company(external_id, company)
        record = (
            self.to_record(answer, company) if answer.get("properties") else self.get(external_id)
        )
        if COMPANY_FIELD in payload:
            record.data[COMPANY_FIELD] = company
        return record

    def move_company(self, deal_id: str, company: str | None) -> None:
        base = f"/crm/v4/objects/deals/{deal_id}/associations"
        current = self._request("GET", f"{base}/companies", record=deal_id).json()
        for item in current.get("results") or []:
            other = str(item["toObjectId"])
            if other != company:
                self._request("DELETE", f"{base}/companies/{other}", record=deal_id)
        if company:
            self._request("PUT", f"{base}/default/companies/{company}", record=deal_id)

    def delete(self, external_id: str) -> None:
        self._request("DELETE", f"{DEALS}/{external_id}", record=external_id)

    def create_many(
        self, items: Sequence[tuple[Mapping[str, Any], str]]
    ) -> list[VendorRecord | ConnectorError]:
        """One ``batch/create`` (see ``sync.connectors.hubspot_batch``)."""
        return hubspot_batch.create_many(self, items)

    def update_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[VendorRecord | ConnectorError]:
        """One ``batch/update`` (see ``sync.connectors.hubspot_batch``)."""
        return hubspot_batch.update_many(self, items)

    def request_json(
        self,
        method: str,
        url: str,
        body: dict[str, Any],
        *,
        read: bool = False,
        record: str | None = None,
    ) -> dict[str, Any]:
        """A JSON request whose answer is a JSON object (the writes' one call; ``read``: a POST
        that only reads, retried like a GET)."""
        answer: dict[str, Any] = self._request(
            method, url, json=body, read=read, record=record
        ).json()
        return answer

    def find_candidates(
        self, name: str | None, created_after: dt.datetime, keep: Keep | None = None
    ) -> list[VendorRecord]:
        """Deals created at or after ``created_after`` (named ``name``), through search (one
        page), those ``keep`` accepts."""
        found = hubspot_search.candidates(self, name, created_after)
        return [record for record in found if kept(keep, record)]

    # -- references and the portal --------------------------------------------------------------
    def load_references(self, kind: str) -> Iterator[Reference]:
        """Companies by name, owners by e-mail, stages by label (``hubspot_refs``)."""
        return hubspot_refs.load(self, kind)

    def create_reference(self, kind: str, key: str) -> Reference:
        if kind != "company":
            raise NotImplementedError(f"hubspot cannot create {kind} references")
        made = self._request(
            "POST", "/crm/v3/objects/companies", json={"properties": {"name": key}}
        ).json()
        reference = Reference("company", str(made["id"]), key)
        self._remember_reference(reference)
        return reference

    def portal(self) -> dict[str, Any]:
        """The portal (``account-info/v3/details``): id, company and additional currencies."""
        cached: dict[str, Any] | None = getattr(self, "_portal", None)
        if cached is None:
            cached = dict(self._request("GET", "/account-info/v3/details").json())
            self._portal = cached
        return cached

    def check_portal(self) -> None:
        """Refuse to read a portal other than the one the system is bound to
        (``options.portal_id``): its deals are not the ones our links name."""
        bound = str(self.options.get("portal_id") or "")
        found = str(self.portal().get("portalId") or "") if bound else ""
        if bound and found != bound:
            raise AuthFailed(
                f"the token belongs to portal {found}, the system is bound to portal {bound}: "
                f"use that portal's token, or `crmsync rebind {self.system}`",
                system=self.system,
            )

    def account_currency(self) -> str | None:
        currency = self.portal().get("companyCurrency")
        return str(currency).upper() if currency else None

    def account_currencies(self) -> list[str] | None:
        """The portal's company currency, then its additional currencies (a multi-currency
        portal has some: the money model is then ``multi``)."""
        own = self.account_currency()
        extra = [str(c).upper() for c in self.portal().get("additionalCurrencies") or []]
        return list(dict.fromkeys([own, *extra])) if own else None

    # -- setup (crmsync doctor) ----------------------------------------------------------------
    @classmethod
    def make_auth(cls, credentials: Mapping[str, str], *, base_url: str) -> httpx.Auth | None:
        """Bearer ``credentials.token``; the auth keeps the token for the scope check."""
        token = credentials.get("token")
        if not token:
            raise AuthFailed("hubspot needs credentials.token", system=cls.vendor)
        return TokenAuth(token)

    def setup_findings(self) -> list[SetupFinding]:
        """The token's scopes, crmsync's id property, the portal and its currencies."""
        return hubspot_setup.findings(self)

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A GET whose answer is a JSON object (references, setup checks)."""
        answer: dict[str, Any] = self._request("GET", url, params=params).json()
        return answer

    # -- vendor error signals --------------------------------------------------------------------
    def _error_message(self, response: httpx.Response) -> tuple[str, dict[str, str]]:
        """HubSpot's ``message``, and each refused property from ``errors[].context``."""
        body = error_body(response)
        if isinstance(body, str):
            return body, {}
        message, fields = refused_fields(body.get("errors") or [])
        return message or str(body.get("message") or response.reason_phrase), fields

    def retry_after(self, response: httpx.Response) -> float | None:
        """``Retry-After`` when sent, else the wait the 429's ``policyName`` implies."""
        header = super().retry_after(response)
        return header if header is not None else policy_wait(response)
