"""Close opportunities (https://developer.close.com/).

Close's quirks, each handled here and nowhere else:

- **Auth** is HTTP Basic with the API key as username and an empty password
  (https://developer.close.com/ , "Authentication").
- **Listing** is offset paging (``_skip``/``_limit``) with a *maximum* ``_skip``; deep paging
  must split the time window instead (https://developer.close.com/api/overview/pagination).
  :class:`WindowPaginator` orders by ``date_updated`` and restarts each page's window at the last
  stamp it saw, so ``_skip`` only grows inside one shared stamp.
- **PUT acts as PATCH**: send only the fields that changed
  (https://developer.close.com/api/overview/fields).
- **``lead_id`` on create**: omitted, Close invents an "Untitled" lead
  (https://developer.close.com/api/resources/opportunities/create) — we refuse to send it.
- **Custom fields** are flat ``custom.cf_…`` keys on the object
  (https://developer.close.com/api/resources/custom-fields).
- **Deletes** come from the event log, cursor-paged, at most 50 a page, 30 days retention
  (https://developer.close.com/resources/event-log).
- **Errors**: 400 bodies are ``{"errors": [...], "field-errors": {...}}``; a 429 carries
  ``{"error": {"rate_reset": seconds}}`` and a ``ratelimit: limit=…, remaining=…, reset=…``
  header (https://developer.close.com/topics/rate-limits ,
  https://developer.close.com/api/overview/http-response-codes).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx

from sync.connectors.base import (
    BaseConnector,
    CaptureMode,
    Deletion,
    Keep,
    Reference,
    VendorRecord,
    error_body,
    kept,
)
from sync.connectors.errors import AuthFailed, ConnectorError, Rejected
from sync.connectors.http.auth import CloseBasicAuth
from sync.connectors.pagination import (
    CursorPaginator,
    JSONObject,
    OffsetPaginator,
    Paginator,
    iterate_pages,
)
from sync.timefmt import EPOCH, format_close, parse_optional_timestamp, parse_timestamp

#: Close caps an event-log page at 50 (https://developer.close.com/resources/event-log).
EVENT_PAGE_SIZE = 50
_RATELIMIT_RESET = re.compile(r"(?:^|[,;\s])reset\s*=\s*([0-9.]+)")


class WindowPaginator(Paginator):
    """Offset paging over a list ordered by a datetime field, re-windowed on that field.

    Each request is ``<field>__gte=<window>&_order_by=<field>[&_skip=<skip>]``. After a page the
    window moves to the page's last stamp and ``skip`` resets to 0; ids already yielded *at the
    window stamp* are dropped when the next window re-reads them. Only when a whole page shares
    the window stamp does ``skip`` grow (within that stamp), so it never gets deep enough to hit
    Close's maximum ``_skip``. Stops on an empty page or ``has_more: false``; raises
    :class:`~sync.connectors.pagination.PaginationLoop` rather than ask for a (window, skip) twice.
    """

    records_key = "data"

    def __init__(self, *, window: str, stamp_field: str = "date_updated", limit: int = 100):
        super().__init__()
        self.window = window
        self.stamp_field = stamp_field
        self.limit = limit
        self.skip = 0
        self.at_window: set[str] = set()  # ids already yielded that carry the window stamp
        self._remember(f"{window}|0")

    def next_request_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            f"{self.stamp_field}__gte": self.window,
            "_order_by": self.stamp_field,
            "_limit": self.limit,
        }
        if self.skip:
            params["_skip"] = self.skip
        return params

    def update(self, body: Any) -> list[JSONObject]:
        """Take one page; return its records not yielded before, and move the window."""
        at, window = self.stamp_field, self.window
        page = self.records(body)
        fresh = [r for r in page if not (r[at] == window and r["id"] in self.at_window)]
        super().update(body)  # stops on an empty page, else _advance
        return fresh

    def _advance(self, body: Any, page: list[JSONObject]) -> None:
        at, window = self.stamp_field, self.window
        last = page[-1][at]
        if parse_timestamp(last) > parse_timestamp(window):
            self.window, self.skip = last, 0
            self.at_window = {r["id"] for r in page if r[at] == last}
        else:  # a whole page inside one stamp: only now fall back to _skip, within that stamp
            self.skip += len(page)
            self.at_window |= {r["id"] for r in page}
        if body.get("has_more") is False:
            self.has_next = False
        else:
            self._remember(f"{self.window}|{self.skip}")


def event_paginator() -> CursorPaginator:
    """Close's event log: ``{data, cursor_next}``; the next page is ``_cursor=<cursor_next>``."""
    return CursorPaginator(
        cursor_param="_cursor",
        records_key="data",
        has_more_key=None,
        token_of=lambda body, _records: body.get("cursor_next"),
    )


