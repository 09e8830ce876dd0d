"""ParsaLink CRM connector (``https://api.parsalink.io/api``).

Docs: opportunities https://docs.parsalink.io/api-reference/crm/opportunities, conventions and
limits https://docs.parsalink.io/api-reference/introduction, auth
https://docs.parsalink.io/api-reference/authentication.

Quirks handled here:

- No modified-since filter and no ordering parameter: capture is a full ``scan()`` in pages of
  100 (``limit`` max), following the DRF envelope's absolute ``next`` URL as the docs say; the
  engine compares ``updatedAt`` itself. Ids seen earlier in a scan are not yielded again.
- Every path ends with a slash (``/opportunities/``, ``/opportunities/{id}/``).
- Create answers 201, update (PATCH, only the fields given) 200 with the full object, delete 204.
- Validation errors are 422 with field messages; they become ``Rejected`` with field errors.
- 429 carries ``X-RateLimit-Reset``, the Unix time the window resets.
- References: accounts (companies, keyed by name) and users (owners, keyed by e-mail). Stages
  are a fixed enum, so there are no stage references; the mapping's value map handles them.
- ``find_candidates`` uses the documented ``search`` name filter, then keeps exact names created
  at or after the instant (``createdAt``): one request in the common case. ``find_like`` uses
  the documented ``accountId``, ``stage`` and ``valueMin``/``valueMax`` filters.
- Credentials: a workspace API key ``pk_…`` (``api_key``), or ``email`` + ``password`` for the
  JWT flow whose refresh tokens rotate (see ``ParsaLinkJWTAuth``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
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
from sync.connectors.errors import AuthFailed
from sync.connectors.http import (
    BearerAuth,
    ParsaLinkJWTAuth,
    reset_epoch_header,
    retry_after_header,
)
from sync.connectors.pagination import NextUrlPaginator, RecentIds
from sync.timefmt import parse_optional_timestamp, parse_timestamp

PAGE_SIZE = 100
_MESSAGE_KEYS = ("message", "detail", "error", "non_field_errors")


class ParsaLinkConnector(RestCollection):
    """Opportunities, accounts and users of one ParsaLink workspace."""

    vendor: ClassVar[str] = "parsalink"
    capture: ClassVar[CaptureMode] = "scan"
    collection: ClassVar[str] = "/opportunities/"
    item_suffix: ClassVar[str] = "/"  # DRF's trailing slash
    max_page_size: ClassVar[int] = PAGE_SIZE
    name_search: ClassVar[bool] = True

    @classmethod
    def make_auth(cls, credentials: Mapping[str, str], *, base_url: str) -> httpx.Auth | None:
        """``api_key`` (Bearer ``pk_…``) or ``email`` + ``password`` (rotating JWT)."""
        if credentials.get("api_key"):
            return BearerAuth(credentials["api_key"])
        if credentials.get("email") and credentials.get("password"):
            return ParsaLinkJWTAuth(base_url, credentials["email"], credentials["password"])
        raise AuthFailed(
            "parsalink needs credentials.api_key, or credentials.email and credentials.password",
            system=cls.vendor,
        )

    # -- listing -------------------------------------------------------------------------
    def scan(self) -> Iterator[list[VendorRecord]]:
        seen = RecentIds()  # a resumed cursor or a re-read lists a few deals again
        for page in self._pages("/opportunities/", clocked=True):
            records = [self.to_record(r, partial=True) for r in page if str(r["id"]) not in seen]
            seen.add(r.external_id for r in records)
            if records:
                yield records

    def find_candidates(
        self, name: str | None, created_after: dt.datetime, keep: Keep | None = None
    ) -> list[VendorRecord]:
        """By name: the list's ``search``. Any name: every page (no created-since filter
        exists), only after a look-up by name found nothing — a rare recovery. The summaries
        ``keep`` accepts, once each (a delete mid-listing makes a page be read again)."""
        found: dict[str, VendorRecord] = {}
        for page in self._pages("/opportunities/", {"search": name} if name else None):
            for raw in page:
                if name not in (None, raw.get("name")):
                    continue
                if parse_timestamp(raw["createdAt"]) < created_after:
                    continue
                record = self.to_record(raw, partial=True)
                if kept(keep, record):
                    found[record.external_id] = record
        return list(found.values())

    def find_like(
        self, payload: Mapping[str, Any], created_after: dt.datetime
    ) -> list[VendorRecord] | None:
        """The list filtered on the payload's account, stage and value (the filters the docs
        give; a renamed deal kept them), created at or after ``created_after``."""
        params: dict[str, Any] = {
            key: payload[key] for key in ("accountId", "stage") if payload.get(key) is not None
        }
        if payload.get("value") is not None:
            params["valueMin"] = params["valueMax"] = payload["value"]
        if not params:
            return None
        return [
            self.to_record(raw, partial=True)
            for page in self._pages("/opportunities/", params)
            for raw in page
            if parse_timestamp(raw["createdAt"]) >= created_after
        ]

    def _pages(
        self, path: str, params: dict[str, Any] | None = None, *, clocked: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page, following ``next`` URLs from an offset-based first request.

        Offsets, not ``page=N``: when records before our position are deleted mid-listing a
        page number past the new end answers 404, and every later page starts too far on.
        DRF's ``count`` shows such deletes: when it drops by ``d``, the ``d`` records before
        the page just read are read again (callers drop ids they already have).
        ``clocked``: a capture listing, which notes the vendor's clock (``listing_clock``).
        """
        fetch = self._listing_fetch() if clocked else self._fetch
        paginator = NextUrlPaginator()
        first = {"limit": PAGE_SIZE, "offset": 0, **(params or {})}
        consumed, last_count = 0, None
        while paginator.has_next:
            request = paginator.next_request()
            body = fetch(request.url or path, request.params if request.url else first)
            count = body.get("count") if isinstance(body, dict) else None
            if isinstance(count, int) and last_count is not None and count < last_count:
                yield from self._reread(path, first, consumed, last_count - count)
            last_count = count if isinstance(count, int) else None
            page = paginator.update(body)
            consumed += len(page)
            if page:
                yield page

    def _reread(
        self, path: str, first: dict[str, Any], position: int, dropped: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Read the ``dropped`` records just before ``position`` again (see ``_pages``)."""
        start = max(0, position - dropped)
        while start < position:
            size = min(PAGE_SIZE, position - start)
            body = self._fetch(path, {**first, "offset": start, "limit": size})
            records = NextUrlPaginator().records(body)
            if not records:
                return
            yield records
            start += len(records)

    def _fetch(self, url: str, params: dict[str, Any]) -> Any:
        return self._request("GET", url, params=params or None).json()

    def to_record(self, raw: dict[str, Any], *, partial: bool = False) -> VendorRecord:
        """List answers are summaries (seed 003 shows no description, contactIds, lossReason,
        closedDate or assignedToName in the list): they are marked ``partial``."""
        return VendorRecord(
            str(raw["id"]),
            parse_timestamp(raw["updatedAt"]),
            raw,
            partial,
            created=parse_optional_timestamp(raw.get("createdAt")),
        )

    # -- references ----------------------------------------------------------------------
    def load_references(self, kind: str) -> Iterator[Reference]:
        if kind == "company":
            for page in self._pages("/accounts/"):
                yield from (Reference("company", str(a["id"]), a["name"]) for a in page)
        elif kind == "owner":
            for page in self._pages("/users/"):
                yield from (
                    Reference("owner", str(u["id"]), u["email"], {"name": _full_name(u)})
                    for u in page
                    if u.get("email")
                )
        else:
            raise NotImplementedError(f"{self.vendor} has no {kind} references")

    def create_reference(self, kind: str, key: str) -> Reference:
        if kind != "company":
            return super().create_reference(kind, key)
        account = self._request("POST", "/accounts/", json={"name": key}, record=key).json()
        reference = Reference("company", str(account["id"]), account["name"])
        self._remember_reference(reference)
        return reference

    def rename_company(self, external_id: str, name: str) -> None:
        """``PATCH /accounts/{id}/`` with the new name."""
        self._request("PATCH", f"/accounts/{external_id}/", json={"name": name}, record=name)
        self._renamed(external_id, name)

    # -- vendor signals ------------------------------------------------------------------
    def _error_message(self, response: httpx.Response) -> tuple[str, dict[str, str]]:
        """DRF-style bodies: ``{"detail": ...}`` or ``{"field": ["msg", ...]}``, possibly
        wrapped as ``{"message": ..., "errors": {...}}``."""
        try:
            body = response.json()
        except ValueError:
            return super()._error_message(response)
        if not isinstance(body, dict):
            return super()._error_message(response)
        nested = body.get("errors")
        raw_fields = nested if isinstance(nested, dict) else body
        fields = {
            str(key): _text(value)
            for key, value in raw_fields.items()
            if key not in _MESSAGE_KEYS and key not in ("errors", "status", "code")
        }
        message = next((_text(body[k]) for k in _MESSAGE_KEYS if body.get(k)), "")
        details = "; ".join(f"{k}: {v}" for k, v in fields.items())
        if message and details:
            message = f"{message} ({details})"
        return message or details or response.reason_phrase, fields

    def retry_after(self, response: httpx.Response) -> float | None:
        reset = reset_epoch_header(response, "x-ratelimit-reset")
        return reset if reset is not None else retry_after_header(response)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)


def _full_name(user: Mapping[str, Any]) -> str | None:
    parts = [user.get("firstName"), user.get("lastName")]
    return " ".join(p for p in parts if p) or user.get("name")
