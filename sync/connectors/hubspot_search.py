"""HubSpot's search, as capture and create recovery use it
(https://developers.hubspot.com/docs/api/crm/search; vendors.md §5.1, §5.8).

Capture is ``search`` on ``hs_lastmodifieddate`` (GTE, ascending, 200 a page). One query pages
through at most 10,000 results: before that, the window restarts at the last stamp seen, and
deals already yielded at that stamp are dropped when the new window re-reads them. Search results
carry no associations: the companies of a page come from one v4 batch read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from sync.connectors.base import VendorRecord
from sync.connectors.errors import ConnectorError
from sync.timefmt import parse_timestamp

SEARCH_PAGE = 200
SEARCH_CAP = 10_000


class Searcher(Protocol):
    """What search needs of the connector (``sync.connectors.hubspot``)."""

    system: str

    def properties(self) -> list[str]: ...
    def search(self, body: dict[str, Any], *, clocked: bool = False) -> dict[str, Any]: ...
    def with_companies(self, items: list[dict[str, Any]]) -> list[VendorRecord]: ...


def changed(connector: Searcher, since: dt.datetime) -> Iterator[list[VendorRecord]]:
    """Deals modified at or after ``since``, oldest first, re-windowed before the cap."""
    window = ms(since)
    after = 0
    tail_stamp, tail_ids = window, set[str]()  # ids already yielded at the latest stamp
    while True:
        body = connector.search(_modified_since(connector, window, after), clocked=True)
        page = [
            item
            for item in body.get("results") or []
            if not (_stamp_ms(item) == window and item["id"] in tail_ids)
        ]
        for item in body.get("results") or []:
            stamp = _stamp_ms(item)
            if stamp > tail_stamp:
                tail_stamp, tail_ids = stamp, set()
            tail_ids.add(str(item["id"]))
        if page:
            yield connector.with_companies(page)
        following = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not following or not body.get("results"):
            return
        if int(following) + SEARCH_PAGE > SEARCH_CAP:  # the next pages would pass the cap
            if tail_stamp == window:
                raise ConnectorError(
                    f"hubspot: more than {SEARCH_CAP} deals share the modification stamp "
                    f"{window}; the search cannot page past them",
                    system=connector.system,
                )
            window, after = tail_stamp, 0
        else:
            after = int(following)


def _modified_since(connector: Searcher, window: int, after: int) -> dict[str, Any]:
    since = {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(window)}
    body: dict[str, Any] = {
        "filterGroups": [{"filters": [since]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": connector.properties(),
        "limit": SEARCH_PAGE,
    }
    if after:
        body["after"] = str(after)
    return body


def candidates(
    connector: Searcher, name: str | None, created_after: dt.datetime
) -> list[VendorRecord]:
    """Deals created at or after ``created_after`` (named ``name``): a lost create's look-up."""
    filters: list[dict[str, Any]] = [
        {"propertyName": "createdate", "operator": "GTE", "value": str(ms(created_after))}
    ]
    if name is not None:
        filters.append({"propertyName": "dealname", "operator": "EQ", "value": name})
    body = {
        "filterGroups": [{"filters": filters}],
        "properties": connector.properties(),
        "limit": SEARCH_PAGE,
    }
    found = connector.search(body).get("results") or []
    records = connector.with_companies(found) if found else []
    return [r for r in records if name is None or r.data.get("dealname") == name]


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _stamp_ms(item: Mapping[str, Any]) -> int:
    props = item.get("properties") or {}
    return ms(parse_timestamp(str(props.get("hs_lastmodifieddate") or item.get("updatedAt"))))