class CloseConnector(BaseConnector):
    """Opportunities in Close, through ``/api/v1``.

    Options: ``name_field`` — the ``custom.cf_…`` key of the custom field holding the canonical
    opportunity name (Close opportunities have no name of their own); used by
    :meth:`find_candidates`.
    """

    vendor: ClassVar[str] = "close"
    capture: ClassVar[CaptureMode] = "incremental"
    has_delete_feed: ClassVar[bool] = True
    max_page_size: ClassVar[int] = 100

    @classmethod
    def make_auth(cls, credentials: Mapping[str, str], *, base_url: str) -> httpx.Auth | None:
        """Basic auth: ``credentials.api_key`` as user name, empty password."""
        api_key = credentials.get("api_key")
        if not api_key:
            raise AuthFailed("close needs credentials.api_key", system=cls.vendor)
        return CloseBasicAuth(api_key)

    # -- listing -------------------------------------------------------------------------
    def list_changed(self, since: dt.datetime) -> Iterator[list[VendorRecord]]:
        """Pages of opportunities whose ``date_updated`` is at or after ``since``."""
        yield from self._windowed("date_updated", format_close(since), clocked=True)

    def scan(self) -> Iterator[list[VendorRecord]]:
        """Every opportunity: the incremental listing from the epoch."""
        yield from self._windowed("date_updated", format_close(EPOCH), clocked=True)

    def _windowed(
        self, stamp_field: str, start: str, *, clocked: bool = False
    ) -> Iterator[list[VendorRecord]]:
        """``clocked``: a capture listing, which notes the vendor's clock (``listing_clock``)."""
        paginator = WindowPaginator(window=start, stamp_field=stamp_field, limit=self.max_page_size)
        fetch = self._listing_fetch() if clocked else self._fetch
        for page in iterate_pages(fetch, "/opportunity/", paginator):
            yield [self.to_record(item) for item in page]

    def _fetch(self, url: str, params: dict[str, Any]) -> Any:
        return self._request("GET", url, params=params).json()

    def deleted_since(self, since: dt.datetime) -> Iterator[Deletion]:
        """Opportunity deletes from the event log (latest first, ``_cursor`` pages of ≤ 50)."""
        filters = {
            "object_type": "opportunity",
            "action": "deleted",
            "date_updated__gte": format_close(since),
            "_limit": str(EVENT_PAGE_SIZE),
        }
        for events in iterate_pages(self._fetch, "/event/", event_paginator(), filters):
            for event in events:
                yield Deletion(str(event["object_id"]), parse_timestamp(event["date_updated"]))

    # -- the organization ------------------------------------------------------------------
    def account_currency(self) -> str | None:
        """The organization's currency: ``GET /me/`` names the organization, ``GET
        /organization/{id}/`` its ``currency`` (read once per connector: it rarely changes)."""
        cached: str | None = getattr(self, "_org_currency", None)
        if cached is None:
            me = self._request("GET", "/me/").json()
            org = me.get("organization_id") or (me.get("organizations") or [None])[0]
            org_id = org.get("id") if isinstance(org, dict) else org
            if not org_id:
                return None
            body = self._request("GET", f"/organization/{org_id}/").json()
            currency = body.get("currency")
            cached = str(currency).upper() if currency else None
            self._org_currency = cached
        return cached

    # -- single records ------------------------------------------------------------------
    def get(self, external_id: str) -> VendorRecord:
        response = self._request("GET", f"/opportunity/{external_id}/", record=external_id)
        return self.to_record(response.json())

    def create(self, payload: Mapping[str, Any], *, idempotency_key: str) -> VendorRecord:
        """Create an opportunity. Close has no idempotency keys: the engine's create recovery
        (:meth:`find_candidates`) covers an unknown outcome."""
        if not payload.get("lead_id"):
            raise Rejected(
                "lead_id is required: without it Close creates a new 'Untitled' lead",
                field_errors={"lead_id": "required"},
                system=self.system,
                record=idempotency_key,
            )
        response = self._request("POST", "/opportunity/", json=dict(payload))
        return self.to_record(response.json())

    def update(self, external_id: str, payload: Mapping[str, Any]) -> VendorRecord:
        """PUT only the given fields: Close's PUT merges like a PATCH."""
        response = self._request(
            "PUT", f"/opportunity/{external_id}/", record=external_id, json=dict(payload)
        )
        return self.to_record(response.json())

    def delete(self, external_id: str) -> None:
        self._request("DELETE", f"/opportunity/{external_id}/", record=external_id)

    def find_candidates(
        self, name: str | None, created_after: dt.datetime, keep: Keep | None = None
    ) -> list[VendorRecord]:
        """Opportunities created at or after ``created_after`` whose name custom field is
        ``name`` (filtered client-side: Close's list has no filter on custom fields), those
        ``keep`` accepts."""
        key = self._name_field()
        found: list[VendorRecord] = []
        for page in self._windowed("date_created", format_close(created_after)):
            found += [
                record
                for record in page
                if name in (None, record.data.get(key)) and kept(keep, record)
            ]
        return found

    def _name_field(self) -> str:
        key = self.options.get("name_field")
        if not key:
            raise ConnectorError(
                "close: options.name_field (the custom.cf_… name field) is not set",
                system=self.system,
            )
        key = str(key)
        return key if key.startswith("custom.") else f"custom.{key}"

    def to_record(self, data: dict[str, Any]) -> VendorRecord:
        return VendorRecord(
            str(data["id"]),
            parse_timestamp(data["date_updated"]),
            data,
            created=parse_optional_timestamp(data.get("date_created")),
        )

    # -- references ----------------------------------------------------------------------
    def load_references(self, kind: str) -> Iterator[Reference]:
        if kind == "company":
            for lead in self._skip_pages("/lead/", {"_fields": "id,display_name,name"}):
                yield _lead_reference(lead)
        elif kind == "owner":
            for user in self._skip_pages("/user/"):
                yield Reference("owner", user["id"], str(user.get("email") or ""))
        elif kind == "stage":
            # Not paged: the endpoint takes no _skip/_limit (one org has a handful of statuses).
            for status in self._fetch("/status/opportunity/", {}).get("data") or []:
                extra = {
                    "status_type": status.get("type"),
                    "pipeline_id": status.get("pipeline_id"),
                }
                yield Reference("stage", status["id"], str(status["label"]), extra)
        else:
            raise NotImplementedError(f"close has no {kind} references")

    def create_reference(self, kind: str, key: str) -> Reference:
        """Create a lead named ``key`` (the only reference Close lets us create)."""
        if kind != "company":
            raise NotImplementedError(f"close cannot create {kind} references")
        lead = self._request("POST", "/lead/", json={"name": key}).json()
        reference = _lead_reference(lead)
        self._remember_reference(reference)
        return reference

    def rename_company(self, external_id: str, name: str) -> None:
        """``PUT /lead/{id}/`` with the new name (Close's lead is the company)."""
        self._request("PUT", f"/lead/{external_id}/", json={"name": name}, record=name)
        self._renamed(external_id, name)

    def custom_fields(self) -> dict[str, str]:
        """Opportunity custom fields: name -> the flat ``custom.cf_…`` key to read and write."""
        return {
            str(item["name"]): f"custom.{item['id']}"
            for item in self._skip_pages("/custom_field/opportunity/")
        }

    def _skip_pages(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> Iterator[JSONObject]:
        """Plain ``_skip`` paging for the short reference lists (leads, users, custom fields)."""
        paginator = OffsetPaginator(
            limit=self.max_page_size,
            offset_param="_skip",
            limit_param="_limit",
            records_key="data",
            has_more_key="has_more",
        )
        for page in iterate_pages(self._fetch, path, paginator, dict(params or {})):
            yield from page

    # -- vendor error signals ------------------------------------------------------------
    def _error_message(self, response: httpx.Response) -> tuple[str, dict[str, str]]:
        """Close's ``{"errors": [...], "field-errors": {...}}`` or ``{"error": ...}``."""
        body = error_body(response)
        if isinstance(body, str):
            return body, {}
        field_errors = {str(k): _text(v) for k, v in (body.get("field-errors") or {}).items()}
        errors = [_text(e) for e in body.get("errors") or []]
        error = body.get("error")
        if isinstance(error, dict):
            errors.append(str(error.get("message") or error))
        elif error:
            errors.append(str(error))
        if not errors and field_errors:
            errors = [f"{name}: {text}" for name, text in field_errors.items()]
        return "; ".join(errors) or response.reason_phrase, field_errors

    def retry_after(self, response: httpx.Response) -> float | None:
        """Body ``error.rate_reset``, then the ``ratelimit`` header's ``reset=``, then
        ``Retry-After`` (https://developer.close.com/topics/rate-limits)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            reset = body["error"].get("rate_reset")
            if isinstance(reset, int | float) and not isinstance(reset, bool):
                return float(reset)
        match = _RATELIMIT_RESET.search(response.headers.get("ratelimit", ""))
        if match:
            return float(match.group(1))
        return super().retry_after(response)


def _lead_reference(lead: Mapping[str, Any]) -> Reference:
    return Reference("company", str(lead["id"]), str(lead.get("display_name") or lead.get("name")))


def _text(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)
