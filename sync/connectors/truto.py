"""Truto's unified CRM API, one integrated account per system (https://truto.one/docs).

Truto's quirks, each handled here and nowhere else:

- **Auth** is ``Authorization: Bearer <Truto API token>``, and every unified call names the
  integrated account in ``integrated_account_id``
  (https://truto.one/docs/api-reference/unified-crm-api/opportunities/list).
- **Change capture depends on the integration behind the account**: ``updated_at`` is a
  filter only where the integration's query schema lists it, read from
  ``GET /opportunities/meta/list`` (https://truto.one/docs/api-reference/overview/meta).
  Range filters use bracket syntax, ``updated_at[gte]=…``
  (https://truto.one/docs/api-reference/overview/specifying-query-parameters).
- **Paging** follows ``next_cursor`` until it is null
  (https://truto.one/docs/api-reference/overview/pagination).
- **Writes** take an ``Idempotency-Key`` header; a replay answers the cached response
  (https://truto.one/docs/api-reference/overview/idempotency).
- ``remote_data`` (the vendor's raw object) is left out with ``truto_ignore_remote_data=true``
  unless the mapping needs it (option ``remote_data: true``)
  (https://truto.one/docs/api-reference/unified-crm-api/opportunities/list).
- **No delete feed**: deletes are found by scan set difference (and 404s).
- **Errors** use the envelope ``{"statusCode", "error", "message", "details"}``; limits are
  normalised into ``ratelimit-limit/-remaining/-reset`` (seconds) headers
  (https://truto.one/docs/api-reference/overview/rate-limits).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx

from sync.connectors.base import (
    BaseConnector,
    CaptureMode,
    DerivedField,
    Keep,
    Reference,
    VendorRecord,
    kept,
)
from sync.connectors.errors import ConnectorError
from sync.connectors.pagination import CursorPaginator, JSONObject, iterate_pages
from sync.timefmt import format_truto, parse_optional_timestamp, parse_timestamp, utcnow


def next_cursor_paginator() -> CursorPaginator:
    """Truto's ``{result, next_cursor}`` envelope; the next page is ``next_cursor=<value>``.

    Stops on an empty ``result`` or a null ``next_cursor``, raises ``PaginationLoop`` on a
    cursor handed back twice (https://truto.one/docs/api-reference/overview/pagination).
    """
    return CursorPaginator(
        cursor_param="next_cursor",
        records_key="result",
        has_more_key=None,
        token_of=lambda body, _records: body.get("next_cursor"),
    )


class TrutoConnector(BaseConnector):
    """Opportunities of one Truto integrated account, through ``/unified/crm``.

    Options: ``integrated_account_id`` (required); ``remote_data`` (bool, default false) keeps
    the vendor's raw object in every record for mappings that read it (e.g.
    ``remote_data.Probability``); ``capture`` (``incremental|scan``) overrides what
    ``meta/list`` says.
    """

    vendor: ClassVar[str] = "truto"
    has_delete_feed: ClassVar[bool] = False
    max_page_size: ClassVar[int] = 100
    #: Salesforce behind Truto (vendors.md §4.3): ``Probability`` defaults from the stage on
    #: every ``StageName`` change that does not carry one; ``IsClosed``/``IsWon`` are the
    #: stage's. Capsule behind Truto: ``probability`` is writable
    #: (https://developer.capsulecrm.com/v2/models/opportunity); that a milestone change sets
    #: the milestone's unless one is sent with it is assumed (the docs do not say).
    #: The ``remote_data`` paths are each integration's own spelling, so a declaration only
    #: matches a mapping of the integration it is about.
    derived: ClassVar[tuple[DerivedField, ...]] = (
        DerivedField(
            "remote_data.Probability",
            "stage",
            True,
            "Salesforce resets Probability to the stage's default when the stage changes",
            default="remote_data.DefaultProbability",  # OpportunityStage, from GET /stages
        ),
        DerivedField("remote_data.IsClosed", "stage", False, "Salesforce derives IsClosed"),
        DerivedField("remote_data.IsWon", "stage", False, "Salesforce derives IsWon"),
        DerivedField(
            "remote_data.probability",
            "stage",
            True,
            "Capsule sets the milestone's probability when the milestone changes",
            default="remote_data.probability",  # the milestone's, from GET /stages
        ),
    )

    def __init__(
        self, system: str, client: httpx.Client, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(system, client, options)
        account = self.options.get("integrated_account_id")
        if not account:
            raise ConnectorError("truto: options.integrated_account_id is not set", system=system)
        self.integrated_account_id = str(account)
        self._query_fields: frozenset[str] | None = None

    # -- capability discovery ------------------------------------------------------------
    # The base declares ``capture`` a class constant; Truto decides it per integrated account.
    @property
    def capture(self) -> CaptureMode:  # type: ignore[override]
        """``incremental`` when the integration filters opportunities on ``updated_at``."""
        forced = self.options.get("capture")
        if forced in ("incremental", "scan"):
            return "incremental" if forced == "incremental" else "scan"
        return "incremental" if "updated_at" in self.query_fields() else "scan"

    def query_fields(self) -> frozenset[str]:
        """Fields the integration's list query schema accepts (read once, from meta/list)."""
        if self._query_fields is None:
            body = self._request("GET", "/opportunities/meta/list", params=self._params()).json()
            schema = body.get("query_schema") or {}
            if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
                schema = schema["properties"]  # a JSON schema rather than a flat field map
            self._query_fields = frozenset(schema if isinstance(schema, dict) else ())
        return self._query_fields

    # -- listing -------------------------------------------------------------------------
    def list_changed(self, since: dt.datetime) -> Iterator[list[VendorRecord]]:
        """Pages of opportunities updated at or after ``since`` (integrations with
        ``updated_at`` only; others must :meth:`scan`)."""
        if self.capture != "incremental":
            raise NotImplementedError(
                f"truto account {self.integrated_account_id} has no updated_at filter; use scan()"
            )
        query = {"updated_at[gte]": format_truto(since)}
        yield from self._pages("/opportunities", query, clocked=True)

    def scan(self) -> Iterator[list[VendorRecord]]:
        """Pages of every opportunity of the account."""
        yield from self._pages("/opportunities", {}, clocked=True)

    def _pages(
        self, path: str, query: Mapping[str, str], *, clocked: bool = False
    ) -> Iterator[list[VendorRecord]]:
        """``clocked``: a capture listing, which notes the vendor's clock (``listing_clock``)."""
        query = {**query, **self._read_params()}
        for items in self._raw_pages(path, query, clocked=clocked):
            yield [self.to_record(item) for item in items]

    def _raw_pages(
        self, path: str, query: Mapping[str, str], *, clocked: bool = False
    ) -> Iterator[list[JSONObject]]:
        params = {**self._params(), "limit": str(self.max_page_size), **query}
        fetch = self._listing_fetch() if clocked else self._fetch
        yield from iterate_pages(fetch, path, next_cursor_paginator(), params)

    def _fetch(self, url: str, params: dict[str, Any]) -> Any:
        return self._request("GET", url, params=params).json()

    # -- single records ------------------------------------------------------------------
    def get(self, external_id: str) -> VendorRecord:
        response = self._request(
            "GET", f"/opportunities/{external_id}", record=external_id, params=self._read_params()
        )
        return self.to_record(response.json())

    def create(self, payload: Mapping[str, Any], *, idempotency_key: str) -> VendorRecord:
        """Create with an ``Idempotency-Key``: a retry after an unknown outcome replays the
        first answer instead of creating a duplicate. A refusal names the deal by its name
        (shortened), as every connector's create does."""
        name = payload.get("name")
        response = self._request(
            "POST",
            "/opportunities",
            record=str(name) if name else None,
            params=self._read_params(),
            json=dict(payload),
            headers={"Idempotency-Key": idempotency_key},
        )
        return self.to_record(response.json())

    def update(
        self, external_id: str, payload: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> VendorRecord:
        """PATCH only the given fields, with an ``Idempotency-Key`` (see
        :func:`update_idempotency_key`; a caller may pass its own, e.g. an outbox row id)."""
        key = idempotency_key or update_idempotency_key(external_id, payload)
        response = self._request(
            "PATCH",
            f"/opportunities/{external_id}",
            record=external_id,
            params=self._read_params(),
            json=dict(payload),
            headers={"Idempotency-Key": key},
        )
        return self.to_record(response.json())

    def rename_company(self, external_id: str, name: str) -> None:
        """``PATCH /accounts/{id}``: Truto passes the rename to the integrated CRM's account;
        an integration that does not support it answers an error, raised as a
        ``ConnectorError`` (the rename then stays a named difference)."""
        self._request(
            "PATCH",
            f"/accounts/{external_id}",
            record=name,
            params=self._params(),
            json={"name": name},
        )
        self._renamed(external_id, name)

    def delete(self, external_id: str) -> None:
        self._request(
            "DELETE", f"/opportunities/{external_id}", record=external_id, params=self._params()
        )

    def find_candidates(
        self, name: str | None, created_after: dt.datetime, keep: Keep | None = None
    ) -> list[VendorRecord]:
        """Opportunities named ``name`` created at or after ``created_after`` (listing plus a
        client-side filter: the unified list has no name filter), those ``keep`` accepts."""
        query: dict[str, str] = {}
        if "created_at" in self.query_fields():
            query["created_at[gte]"] = format_truto(created_after)
        found: list[VendorRecord] = []
        for page in self._pages("/opportunities", query):
            found += [
                r
                for r in page
                if name in (None, r.data.get("name"))
                and _created(r, created_after)
                and kept(keep, r)
            ]
        return found

    def to_record(self, data: dict[str, Any]) -> VendorRecord:
        stamp = data.get("updated_at") or data.get("created_at")
        # No stamp at all (an integration that maps none): "now" makes the engine compare the
        # record with its shadow instead of skipping it as unchanged.
        modified = parse_timestamp(str(stamp)) if stamp else utcnow()
        return VendorRecord(
            str(data["id"]),
            modified,
            data,
            created=parse_optional_timestamp(data.get("created_at")),
        )

    def _params(self) -> dict[str, str]:
        return {"integrated_account_id": self.integrated_account_id}

    def _read_params(self) -> dict[str, str]:
        """Params of calls that answer a record: writes too, so every record has one shape."""
        if self.options.get("remote_data"):
            return self._params()
        return {**self._params(), "truto_ignore_remote_data": "true"}

    # -- references ----------------------------------------------------------------------
    def load_references(self, kind: str) -> Iterator[Reference]:
        ignore = {"truto_ignore_remote_data": "true"}
        if kind == "company":
            for page in self._raw_pages("/accounts", ignore):
                yield from (Reference("company", str(a["id"]), str(a.get("name"))) for a in page)
        elif kind == "owner":
            for page in self._raw_pages("/users", ignore):
                yield from (Reference("owner", str(u["id"]), _email(u)) for u in page)
        elif kind == "stage":
            yield from self._stages()
        else:
            raise NotImplementedError(f"truto has no {kind} references")

    def _stages(self) -> Iterator[Reference]:
        """Stages from ``GET /stages``. Behind Salesforce a stage is a ``StageName`` picklist
        value, so its id *is* its name. ``remote_data`` is kept in ``extra`` (e.g. Salesforce's
        ``IsClosed``/``IsWon``, Capsule's ``probability``) for the mapping to read."""
        for page in self._raw_pages("/stages", {}):
            for stage in page:
                name = str(stage.get("name") or stage["id"])
                extra = {"remote_data": stage["remote_data"]} if "remote_data" in stage else {}
                yield Reference("stage", str(stage["id"]), name, extra)

    # -- vendor error signals ------------------------------------------------------------
    def _error_message(self, response: httpx.Response) -> tuple[str, dict[str, str]]:
        """Truto's ``{"statusCode", "error", "message", "details"}`` envelope."""
        try:
            body = response.json()
        except ValueError:
            return response.text[:500] or response.reason_phrase, {}
        if not isinstance(body, dict):
            return str(body), {}
        message = str(body.get("message") or body.get("error") or response.reason_phrase)
        return message, _field_errors(body.get("details"))

    def retry_after(self, response: httpx.Response) -> float | None:
        """``ratelimit-reset`` (seconds until the window resets), then ``Retry-After``."""
        value = response.headers.get("ratelimit-reset")
        if value is not None:
            try:
                return float(value)
            except ValueError:
                pass
        return super().retry_after(response)


def update_idempotency_key(
    external_id: str, payload: Mapping[str, Any], nonce: str | None = None
) -> str:
    """The key of one update: record id, a hash of the payload, and a per-call nonce.

    The transport re-sends the *same* request on a retry, so a retry replays. The nonce keeps two
    separate writes of one payload apart: Truto replays a key's first answer for as long as it
    keeps it, so with id + hash alone an ``A→B, B→A, A→B`` sequence would have its third write
    answered from the first one's cache and never applied. A PATCH the engine sends again under
    a new key is harmless: it sets the same fields to the same values.
    """
    digest = hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    return f"crmsync-update-{external_id}-{digest[:24]}-{nonce or uuid.uuid4().hex[:12]}"


def _created(record: VendorRecord, created_after: dt.datetime) -> bool:
    created = record.data.get("created_at")
    return created is None or parse_timestamp(str(created)) >= created_after


def _email(user: Mapping[str, Any]) -> str:
    if user.get("email"):
        return str(user["email"])
    emails = user.get("emails") or []
    primary = [e for e in emails if isinstance(e, dict) and e.get("is_primary")] or emails
    first = primary[0] if primary else ""
    return str(first.get("email", "") if isinstance(first, dict) else first)


def _field_errors(details: object) -> dict[str, str]:
    """Field -> message from ``details``: Truto's own ``failures`` list, or the upstream's
    error passed through under ``remote_error`` (Salesforce list, Capsule ``errors``)."""
    if not isinstance(details, dict):
        return {}
    items: list[Any] = list(details.get("failures") or [])
    remote = details.get("remote_error")
    if isinstance(remote, dict):
        items += list(remote.get("errors") or [])
    elif isinstance(remote, list):
        items += remote
    errors: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        names = item.get("fields") or [item.get("field") or item.get("path")]
        for name in names:
            if name:
                errors[str(name)] = str(item.get("message", ""))
    return errors
