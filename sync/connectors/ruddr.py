"""Ruddr workspace API connector (``https://www.ruddr.io/api/workspace``).

Docs: https://docs.ruddr.io/ — opportunities
https://docs.ruddr.io/api-reference/opportunities/create-an-opportunity, pagination
https://docs.ruddr.io/guides/pagination, errors https://docs.ruddr.io/guides/errors, rate limits
https://docs.ruddr.io/guides/rate-limits.

Quirks handled here:

- No modified-since filter on ``GET /opportunities`` and a fixed ``createdAt``-descending order:
  capture is a full ``scan()`` (pages of 100, cursor ``startingAfter=<last id>`` + ``hasMore``)
  and the engine compares ``modifiedAt`` itself.
- ``startingAfter`` must name a record still in the list: if the record our cursor points at is
  deleted mid-scan Ruddr answers 400. The scan then resumes after an earlier record of the last
  page that still exists, or restarts from the top; ids already yielded are never yielded twice.
- No name filter is documented for opportunities, so ``find_candidates`` pages through the
  listing, newest first, and stops at the first record created before ``created_after`` — cost:
  one request per 100 opportunities created since then (usually one).
- No ``Retry-After`` on 429: the HTTP layer backs off exponentially (1 s, 2 s, 4 s, 8 s as the docs
  advise). Error bodies are ``{"status", "message", "errors": ["'name' is required", ...]}``.
- Creates answer 200 with the full object, updates are PATCH with only the fields given, deletes
  answer 204. There is no idempotency key.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx

from sync.connectors.base import (
    CaptureMode,
    Keep,
    Reference,
    RestCollection,
    VendorRecord,
    kept,
)
from sync.connectors.errors import Rejected, Retryable
from sync.connectors.pagination import CursorPaginator, RecentIds
from sync.timefmt import parse_optional_timestamp, parse_timestamp

PAGE_SIZE = 100
#: How often one listing may start over because its cursor record vanished.
MAX_RESTARTS = 5
_FIELD_IN_MESSAGE = re.compile(r"'([^']+)'")


def ruddr_paginator() -> CursorPaginator:
    """Ruddr: ``{"results": [...], "hasMore": bool}``; next page ``startingAfter=<last id>``.

    https://docs.ruddr.io/guides/pagination — always sorted ``createdAt`` descending.
    """
    return CursorPaginator(cursor_param="startingAfter", has_more_key="hasMore")


class RuddrConnector(RestCollection):
    """Opportunities, companies, members and opportunity stages of one Ruddr workspace."""

    vendor: ClassVar[str] = "ruddr"
    collection: ClassVar[str] = "/opportunities"
    capture: ClassVar[CaptureMode] = "scan"
    max_page_size: ClassVar[int] = PAGE_SIZE

    # -- listing -------------------------------------------------------------------------
    def scan(self) -> Iterator[list[VendorRecord]]:
        seen = RecentIds()  # a resumed cursor or a re-read lists a few deals again
        for page in self._pages("/opportunities", clocked=True):
            records = [self.to_record(r) for r in page if r["id"] not in seen]
            seen.add(r.external_id for r in records)
            if records:
                yield records

    def find_candidates(
        self, name: str | None, created_after: dt.datetime, keep: Keep | None = None
    ) -> list[VendorRecord]:
        """Opportunities named ``name`` (any: None) created at or after ``created_after``,
        those ``keep`` accepts (once each: a cursor restart lists some again)."""
        found: dict[str, VendorRecord] = {}
        for page in self._pages("/opportunities"):
            for raw in page:
                if parse_timestamp(raw["createdAt"]) < created_after:
                    return list(found.values())  # newest first: everything further is older
                if name is None or raw.get("name") == name:
                    record = self.to_record(raw)
                    if kept(keep, record):
                        found[raw["id"]] = record
        return list(found.values())

    def _pages(self, path: str, *, clocked: bool = False) -> Iterator[list[dict[str, Any]]]:
        """Every page of a cursor listing, surviving the deletion of the cursor's record.
        ``clocked``: a capture listing, which notes the vendor's clock (``listing_clock``)."""
        fetch = self._listing_fetch() if clocked else self._fetch
        paginator = ruddr_paginator()
        fallbacks: list[str] = []  # earlier ids of the last page, newest cursor candidate last
        restarts = 0
        while paginator.has_next:
            params = {"limit": PAGE_SIZE, **paginator.next_request_params()}
            try:
                body = fetch(path, params)
            except Rejected as exc:
                if paginator.cursor is None or "startingAfter" not in exc.message:
                    raise
                # The cursor's record was deleted: resume after an earlier one, else restart.
                paginator = ruddr_paginator()
                if fallbacks:
                    paginator.cursor = fallbacks.pop()
                elif (restarts := restarts + 1) > MAX_RESTARTS:
                    raise Retryable(f"{path} keeps losing its cursor", system=self.system) from exc
                continue
            page = paginator.update(body)
            fallbacks = [r["id"] for r in page[:-1]]
            if page:
                yield page

    def _fetch(self, url: str, params: dict[str, Any]) -> Any:
        return self._request("GET", url, params=params).json()

    def to_record(self, raw: dict[str, Any]) -> VendorRecord:
        return VendorRecord(
            str(raw["id"]),
            parse_timestamp(raw["modifiedAt"]),
            raw,
            created=parse_optional_timestamp(raw.get("createdAt")),
        )

    # -- references ----------------------------------------------------------------------
    def load_references(self, kind: str) -> Iterator[Reference]:
        if kind == "company":
            for page in self._pages("/companies"):
                yield from (Reference("company", c["id"], c["name"]) for c in page)
        elif kind == "owner":
            for page in self._pages("/members"):
                yield from (
                    Reference("owner", m["id"], m["email"], {"name": m.get("name")})
                    for m in page
                    if m.get("email")
                )
        elif kind == "stage":
            for page in self._pages("/opportunity-stages"):
                yield from (self._stage(s) for s in page)
        else:
            raise NotImplementedError(f"{self.vendor} has no {kind} references")

    @staticmethod
    def _stage(stage: dict[str, Any]) -> Reference:
        extra = {
            "status": stage.get("statusId"),
            "probability": stage.get("probability"),
            "pipeline_id": stage.get("opportunityPipelineId"),
            "active": stage.get("isActive", True),
        }
        return Reference("stage", stage["id"], stage["name"], extra)

    def create_reference(self, kind: str, key: str) -> Reference:
        if kind != "company":
            return super().create_reference(kind, key)
        company = self._request("POST", "/companies", json={"name": key}, record=key).json()
        reference = Reference("company", company["id"], company["name"])
        self._remember_reference(reference)
        return reference

    def rename_company(self, external_id: str, name: str) -> None:
        """``PATCH /companies/{id}`` with the new name."""
        self._request("PATCH", f"/companies/{external_id}", json={"name": name}, record=name)
        self._renamed(external_id, name)

    # -- vendor signals ------------------------------------------------------------------
    def _error_message(self, response: httpx.Response) -> tuple[str, dict[str, str]]:
        """``{"status", "message", "errors": ["'name' is required"]}`` -> message, fields."""
        try:
            body = response.json()
        except ValueError:
            return super()._error_message(response)
        if not isinstance(body, dict):
            return super()._error_message(response)
        message = str(body.get("message") or response.reason_phrase)
        errors = body.get("errors") or []
        fields: dict[str, str] = {}
        for item in errors if isinstance(errors, list) else [errors]:
            match = _FIELD_IN_MESSAGE.search(str(item))
            fields.setdefault(match.group(1) if match else "_", str(item))
        if fields:
            message = f"{message} ({'; '.join(str(e) for e in errors)})"
        return message, fields

    def retry_after(self, response: httpx.Response) -> float | None:
        return None  # Ruddr sends no wait signal; the HTTP layer backs off exponentially
