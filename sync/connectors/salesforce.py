"""Salesforce opportunities, directly (REST API,
https://developer.salesforce.com/docs/platform/api-rest/guide/).

Salesforce's quirks, each handled here and nowhere else (facts: shared/vendors.md §4):

- **Auth**: a given access token (``credentials.token``) or OAuth 2.0 client credentials
  (``credentials.client_id`` / ``client_secret``, token URL ``credentials.token_url`` or
  ``{base_url}/services/oauth2/token``), renewed on 401 ``INVALID_SESSION_ID``
  (``sync.connectors.salesforce_auth``).
- **Listing** is SOQL on ``SystemModstamp`` (it moves on system updates too, unlike
  ``LastModifiedDate``) paged by the compound key ``(SystemModstamp, Id)``: each page asks for
  rows after the last one seen, ``LIMIT`` a page, so no query locator can expire under us.
- **Deletes** come from Get Deleted (``sobjects/Opportunity/deleted``, 15 days, minute
  granularity). When ``earliestDateAvailable`` is past where we last looked the log lost
  deletes: :class:`DeleteFeedGap` asks the engine for a full compare instead.
- **Creates are idempotent**: an upsert on the External ID field ``Crmsync_Id__c`` (the
  record's crmsync id) creates once however often it is sent.
- **Writes** answer 204/ids only: the record is read back for its new ``SystemModstamp``.
  Many at once: sObject Collections, 200 a request (:meth:`create_many`, :meth:`update_many`).
- **Errors** are a JSON array ``[{message, errorCode, fields}]``; a spent daily allocation is
  403 ``REQUEST_LIMIT_EXCEEDED`` (not 429).
- **The daily allocation** is read from ``Sforce-Limit-Info: api-usage=N/M`` on every answer.
  ``options.api_reserve`` (default 0.2: a fifth kept for the org's other tools) pauses this
  system — every call is ``RateLimited`` with a message saying so — once only the reserve is
  left (``sync.connectors.reserve``, shared with HubSpot's daily allowance).
- **The org**: ``Organization`` gives the org id (``00D…``; what a system is bound to, not the
  instance URL that can change) and ``DefaultCurrencyIsoCode``; a multi-currency org has
  ``CurrencyIsoCode`` on each opportunity, a single-currency org holds every amount in the
  corporate currency (:meth:`account_currency`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from sync.connectors.base import (
    BaseConnector,
    CaptureMode,
    Deletion,
    Keep,
    Reference,
    VendorRecord,
    kept,
)
from sync.connectors.errors import (
    AuthFailed,
    ConnectorError,
    DeleteFeedGap,
    RateLimited,
    Rejected,
)
from sync.connectors.http.stats import sforce_usage
from sync.connectors.reserve import RESERVE_WAIT, DailyReserve
from sync.connectors.salesforce_auth import SalesforceAuth
from sync.connectors.salesforce_wire import (
    DERIVED,
    error_message,
    iso,
    quote,
    save_outcomes,
    soql_datetime,
)
from sync.timefmt import parse_optional_timestamp, parse_timestamp, utcnow

API_VERSION = "59.0"
EXTERNAL_ID = "Crmsync_Id__c"
COLLECTION_SIZE = 200
PAGE_SIZE = 2000
#: the fields read on every opportunity (the mapping picks what it needs)
FIELDS = (
    "Id", "Name", "StageName", "Amount", "Probability", "CloseDate", "AccountId", "OwnerId",
    "IsClosed", "IsWon", "Description", "NextStep", "Type", "LeadSource", "CreatedDate",
    "SystemModstamp", EXTERNAL_ID,
)  # fmt: skip


class SalesforceConnector(BaseConnector):
    """Opportunities of one Salesforce org.

    Options: ``api_version`` (default 59.0), ``api_reserve`` (0..1, default 0.2),
    ``org_id`` (the org this system is bound to; checked against the org the credentials
    reach), ``page_size`` (SOQL rows a page, ≤ 2000).
    """

    vendor: ClassVar[str] = "salesforce"
    capture: ClassVar[CaptureMode] = "incremental"
    has_delete_feed: ClassVar[bool] = True
    max_page_size: ClassVar[int] = PAGE_SIZE
    #: records one write request may carry (sObject Collections)
    batch_limit: ClassVar[int] = COLLECTION_SIZE
    #: creates are upserts on Crmsync_Id__c: a resend finds the deal the lost answer made
    idempotent_creates: ClassVar[bool] = True
    #: Probability follows StageName, IsClosed/IsWon are the stage's (``salesforce_wire``)
    derived = DERIVED

    def __init__(
        self, system: str, client: httpx.Client, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(system, client, options)
        self.api = f"/services/data/v{self.options.get('api_version', API_VERSION)}"
        #: the daily allocation (``Sforce-Limit-Info``) and the share kept for other tools
        self.daily = DailyReserve(system, self.options, "org")
        self.page_size = min(PAGE_SIZE, int(self.options.get("page_size", PAGE_SIZE)))
        self._org: dict[str, Any] | None = None
        self._multi_currency: bool | None = None

    @classmethod
    def make_auth(cls, credentials: Mapping[str, str], *, base_url: str) -> httpx.Auth | None:
        if credentials.get("client_id") and credentials.get("client_secret"):
            root = base_url.split("/services/")[0].rstrip("/")
            return SalesforceAuth(
                token_url=credentials.get("token_url") or f"{root}/services/oauth2/token",
                client_id=credentials["client_id"],
                client_secret=credentials["client_secret"],
            )
        if credentials.get("token"):
            return SalesforceAuth(token=credentials["token"])
        raise AuthFailed(
            "salesforce needs credentials.client_id + client_secret (client credentials) or "
            "credentials.token (an access token)",
            system=cls.vendor,
        )

    # -- requests, errors, the allocation -------------------------------------------------
    def _request(
        self, method: str, url: str, *, record: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        self.daily.check()
        try:
            response = super()._request(method, url, record=record, **kwargs)
        except ConnectorError as exc:
            raise self._vendor_error(exc) from exc
        self._note_usage(response)
        return response

    def _vendor_error(self, exc: ConnectorError) -> ConnectorError:
        if "REQUEST_LIMIT_EXCEEDED" in exc.message:
            return RateLimited(
                "the org's daily API allocation is spent (403 REQUEST_LIMIT_EXCEEDED); "
                "waiting for it to free up",
                retry_after=RESERVE_WAIT,
                system=self.system,
                record=exc.record,
                status=exc.status,
            )
        if "invalid_client" in exc.message or "unsupported_grant_type" in exc.message:
            return AuthFailed(
                f"the client credentials were refused: {exc.message}",
                system=self.system,
                status=exc.status,
            )
        return exc

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, allocation) from the latest ``Sforce-Limit-Info``; None until an answer."""
        return self.daily.usage

    def _note_usage(self, response: httpx.Response) -> None:
        usage = sforce_usage(response.headers.get("sforce-limit-info", ""))
        if usage is not None:
            self.daily.note(*usage)

    def _error_message(self, response: httpx.Response) -> tuple[str, dict[str, str]]:
        return error_message(response)

    # -- SOQL --------------------------------------------------------------------------------
    def soql(self, query: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of a query's rows, following ``nextRecordsUrl``."""
        body = self._request("GET", f"{self.api}/query", params={"q": query}).json()
        while True:
            yield list(body.get("records") or [])
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return
            body = self._request("GET", body["nextRecordsUrl"]).json()

    def _keyset(self, where: str, *, clocked: bool) -> Iterator[list[VendorRecord]]:
        """Pages ordered by ``(SystemModstamp, Id)``, each after the last row of the one
        before: the compound cursor, so a page boundary inside one stamp loses nothing."""
        fetch = self._listing_fetch() if clocked else None
        after: tuple[str, str] | None = None
        while True:
            clauses = [where] if where else []
            if after is not None:
                stamp, last_id = after
                later = f"SystemModstamp = {stamp} AND Id > '{last_id}'"
                clauses.append(f"(SystemModstamp > {stamp} OR ({later}))")
            query = (
                f"SELECT {', '.join(FIELDS)}{self._currency_field()} FROM Opportunity"
                + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
                + f" ORDER BY SystemModstamp, Id LIMIT {self.page_size}"
            )
            params = {"q": query}
            if fetch is not None:  # only the first answer sets the listing clock
                rows = list(fetch(f"{self.api}/query", params).get("records") or [])
                fetch = None
            else:
                answer = self._request("GET", f"{self.api}/query", params=params).json()
                rows = list(answer.get("records") or [])
            records = [self.to_record(row) for row in rows]
            yield records
            if len(rows) < self.page_size:
                return
            after = (soql_datetime(records[-1].modified), records[-1].external_id)

    def list_changed(self, since: dt.datetime) -> Iterator[list[VendorRecord]]:
        yield from self._keyset(f"SystemModstamp >= {soql_datetime(since)}", clocked=True)

    def scan(self) -> Iterator[list[VendorRecord]]:
        yield from self._keyset("", clocked=True)

    def deleted_since(self, since: dt.datetime) -> Iterator[Deletion]:
        """Get Deleted from ``since`` to now; :class:`DeleteFeedGap` when the log starts later."""
        start = max(since, utcnow() - dt.timedelta(days=29))
        end = utcnow() + dt.timedelta(minutes=1)
        params = {"start": iso(start), "end": iso(end)}
        body = self._request("GET", f"{self.api}/sobjects/Opportunity/deleted/", params=params)
        data = body.json()
        earliest = parse_optional_timestamp(data.get("earliestDateAvailable"))
        if earliest is not None and earliest > since:
            raise DeleteFeedGap(
                f"Salesforce's delete log starts at {data['earliestDateAvailable']}, after our "
                f"last look ({iso(since)}): deletes in between are only found by a full compare",
                system=self.system,
            )
        for item in data.get("deletedRecords") or []:
            yield Deletion(str(item["id"]), parse_timestamp(item["deletedDate"]))

    # -- the org -----------------------------------------------------------------------------
    def organization(self) -> dict[str, Any]:
        """``Organization``: ``Id`` (the org id a system is bound to), corporate currency."""
        if self._org is None:
            rows = next(self.soql("SELECT Id, Name, DefaultCurrencyIsoCode FROM Organization"))
            self._org = rows[0] if rows else {}
        return self._org

    def org_id(self) -> str | None:
        value = self.organization().get("Id")
        return str(value) if value else None

    def multi_currency(self) -> bool:
        """Whether the org is multi-currency (``CurrencyType`` exists only then)."""
        if self._multi_currency is None:
            try:
                next(self.soql("SELECT IsoCode FROM CurrencyType WHERE IsActive = TRUE"))
                self._multi_currency = True
            except Rejected:
                self._multi_currency = False
        return self._multi_currency

    def account_currency(self) -> str | None:
        """The corporate currency of a single-currency org; None for a multi-currency org
        (each opportunity says its ``CurrencyIsoCode``)."""
        if self.multi_currency():
            return None
        code = self.organization().get("DefaultCurrencyIsoCode")
        return str(code) if code else None

    def _currency_field(self) -> str:
        return ", CurrencyIsoCode" if self.multi_currency() else ""

    # -- single records ------------------------------------------------------------------
    def get(self, external_id: str) -> VendorRecord:
        path = f"{self.api}/sobjects/Opportunity/{external_id}"
        fields = ",".join(FIELDS) + self._currency_field().replace(", ", ",")
        response = self._request("GET", path, params={"fields": fields}, record=external_id)
        return self.to_record(response.json())

    def create(self, payload: Mapping[str, Any], *, idempotency_key: str) -> VendorRecord:
        """Upsert on ``Crmsync_Id__c``: sent twice (a lost answer), it still creates once."""
        key = str(payload.get(EXTERNAL_ID) or idempotency_key)
        body = {k: v for k, v in payload.items() if k != EXTERNAL_ID}
        path = f"{self.api}/sobjects/Opportunity/{EXTERNAL_ID}/{key}"
        response = self._request("PATCH", path, json=body, record=str(payload.get("Name")))
        if response.status_code == 300:
            raise Rejected(
                f"several opportunities carry {EXTERNAL_ID} = {key}; merge them in Salesforce",
                system=self.system,
                record=key,
                status=300,
            )
        return self.get(str(response.json()["id"]))

    def update(self, external_id: str, payload: Mapping[str, Any]) -> VendorRecord:
        path = f"{self.api}/sobjects/Opportunity/{external_id}"
        self._request("PATCH", path, json=dict(payload), record=external_id)
        return self.get(external_id)

    def delete(self, external_id: str) -> None:
        path = f"{self.api}/sobjects/Opportunity/{external_id}"
        self._request("DELETE", path, record=external_id)

    def find_candidates(
        self, name: str | None, created_after: dt.datetime, keep: Keep | None = None
    ) -> list[VendorRecord]:
        where = f"CreatedDate >= {soql_datetime(created_after)}"
        if name is not None:
            where += f" AND Name = '{quote(name)}'"
        found: list[VendorRecord] = []
        for page in self._keyset(where, clocked=False):
            found += [record for record in page if kept(keep, record)]
        return found

    def to_record(self, data: dict[str, Any]) -> VendorRecord:
        data = {k: v for k, v in data.items() if k != "attributes"}
        return VendorRecord(
            str(data["Id"]),
            parse_timestamp(data["SystemModstamp"]),
            data,
            created=parse_optional_timestamp(data.get("CreatedDate")),
        )

    # -- many records (sObject Collections) ----------------------------------------------------
    def create_many(
        self, items: Sequence[tuple[Mapping[str, Any], str]]
    ) -> list[VendorRecord | ConnectorError]:
        """Upsert up to 200 ``(payload, idempotency key)`` on ``Crmsync_Id__c`` in one request:
        one outcome per item, in order (a bad record fails alone)."""
        records = [
            {
                "attributes": {"type": "Opportunity"},
                **{k: v for k, v in payload.items() if k != EXTERNAL_ID},
                EXTERNAL_ID: str(payload.get(EXTERNAL_ID) or key),
            }
            for payload, key in items
        ]
        path = f"{self.api}/composite/sobjects/Opportunity/{EXTERNAL_ID}"
        return self._collection("PATCH", path, records)

    def update_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[VendorRecord | ConnectorError]:
        """Update up to 200 ``(id, payload)`` in one request; one outcome per item, in order."""
        records = [
            {"attributes": {"type": "Opportunity"}, "id": external_id, **payload}
            for external_id, payload in items
        ]
        return self._collection("PATCH", f"{self.api}/composite/sobjects", records)

    def _collection(
        self, method: str, path: str, records: list[dict[str, Any]]
    ) -> list[VendorRecord | ConnectorError]:
        if len(records) > COLLECTION_SIZE:
            raise ValueError(f"at most {COLLECTION_SIZE} records a collection request")
        body = {"allOrNone": False, "records": records}
        results = self._request(method, path, json=body).json()
        saved = [str(r["id"]) for r in results if r.get("success")]
        fresh = {record.external_id: record for record in self._read_many(saved)}
        return save_outcomes(self.system, records, results, fresh)

    def _read_many(self, ids: list[str]) -> list[VendorRecord]:
        if not ids:
            return []
        fields = ",".join(FIELDS) + self._currency_field().replace(", ", ",")
        path = f"{self.api}/composite/sobjects/Opportunity"
        rows = self._request("GET", path, params={"ids": ",".join(ids), "fields": fields}).json()
        return [self.to_record(row) for row in rows if row]

    # -- references ----------------------------------------------------------------------
    def load_references(self, kind: str) -> Iterator[Reference]:
        if kind == "company":
            for page in self.soql("SELECT Id, Name FROM Account ORDER BY Id"):
                for row in page:
                    yield Reference("company", row["Id"], str(row["Name"]))
        elif kind == "owner":
            for page in self.soql("SELECT Id, Email FROM User WHERE IsActive = TRUE ORDER BY Id"):
                for row in page:
                    yield Reference("owner", row["Id"], str(row.get("Email") or ""))
        elif kind == "stage":
            query = (
                "SELECT ApiName, IsClosed, IsWon, DefaultProbability FROM OpportunityStage "
                "WHERE IsActive = TRUE ORDER BY SortOrder"
            )
            for page in self.soql(query):
                for row in page:
                    status = "won" if row["IsWon"] else "lost" if row["IsClosed"] else "open"
                    extra = {"status_type": status, "probability": row["DefaultProbability"]}
                    yield Reference("stage", row["ApiName"], str(row["ApiName"]), extra)
        else:
            raise NotImplementedError(f"salesforce has no {kind} references")

    def rename_company(self, external_id: str, name: str) -> None:
        """``PATCH /sobjects/Account/{id}`` with the new ``Name``."""
        path = f"{self.api}/sobjects/Account/{external_id}"
        self._request("PATCH", path, json={"Name": name}, record=name)
        self._renamed(external_id, name)

    def create_reference(self, kind: str, key: str) -> Reference:
        """Create an Account named ``key`` (auto-create of companies)."""
        if kind != "company":
            raise NotImplementedError(f"salesforce cannot create {kind} references")
        body = self._request("POST", f"{self.api}/sobjects/Account", json={"Name": key}).json()
        reference = Reference("company", str(body["id"]), key)
        self._remember_reference(reference)
        return reference
