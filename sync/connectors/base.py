"""The one interface every vendor connector offers the engine.

A connector is the only code that knows a vendor's JSON. It yields raw vendor records
(``VendorRecord.data`` is the vendor's JSON object as returned) and writes vendor-shaped
payloads given to it by the mapping layer. It never sees the store. Network policy (retries,
backoff, rate limits, auth refresh) lives in the HTTP transport built by ``sync.connectors.http``,
never here: a connector calls ``self._request`` once and gets either a response or a typed error.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

import httpx

from sync.connectors.errors import (
    Action,
    AuthFailed,
    ConnectorError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Retryable,
    classify_exception,
    classify_status,
)
from sync.connectors.http import READ_ONLY, BearerAuth, retry_after_header
from sync.connectors.ratelimit import RateLimiter
from sync.connectors.records import (
    Deletion,
    DerivedField,
    ListingClock,
    Reference,
    SetupFinding,
    VendorRecord,
    error_body,
)
from sync.timefmt import parse_http_date, utcnow

__all__ = [
    "BaseConnector",
    "CaptureMode",
    "Deletion",
    "DerivedField",
    "Keep",
    "ListingClock",
    "Reference",
    "RestCollection",
    "SetupFinding",
    "VendorRecord",
    "error_body",
    "kept",
]

CaptureMode = Literal["incremental", "scan"]
#: which records of a long listing to hold (``find_candidates``): the others are dropped as
#: their page arrives, so a listing of every deal made in a window is never held whole
Keep = Callable[[VendorRecord], bool]


def kept(keep: Keep | None, record: VendorRecord) -> bool:
    """Whether ``record`` is held (no ``keep``: every record is)."""
    return keep is None or keep(record)


class BaseConnector(abc.ABC):
    """Shared plumbing: one request helper that turns HTTP outcomes into typed errors.

    Subclasses set the class attributes and implement the abstract operations (mypy and
    Python refuse a connector that misses one). Three operations are capabilities, not
    obligations, and raise ``NotImplementedError`` unless a vendor offers them:
    ``list_changed`` (``capture = "incremental"``), ``deleted_since`` (``has_delete_feed``)
    and ``create_reference`` (auto-create); callers check the class attribute or catch it.

    ``client`` comes from ``sync.connectors.http.build_client`` (or, in tests, any
    ``httpx.Client`` whose transport is an emulator); ``options`` are the system's connector
    options from config.
    """

    vendor: ClassVar[str] = ""
    capture: ClassVar[CaptureMode] = "scan"
    has_delete_feed: ClassVar[bool] = False
    max_page_size: ClassVar[int] = 100
    #: fields this vendor recomputes from another (none unless a vendor says so)
    derived: ClassVar[tuple[DerivedField, ...]] = ()
    #: ``find_candidates(name, …)`` filters by name at the vendor (one request, not a listing)
    name_search: ClassVar[bool] = False
    #: records one write request may carry: above 1 the vendor has batch endpoints and the
    #: connector implements ``create_many`` / ``update_many`` (the drain groups its sends)
    batch_limit: ClassVar[int] = 1
    #: a create sent twice makes one record (Salesforce: an upsert on an External ID field
    #: carrying our key): a create whose outcome is unknown is simply sent again, with no
    #: look-up first
    idempotent_creates: ClassVar[bool] = False
    #: a create carrying crmsync's id in :attr:`record_id_property` (a property whose values
    #: the vendor keeps unique: HubSpot) makes one record however often it is sent; a resend
    #: answers with the record the first one made (``VendorRecord.existing``). Where the
    #: mapping writes our id there, a create whose outcome is unknown is sent again as is.
    idempotent_by_record_id: ClassVar[bool] = False

    @property
    def record_id_property(self) -> str | None:
        """The vendor field that holds crmsync's id with unique values (None: none)."""
        return None

    def __init__(
        self, system: str, client: httpx.Client, options: Mapping[str, Any] | None = None
    ) -> None:
        self.system = system
        self.client = client
        self.options: dict[str, Any] = dict(options or {})
        self._ref_cache: dict[str, list[Reference]] = {}
        #: the limiter its client waits on (``build_connector`` sets it), for a connector that
        #: sizes it from what the vendor's answers say (HubSpot)
        self.limiter: RateLimiter | None = None
        #: the vendor's clock at the first answer of the latest ``list_changed``/``scan``
        #: (None until one answered): capture turns it into the cursor's watermark
        self.listing_clock: ListingClock | None = None

    @classmethod
    def make_auth(cls, credentials: Mapping[str, str], *, base_url: str) -> httpx.Auth | None:
        """The ``httpx.Auth`` for this vendor from a system's ``credentials`` (default: Bearer
        ``token``). Used by ``sync.connectors.build_connector``."""
        token = credentials.get("token")
        if not token:
            raise AuthFailed(f"{cls.vendor} needs credentials.token", system=cls.vendor)
        return BearerAuth(token)

    # -- the interface the engine uses -------------------------------------------------
    def list_changed(self, since: dt.datetime) -> Iterator[list[VendorRecord]]:
        """Pages of records modified at or after ``since`` (incremental systems only)."""
        raise NotImplementedError(f"{self.vendor} has no modified-since listing; use scan()")

    @abc.abstractmethod
    def scan(self) -> Iterator[list[VendorRecord]]:
        """Pages of every record (full listing)."""

    @abc.abstractmethod
    def get(self, external_id: str) -> VendorRecord:
        """One record by its vendor id (``NotFound`` when gone)."""

    @abc.abstractmethod
    def create(self, payload: Mapping[str, Any], *, idempotency_key: str) -> VendorRecord:
        """Create a record from a vendor-shaped payload; return it as the vendor holds it."""

    @abc.abstractmethod
    def update(self, external_id: str, payload: Mapping[str, Any]) -> VendorRecord:
        """Write only the fields given; return the record as the vendor holds it now."""

    @abc.abstractmethod
    def delete(self, external_id: str) -> None:
        """Delete a record (``NotFound`` when already gone)."""

    def create_many(
        self, items: Sequence[tuple[Mapping[str, Any], str]]
    ) -> list[VendorRecord | ConnectorError]:
        """Create up to ``batch_limit`` records from ``(payload, idempotency key)`` in one
        request: one outcome per item, in order — the record as the vendor holds it, or the
        error of that item alone. A failure of the whole request raises, as ``create`` does."""
        raise NotImplementedError(f"{self.vendor} has no batch create")

    def update_many(
        self, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[VendorRecord | ConnectorError]:
        """Update up to ``batch_limit`` records from ``(external id, payload)``; outcomes as
        :meth:`create_many` (``NotFound`` for a record gone)."""
        raise NotImplementedError(f"{self.vendor} has no batch update")

    def deleted_since(self, since: dt.datetime) -> Iterator[Deletion]:
        """Deletes the vendor's feed reports at or after ``since`` (``has_delete_feed`` only)."""
        raise NotImplementedError(f"{self.vendor} has no delete feed")

    @abc.abstractmethod
    def find_candidates(
        self, name: str | None, created_after: dt.datetime, keep: Keep | None = None
    ) -> list[VendorRecord]:
        """Records named ``name`` (any name: None) created at or after ``created_after``: the
        look-up half of intent-then-look-up-then-adopt create recovery. ``keep``: only the
        records it accepts are returned, each judged as its page arrives — a listing of any
        name runs to every deal made since, which a recovery must not hold whole."""

    def find_like(
        self, payload: Mapping[str, Any], created_after: dt.datetime
    ) -> list[VendorRecord] | None:
        """Records created at or after ``created_after`` whose fields the vendor's list can
        filter on equal ``payload``'s (a create payload), the name left out: where a renamed
        deal of ours may be, in a request or two. None: the vendor has no such filters."""
        return None

    def references(self, kind: str) -> list[Reference]:
        """Every reference of a kind (cached until ``forget_references``)."""
        if kind not in self._ref_cache:
            self._ref_cache[kind] = list(self.load_references(kind))
        return self._ref_cache[kind]

    def forget_references(self, kind: str | None = None) -> None:
        """Drop the cached references of ``kind`` (None: every kind), so the next
        ``references`` lists them again (a reference created elsewhere since)."""
        if kind is None:
            self._ref_cache.clear()
        else:
            self._ref_cache.pop(kind, None)

    @abc.abstractmethod
    def load_references(self, kind: str) -> Iterator[Reference]:
        """List every reference of a kind from the vendor (uncached; ``references`` caches).
        Raises ``NotImplementedError`` for a kind the vendor does not have."""

    def setup_findings(self) -> list[SetupFinding]:
        """What this vendor's setup needs beyond credentials and references (token scopes, a
        custom field for crmsync's id, the account the system is bound to), checked without
        writing anything; none by default."""
        return []

    def account_currency(self) -> str | None:
        """The one currency the account holds amounts in, where the API says (None: it does
        not; the configuration must)."""
        return None

    def account_currencies(self) -> list[str] | None:
        """Every currency the account holds deals in, its own first, where the API lists them
        (HubSpot's company and additional currencies); by default the one it holds, or None."""
        currency = self.account_currency()
        return [currency] if currency else None

    def create_reference(self, kind: str, key: str) -> Reference:
        """Create a company/lead/account named ``key`` (auto-create, where configured)."""
        raise NotImplementedError(f"{self.vendor} cannot create {kind} references")

    def rename_company(self, external_id: str, name: str) -> None:
        """Rename the company/lead/account ``external_id`` to ``name`` (``sync.companies.renames:
        propagate``). Raises ``NotImplementedError`` where the vendor's API allows no rename."""
        raise NotImplementedError(f"{self.vendor} cannot rename a company through its API")

    def _renamed(self, external_id: str, name: str) -> None:
        """Keep the cached company listing in step with a rename just made."""
        cached = self._ref_cache.get("company")
        if cached is not None:
            self._ref_cache["company"] = [
                Reference("company", ref.id, name) if ref.id == external_id else ref
                for ref in cached
            ]

    def close(self) -> None:
        self.client.close()

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds the vendor asked us to wait on a 429 (vendor-specific signal).

        ``sync.connectors.build_connector`` hands this to the HTTP layer's retry transport, so
        it must not depend on anything but the response."""
        return retry_after_header(response)

    # -- hooks for subclasses ------------------------------------------------------------
    def _listing_fetch(self) -> Callable[[str, dict[str, Any]], Any]:
        """A page fetch (``GET`` -> decoded body) for one ``list_changed``/``scan`` that notes
        the vendor's clock from the listing's first answer in :attr:`listing_clock`.

        Call it inside the listing's generator, so the note belongs to the listing being read.
        """
        self.listing_clock = None

        def fetch(url: str, params: dict[str, Any]) -> Any:
            response = self._request("GET", url, params=params or None)
            if self.listing_clock is None:
                local = utcnow()
                self.listing_clock = ListingClock(
                    parse_http_date(response.headers.get("date")), local
                )
            return response.json()

        return fetch

    def _remember_reference(self, reference: Reference) -> None:
        """Add a reference this connector just created to its kind's cache, if listed."""
        if reference.kind in self._ref_cache:
            self._ref_cache[reference.kind].append(reference)

    def _error_message(self, response: httpx.Response) -> tuple[str, dict[str, str]]:
        """The vendor's own message and field errors from an error body."""
        body = error_body(response)
        if isinstance(body, str):
            return body, {}
        message = body.get("message") or body.get("error") or body.get("detail") or body
        return str(message), {}

    def _request(
        self,
        method: str,
        url: str,
        *,
        record: str | None = None,
        read: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; return a 2xx response or raise the typed error for it. ``read``:
        a POST that changes nothing (a search): retried like a GET, its failure ``Retryable``
        rather than ``OutcomeUnknown``."""
        writing = method.upper() in {"POST", "PUT", "PATCH", "DELETE"} and not read
        if read:
            kwargs["extensions"] = {**kwargs.get("extensions", {}), READ_ONLY: True}
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, writing=writing, record=record) from exc
        action = classify_status(response.status_code)
        if action is Action.SUCCESS:
            return response
        message, field_errors = self._error_message(response)
        common: dict[str, Any] = {
            "system": self.system,
            "record": record,
            "status": response.status_code,
        }
        if action is Action.RETRY:
            kind = OutcomeUnknown if writing else Retryable
            raise kind(message, **common)
        if action is Action.RATE_LIMITED:
            raise RateLimited(message, retry_after=self.retry_after(response), **common)
        if action is Action.NOT_FOUND:
            raise NotFound(message, **common)
        if action in (Action.AUTH, Action.REFRESH_AUTH):
            raise AuthFailed(message, **common)
        raise Rejected(message, field_errors=field_errors, **common)

    def _transport_error(
        self, exc: httpx.TransportError, *, writing: bool, record: str | None
    ) -> ConnectorError:
        """The typed error for a failure with no response (after the transport's retries)."""
        message = f"{type(exc).__name__}: {exc}"
        classified = classify_exception(exc)
        if classified is None:
            return ConnectorError(message, system=self.system, record=record)
        _, maybe_sent = classified
        kind = OutcomeUnknown if writing and maybe_sent else Retryable
        return kind(message, system=self.system, record=record)


class RestCollection(BaseConnector):
    """A connector whose deals are one plain REST collection: ``GET``/``PATCH``/``DELETE``
    ``{collection}{id}{suffix}`` and ``POST {collection}``, each answering with the deal
    (Ruddr: ``/opportunities/ID``; ParsaLink, DRF style: ``/opportunities/ID/``). Neither has
    an idempotency key: the engine's intent + ``find_candidates`` covers a lost create."""

    collection: ClassVar[str] = "/opportunities"  # the POST path
    item_suffix: ClassVar[str] = ""  # after the id

    @abc.abstractmethod
    def to_record(self, raw: dict[str, Any]) -> VendorRecord:
        """A ``VendorRecord`` from one deal as the vendor answered it."""

    def _item(self, external_id: str) -> str:
        return f"{self.collection.rstrip('/')}/{external_id}{self.item_suffix}"

    def get(self, external_id: str) -> VendorRecord:
        response = self._request("GET", self._item(external_id), record=external_id)
        return self.to_record(response.json())

    def create(self, payload: Mapping[str, Any], *, idempotency_key: str) -> VendorRecord:
        name = str(payload.get("name"))
        response = self._request("POST", self.collection, json=dict(payload), record=name)
        return self.to_record(response.json())

    def update(self, external_id: str, payload: Mapping[str, Any]) -> VendorRecord:
        path = self._item(external_id)
        response = self._request("PATCH", path, json=dict(payload), record=external_id)
        return self.to_record(response.json())

    def delete(self, external_id: str) -> None:
        self._request("DELETE", self._item(external_id), record=external_id)
