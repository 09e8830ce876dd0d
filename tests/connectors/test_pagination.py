"""Paginators: each asks for the right next page, stops on the last or an empty page, and
refuses to loop on a repeated token."""

from __future__ import annotations

from typing import Any

import pytest

from sync.connectors.pagination import (
    CursorPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PaginationLoop,
    RecentIds,
    iterate_pages,
)
from sync.connectors.ruddr import ruddr_paginator


def ids(*names: str) -> list[dict[str, Any]]:
    return [{"id": name} for name in names]


def test_ruddr_cursor_starts_after_the_last_id_until_has_more_is_false() -> None:
    """Ruddr pages chain on ``startingAfter=<last id>`` and end when ``hasMore`` is false."""
    paginator = ruddr_paginator()
    assert paginator.next_request_params() == {}
    assert paginator.update({"results": ids("a", "b"), "hasMore": True}) == ids("a", "b")
    assert paginator.next_request_params() == {"startingAfter": "b"}
    paginator.update({"results": ids("c"), "hasMore": False})
    assert not paginator.has_next


def test_cursor_stops_on_an_empty_page_even_if_more_is_claimed() -> None:
    """An empty page ends the listing whatever ``hasMore`` says."""
    paginator = ruddr_paginator()
    assert paginator.update({"results": [], "hasMore": True}) == []
    assert not paginator.has_next


def test_cursor_raises_on_a_repeated_token() -> None:
    """A vendor handing back the same cursor twice is an error, not an endless loop."""
    paginator = ruddr_paginator()
    paginator.update({"results": ids("a", "b"), "hasMore": True})
    with pytest.raises(PaginationLoop):
        paginator.update({"results": ids("a", "b"), "hasMore": True})


def test_generic_cursor_reads_its_token_from_the_body() -> None:
    """A cursor paginator can take its token from anywhere in the page body."""
    paginator = CursorPaginator(
        cursor_param="after",
        records_key="data",
        has_more_key=None,
        token_of=lambda body, _records: body["paging"]["next"],
    )
    paginator.update({"data": ids("a"), "paging": {"next": "t1"}})
    assert paginator.next_request_params() == {"after": "t1"}
    paginator.update({"data": ids("b"), "paging": {"next": None}})
    assert not paginator.has_next


def test_next_url_follows_the_vendor_url_until_null() -> None:
    """A DRF envelope is followed through its absolute ``next`` URL, then stops at null."""
    paginator = NextUrlPaginator()
    assert paginator.next_request().url is None
    paginator.update({"results": ids("a"), "next": "http://x/api/o/?page=2"})
    assert paginator.next_request().url == "http://x/api/o/?page=2"
    paginator.update({"results": ids("b"), "next": None})
    assert not paginator.has_next


def test_next_url_raises_when_the_same_url_comes_back() -> None:
    """A ``next`` URL seen before means the listing would loop."""
    paginator = NextUrlPaginator()
    paginator.update({"results": ids("a"), "next": "http://x/?page=2"})
    with pytest.raises(PaginationLoop):
        paginator.update({"results": ids("b"), "next": "http://x/?page=2"})


def test_offset_advances_by_page_length_and_stops_on_a_short_page() -> None:
    """Offset pages move by the number of records and end when a page is not full."""
    paginator = OffsetPaginator(limit=2)
    assert paginator.next_request_params() == {"offset": 0, "limit": 2}
    paginator.update({"results": ids("a", "b")})
    assert paginator.next_request_params() == {"offset": 2, "limit": 2}
    paginator.update({"results": ids("c")})
    assert not paginator.has_next


def test_offset_honours_has_more_and_total() -> None:
    """``has_more`` false, or the offset reaching ``total``, ends an offset listing."""
    by_flag = OffsetPaginator(limit=2, records_key="data", has_more_key="has_more")
    by_flag.update({"data": ids("a", "b"), "has_more": False})
    assert not by_flag.has_next
    by_total = OffsetPaginator(limit=2, total_key="count")
    by_total.update({"results": ids("a", "b"), "count": 2})
    assert not by_total.has_next


def test_iterate_pages_sends_listing_params_first_then_next_urls() -> None:
    """The listing's own params go with the first request; a next URL replaces them."""
    calls: list[tuple[str, dict[str, Any]]] = []
    pages = {
        "/o/": {"results": ids("a"), "next": "http://x/o/?page=2"},
        "http://x/o/?page=2": {"results": ids("b"), "next": None},
    }

    def fetch(url: str, params: dict[str, Any]) -> Any:
        calls.append((url, params))
        return pages[url]

    got = list(iterate_pages(fetch, "/o/", NextUrlPaginator(), {"limit": 100}))
    assert got == [ids("a"), ids("b")]
    assert calls == [("/o/", {"limit": 100}), ("http://x/o/?page=2", {})]


def test_iterate_pages_merges_cursor_params_over_listing_params() -> None:
    """A cursor listing keeps its own params on every page and adds the cursor."""
    calls: list[dict[str, Any]] = []
    bodies = iter([{"results": ids("a"), "hasMore": True}, {"results": ids("b"), "hasMore": False}])

    def fetch(url: str, params: dict[str, Any]) -> Any:
        calls.append(params)
        return next(bodies)

    assert len(list(iterate_pages(fetch, "/o", ruddr_paginator(), {"limit": 100}))) == 2
    assert calls == [{"limit": 100}, {"limit": 100, "startingAfter": "a"}]


def test_recent_ids_drop_a_repeat_but_hold_only_the_latest() -> None:
    """A listing's recent ids answer ``in`` for what was added lately, once each, and forget
    the oldest beyond the limit: memory bounded whatever the listing's size."""
    recent = RecentIds(limit=3)
    recent.add(["a", "b", "a", "c"])
    assert all(key in recent for key in "abc")
    recent.add(["d"])
    assert "a" not in recent
    assert all(key in recent for key in "bcd")
    recent.add(f"id{n}" for n in range(10_000))
    assert sum(1 for n in range(10_000) if f"id{n}" in recent) == 3
