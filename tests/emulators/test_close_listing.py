"""The Close emulator's opportunity listing from its sorted stamp index: the same answers as
the general path (filter, sort, slice), at a cost per page that does not grow with N."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sync.emulators.close import API_KEY, CloseEmulator


class CountingClose(CloseEmulator):
    """Counts rendered opportunities: the work a list page costs."""

    rendered = 0

    def render_opportunity(self, opp: dict[str, Any]) -> dict[str, Any]:
        self.rendered += 1
        return super().render_opportunity(opp)


@pytest.fixture
def emulator() -> CountingClose:
    return CountingClose(seed=3, seed_opportunities=400)


@pytest.fixture
def client(emulator: CountingClose, emulator_client: Callable[..., httpx.Client]) -> httpx.Client:
    return emulator_client(emulator, base_url="http://close.test/api/v1", auth=(API_KEY, ""))


def listing(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/opportunity/", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"_order_by": "date_updated"},
        {"_order_by": "-date_updated", "_skip": 150, "_limit": 40},
        {"_order_by": "date_created", "_limit": 7, "_skip": 3},
        {"_order_by": "date_updated", "date_updated__gte": "MID"},
        {"_order_by": "date_updated", "date_updated__gt": "MID", "date_updated__lt": "LATE"},
        {"_order_by": "-date_updated", "date_updated__lte": "MID", "_fields": "id,value"},
        {"_order_by": "date_updated", "date_updated": "MID"},
        {"_order_by": "date_updated", "date_updated__gte": "LATE", "date_updated__lte": "MID"},
    ],
)
def test_the_indexed_listing_answers_as_the_general_path(
    client: httpx.Client, emulator: CountingClose, params: dict[str, Any]
) -> None:
    """Same page, ``has_more``, ``total_results`` and aggregates as a listing that takes the
    general path (an ``organization_id`` filter every opportunity passes)."""
    stamps = sorted(o["date_updated"] for o in emulator.collections["opportunity"].values())
    marks = {"MID": stamps[len(stamps) // 2].isoformat(), "LATE": stamps[-20].isoformat()}
    params = {k: marks.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    general = listing(client, organization_id=emulator.organization_id, **params)
    assert listing(client, **params) == general


def test_a_list_page_renders_only_its_own_records(
    client: httpx.Client, emulator: CountingClose
) -> None:
    """Reading the whole listing renders each opportunity once, not once per page."""
    window = "1970-01-01T00:00:00+00:00"
    emulator.rendered = pages = 0
    seen: set[str] = set()
    while True:
        body = listing(client, _order_by="date_updated", date_updated__gte=window, _limit=100)
        pages += 1
        seen |= {row["id"] for row in body["data"]}
        if not body["has_more"]:
            break
        window = body["data"][-1]["date_updated"]
    assert len(seen) == len(emulator.collections["opportunity"])
    assert pages >= 4
    assert emulator.rendered <= len(seen) + pages  # a window re-reads at most its edge


def test_a_write_is_seen_by_the_next_listing(client: httpx.Client) -> None:
    """The index follows writes: an edited deal moves to the end of a date_updated listing."""
    first = listing(client, _order_by="date_updated", _limit=1)["data"][0]["id"]
    assert client.put(f"/opportunity/{first}/", json={"confidence": 33}).status_code == 200
    newest = listing(client, _order_by="-date_updated", _limit=1)["data"][0]
    assert newest["id"] == first and newest["confidence"] == 33
