"""The HubSpot emulator's documented behaviour (package docstring of sync.emulators.hubspot)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sync.emulators.hubspot import TOKEN, HubSpotEmulator

DEALS = "/crm/v3/objects/deals"


@pytest.fixture
def emulator() -> HubSpotEmulator:
    made = HubSpotEmulator(seed=9, seed_opportunities=5)
    made.index_lag = 0
    return made


@pytest.fixture
def client(emulator: HubSpotEmulator) -> Iterator[httpx.Client]:
    transport = emulator.transport()
    with httpx.Client(
        transport=transport,
        base_url="https://api.hubapi.com",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as http:
        yield http
    transport.close()


def _deal(name: str, **props: str) -> dict[str, object]:
    return {"properties": {"dealname": name, "dealstage": "qualifiedtobuy", **props}}


def _since(ms: int, limit: int = 200, after: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(ms)}
                ]
            }
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "limit": limit,
    }
    if after is not None:
        body["after"] = after
    return body


def test_stage_probability_and_closed_flags_derive_from_the_stage(client: httpx.Client) -> None:
    """``hs_deal_stage_probability`` is the stage's metadata probability (0..1), read-only."""
    made = client.post(DEALS, json=_deal("P", dealstage="closedwon")).json()
    props = "hs_deal_stage_probability,hs_is_closed_won"
    read = client.get(f"{DEALS}/{made['id']}", params={"properties": props}).json()
    assert read["properties"]["hs_deal_stage_probability"] == "1.0"
    assert read["properties"]["hs_is_closed_won"] == "true"
    refused = client.patch(
        f"{DEALS}/{made['id']}", json={"properties": {"hs_deal_stage_probability": "0.5"}}
    )
    assert refused.status_code == 400 and "READ_ONLY_VALUE" in refused.text


def test_closedate_takes_epoch_ms_or_iso_and_reads_back_iso(client: httpx.Client) -> None:
    """Both spellings of one moment store the same date-time."""
    a = client.post(DEALS, json=_deal("A", closedate="1767225600000")).json()
    b = client.post(DEALS, json=_deal("B", closedate="2026-01-01")).json()
    assert (
        a["properties"]["closedate"] == b["properties"]["closedate"] == "2026-01-01T00:00:00.000Z"
    )


def test_unique_id_property_refuses_a_second_deal(client: httpx.Client) -> None:
    """``crmsync_id`` holds unique values: a second create with one is a 409 naming the first."""
    first = client.post(DEALS, json=_deal("U", crmsync_id="r-1")).json()
    second = client.post(DEALS, json=_deal("U2", crmsync_id="r-1"))
    assert second.status_code == 409 and first["id"] in second.json()["message"]


def test_a_unique_value_is_freed_by_a_change_or_an_archive(client: httpx.Client) -> None:
    """The value a deal held is free once it holds another, or once it is archived; the new
    one is taken (the emulator keeps an index of the values, no longer a scan per create)."""
    first = client.post(DEALS, json=_deal("U", crmsync_id="r-1")).json()
    client.patch(f"{DEALS}/{first['id']}", json={"properties": {"crmsync_id": "r-2"}})
    assert client.post(DEALS, json=_deal("U2", crmsync_id="r-2")).status_code == 409
    freed = client.post(DEALS, json=_deal("U3", crmsync_id="r-1"))
    assert freed.status_code == 201
    client.delete(f"{DEALS}/{freed.json()['id']}")
    assert client.post(DEALS, json=_deal("U4", crmsync_id="r-1")).status_code == 201
    found = client.get(f"{DEALS}/r-2", params={"idProperty": "crmsync_id"})
    assert found.json()["id"] == first["id"]


def test_upsert_by_id_property_never_duplicates(client: httpx.Client) -> None:
    """Upserting the same id twice creates once and then updates."""
    body = {
        "inputs": [
            {"id": "r-9", "idProperty": "crmsync_id", "properties": _deal("Up")["properties"]}
        ]
    }
    first = client.post(f"{DEALS}/batch/upsert", json=body).json()["results"][0]
    again = client.post(f"{DEALS}/batch/upsert", json=body).json()["results"][0]
    assert (first["new"], again["new"], first["id"]) == (True, False, again["id"])


def test_batch_over_100_inputs_is_refused(client: httpx.Client) -> None:
    """101 inputs: the whole request is a 400."""
    inputs = [_deal(f"N{i}") for i in range(101)]
    assert client.post(f"{DEALS}/batch/create", json={"inputs": inputs}).status_code == 400


