"""Paginators: small state machines that say what to ask for next (dlt / Meltano style).

This module holds the generic machinery — the driver, the loop guard and the common envelope
shapes (cursor, offset/limit, next URL). A vendor's own paginator (its parameter names, its
envelope, its windowing) lives in that vendor's connector file: ``ruddr_paginator`` in
``ruddr.py``, ``WindowPaginator`` / ``event_paginator`` in ``close.py``,
``next_cursor_paginator`` in ``truto.py``.

A paginator is driven by :func:`iterate_pages`: ask ``next_request()`` for the URL override and
query parameters of the next page, fetch it, hand the decoded body to ``update()`` which returns
the page's records and moves the state on, stop when ``has_next`` is false. Every paginator
stops on an empty page (a vendor that keeps saying "more" with nothing in it would loop forever)
and raises :class:`PaginationLoop` when the vendor hands back a token it already gave (a
cursor that does not move would re-read the same page forever).
"""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sync.connectors.errors import Retryable

JSONObject = dict[str, Any]


class RecentIds:
    """The ids a listing yielded lately, to drop the few a resumed or re-read page lists again
    (Ruddr's cursor resumed after an earlier id, ParsaLink's records re-read after deletes
    shifted the offsets). Only the latest ``limit``: a set of every id listed held a million
    deals' ids, some 110 MB of a worker that must stay under 300 (issue 25). A repeat older
    than that (a listing restarted from the top) is yielded again, which capture absorbs: the
    deal is linked by then and its stamp unchanged."""

    def __init__(self, limit: int = 20_000) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._limit = limit

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._ids

    def add(self, ids: Iterable[str]) -> None:
        for external_id in ids:
            if external_id in self._ids:
                continue
            self._ids.add(external_id)
            self._order.append(external_id)
            if len(self._order) > self._limit:
                self._ids.discard(self._order.popleft())


class PaginationLoop(Retryable):
    """The vendor returned a pagination token it had already returned in this listing."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What to fetch next: ``url`` (None = the listing's own path) and query ``params``."""

    url: str | None
    params: dict[str, Any]


class Paginator(abc.ABC):
    """Base state machine. Subclasses implement ``_advance`` and ``next_request_params``."""

    records_key: str = "results"

    def __init__(self) -> None:
        self.has_next = True
        self._seen_tokens: set[str] = set()

    def next_request_params(self) -> dict[str, Any]:
        """Query parameters for the next page (merged over the listing's own)."""
        return {}

    def next_url(self) -> str | None:
        """An absolute URL to fetch instead of the listing's path, when the vendor gives one."""
        return None

    def next_request(self) -> PageRequest:
        return PageRequest(self.next_url(), self.next_request_params())

    def update(self, body: Any) -> list[JSONObject]:
        """Consume one decoded page; return its records and move on (or stop)."""
        records = self.records(body)
        if not records:
            self.has_next = False
            return []
        self._advance(body, records)
        return records

    def records(self, body: Any) -> list[JSONObject]:
        items = body.get(self.records_key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise Retryable(f"page has no {self.records_key!r} list")
        return items

    @abc.abstractmethod
    def _advance(self, body: Any, records: list[JSONObject]) -> None:
        """Move the state on past a non-empty page (or set ``has_next`` false)."""

    def _remember(self, token: str) -> None:
        if token in self._seen_tokens:
            raise PaginationLoop(f"pagination token repeated: {token!r}")
        self._seen_tokens.add(token)


class CursorPaginator(Paginator):
    """Generic cursor: the next page starts after a token taken from the page.

    ``token_of(body, records)`` extracts the token (default: the last record's ``id``), and
    ``has_more_key`` names the body's "more pages" flag (None: stop only on an empty page).
    """

    def __init__(
        self,
        *,
        cursor_param: str,
        records_key: str = "results",
        has_more_key: str | None = "has_more",
        token_of: Callable[[Any, list[JSONObject]], Any] | None = None,
        initial: str | None = None,
    ) -> None:
        super().__init__()
        self.cursor_param = cursor_param
        self.records_key = records_key
        self.has_more_key = has_more_key
        self._token_of = token_of or (lambda _body, records: records[-1].get("id"))
        self.cursor = initial

    def next_request_params(self) -> dict[str, Any]:
        return {self.cursor_param: self.cursor} if self.cursor is not None else {}

    def _advance(self, body: Any, records: list[JSONObject]) -> None:
        if self.has_more_key is not None and not body.get(self.has_more_key):
            self.has_next = False
            return
        token = self._token_of(body, records)
        if token is None or token == "":
            self.has_next = False
            return
        self._remember(str(token))
        self.cursor = str(token)


class OffsetPaginator(Paginator):
    """Generic offset/limit: ``offset += len(page)`` until a short page, ``has_more`` false or
    ``total`` reached."""

    def __init__(
        self,
        *,
        limit: int,
        offset_param: str = "offset",
        limit_param: str = "limit",
        records_key: str = "results",
        has_more_key: str | None = None,
        total_key: str | None = None,
    ) -> None:
        super().__init__()
        self.limit = limit
        self.offset = 0
        self.offset_param = offset_param
        self.limit_param = limit_param
        self.records_key = records_key
        self.has_more_key = has_more_key
        self.total_key = total_key

    def next_request_params(self) -> dict[str, Any]:
        return {self.offset_param: self.offset, self.limit_param: self.limit}

    def _advance(self, body: Any, records: list[JSONObject]) -> None:
        self.offset += len(records)
        if self.has_more_key is not None:
            self.has_next = bool(body.get(self.has_more_key))
        elif self.total_key is not None and isinstance(body.get(self.total_key), int):
            self.has_next = self.offset < body[self.total_key]
        else:
            self.has_next = len(records) >= self.limit


class NextUrlPaginator(Paginator):
    """Envelope with an absolute ``next`` URL (DRF style: ``{count, next, previous, results}``).

    ParsaLink: "use the ``next`` URL directly" — https://docs.parsalink.io/api-reference/introduction.
    The first request uses the listing's path and params; later ones only the URL.
    """

    def __init__(self, *, next_key: str = "next", records_key: str = "results") -> None:
        super().__init__()
        self.next_key = next_key
        self.records_key = records_key
        self._next: str | None = None

    def next_url(self) -> str | None:
        return self._next

    def _advance(self, body: Any, records: list[JSONObject]) -> None:
        url = body.get(self.next_key)
        if not url:
            self.has_next = False
            return
        self._remember(str(url))
        self._next = str(url)


Fetch = Callable[[str, dict[str, Any]], Any]


def iterate_pages(
    fetch: Fetch, path: str, paginator: Paginator, params: dict[str, Any] | None = None
) -> Iterator[list[JSONObject]]:
    """Drive ``paginator`` over ``path``: ``fetch(url, params)`` returns the decoded body.

    The listing's own ``params`` go with the first request and with every later one that has
    no URL of its own (a ``next`` URL already carries them).
    """
    base = dict(params or {})
    while paginator.has_next:
        request = paginator.next_request()
        if request.url is None:
            body = fetch(path, {**base, **request.params})
        else:
            body = fetch(request.url, request.params)
        records = paginator.update(body)
        if records:
            yield records


__all__ = [
    "CursorPaginator",
    "JSONObject",
    "NextUrlPaginator",
    "OffsetPaginator",
    "PageRequest",
    "PaginationLoop",
    "Paginator",
    "iterate_pages",
]