def test_archived_deals_leave_search_and_list_but_not_the_archived_listing(
    client: httpx.Client,
) -> None:
    """DELETE archives: gone from list and search, listed with ``archived=true``."""
    made = client.post(DEALS, json=_deal("Gone")).json()
    client.delete(f"{DEALS}/{made['id']}")
    assert client.get(f"{DEALS}/{made['id']}").status_code == 404
    archived = client.get(DEALS, params={"archived": "true", "limit": 100}).json()["results"]
    assert [d["id"] for d in archived] == [made["id"]]
    found = client.post(f"{DEALS}/search", json=_since(0)).json()["results"]
    assert made["id"] not in {d["id"] for d in found}


def test_search_sees_writes_only_after_the_index_lag(
    emulator: HubSpotEmulator, client: httpx.Client
) -> None:
    """With a lag, a new deal is not found until the clock passed it."""
    emulator.index_lag = 5
    made = client.post(DEALS, json=_deal("Lagging")).json()
    ids = {d["id"] for d in client.post(f"{DEALS}/search", json=_since(0)).json()["results"]}
    assert made["id"] not in ids
    emulator.clock.advance(6)
    ids = {d["id"] for d in client.post(f"{DEALS}/search", json=_since(0)).json()["results"]}
    assert made["id"] in ids


def test_search_pages_up_to_10000_results_and_no_further(
    emulator: HubSpotEmulator, client: httpx.Client
) -> None:
    """Past 10,000 results of one query the next page is a 400: re-window instead."""
    emulator.add_opportunities(10_050, seed=3)
    page = client.post(f"{DEALS}/search", json=_since(0, after="9800")).json()
    assert page["total"] >= 10_050 and page["paging"]["next"]["after"] == "10000"
    refused = client.post(f"{DEALS}/search", json=_since(0, after="10000"))
    assert refused.status_code == 400


def test_filters_compare_by_property_type(client: httpx.Client) -> None:
    """Numbers compare as numbers (BETWEEN, IN), missing properties fail HAS_PROPERTY."""
    client.post(DEALS, json=_deal("Small", amount="9"))
    client.post(DEALS, json=_deal("Big", amount="100"))

    def names(*filters: dict[str, object]) -> set[str]:
        body = {"filterGroups": [{"filters": list(filters)}], "properties": ["dealname"]}
        results = client.post(f"{DEALS}/search", json=body).json()["results"]
        return {d["properties"]["dealname"] for d in results}

    between = {"propertyName": "amount", "operator": "BETWEEN", "value": "5", "highValue": "10"}
    assert names(between) == {"Small"}
    assert "Big" in names({"propertyName": "amount", "operator": "GT", "value": "99.5"})
    assert names({"propertyName": "dealname", "operator": "IN", "values": ["big"]}) == {"Big"}
    assert "Small" not in names({"propertyName": "crmsync_id", "operator": "HAS_PROPERTY"})


def test_rate_limits_report_headers_and_name_the_policy(
    emulator: HubSpotEmulator, client: httpx.Client
) -> None:
    """Headers on every answer; a spent ten-secondly budget, then the daily one, answer 429
    naming ``TEN_SECONDLY_ROLLING`` and ``DAILY``; search has its own per-second budget."""
    emulator.rate_limit.enabled = True
    emulator.rate_limit.burst = emulator.rate_limit.rate = 2
    first = client.get(DEALS)
    assert first.headers["X-HubSpot-RateLimit-Max"] == "2"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "650000"
    client.get(DEALS)
    limited = client.get(DEALS)
    assert limited.status_code == 429 and limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    searches = [client.post(f"{DEALS}/search", json=_since(0)) for _ in range(8)]
    assert searches[-1].json().get("policyName") == "SECONDLY"
    emulator.rate_limit.burst = emulator.rate_limit.rate = 1000
    emulator.daily_limit = 0
    assert client.get(DEALS).json()["policyName"] == "DAILY"


def test_portal_details_and_scopes(emulator: HubSpotEmulator, client: httpx.Client) -> None:
    """The portal's id and currencies; a token without the write scope is refused writes."""
    details = client.get("/account-info/v3/details").json()
    assert details["portalId"] == emulator.portal_id and details["companyCurrency"] == "USD"
    emulator.scopes = ["crm.objects.deals.read"]
    refused = client.post(DEALS, json=_deal("No scope"))
    assert refused.status_code == 403 and refused.json()["category"] == "MISSING_SCOPES"
