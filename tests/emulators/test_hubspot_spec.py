"""The HubSpot emulator's answers validate against HubSpot's own OpenAPI documents
(tests/specs/hubspot-*-v3.json, copies of shared/specs: see tests/specs/README.md).

The deals spec names deals by object type id (``/crm/v3/objects/0-3``); HubSpot's client and
docs use ``/crm/v3/objects/deals``. The emulator serves both; answers to the ``deals`` spelling
are checked under the spec's path. Each document is read once per session with openapi-core.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from sync.emulators.hubspot import TOKEN, HubSpotEmulator

SPECS = Path(__file__).resolve().parents[1] / "specs"
HOST = "https://api.hubapi.com"

Validate = Callable[[httpx.Response], None]


def _load(name: str) -> OpenAPI:
    with (SPECS / f"hubspot-{name}-v3.json").open() as handle:
        return OpenAPI.from_dict(json.load(handle))


@pytest.fixture(scope="session")
def specs() -> dict[str, OpenAPI]:
    return {name: _load(name) for name in ("deals", "pipelines", "owners")}


@pytest.fixture(scope="session")
def error_schema() -> dict[str, Any]:
    """deals.json's ``Error`` schema, with the ``ErrorDetail`` it refers to."""
    with (SPECS / "hubspot-deals-v3.json").open() as handle:
        schemas = json.load(handle)["components"]["schemas"]
    return {**schemas["Error"], "components": {"schemas": schemas}}


@pytest.fixture
def check_spec(specs: dict[str, OpenAPI], error_schema: dict[str, Any]) -> Validate:
    """Validate one emulator answer against the spec document for its path."""

    def check(response: httpx.Response) -> None:
        request = response.request
        path = request.url.path.replace("/crm/v3/objects/deals", "/crm/v3/objects/0-3")
        spec = specs[
            "pipelines" if "/pipelines/" in path else "owners" if "/owners" in path else "deals"
        ]
        mock_request = MockRequest(
            HOST,
            request.method.lower(),
            path,
            args=dict(request.url.params),
            data=request.content or None,
            content_type="application/json",
        )
        mock_response = MockResponse(
            response.content, status_code=response.status_code, content_type="application/json"
        )
        if response.status_code >= 400:
            # The spec's error answers are "*/*", which openapi-core does not decode: the body
            # is checked against the spec's own ``Error`` schema directly.
            jsonschema.validate(response.json(), error_schema)
            return
        spec.validate_response(mock_request, mock_response)

    return check


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    emulator = HubSpotEmulator(seed=5, seed_opportunities=25)
    emulator.index_lag = 0
    transport = emulator.transport()
    with httpx.Client(
        transport=transport, base_url=HOST, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        yield http
    transport.close()


def _create(client: httpx.Client, **props: str) -> httpx.Response:
    body = {"properties": {"dealname": "Spec deal", "dealstage": "qualifiedtobuy", **props}}
    return client.post("/crm/v3/objects/deals", json=body)


def test_list_and_get_validate(client: httpx.Client, check_spec: Validate) -> None:
    """List (paged, with properties and associations) and get (also by idProperty, archived)
    answer the spec's ``CollectionResponse…ForwardPaging`` and ``…WithAssociations``."""
    page = client.get("/crm/v3/objects/deals", params={"limit": 5, "associations": "companies"})
    check_spec(page)
    after = page.json()["paging"]["next"]["after"]
    check_spec(client.get("/crm/v3/objects/deals", params={"after": after, "properties": "amount"}))
    created = _create(client, crmsync_id="rec-1")
    check_spec(created)
    deal_id = created.json()["id"]
    check_spec(client.get(f"/crm/v3/objects/deals/{deal_id}"))
    check_spec(client.get("/crm/v3/objects/deals/rec-1", params={"idProperty": "crmsync_id"}))
    deleted = client.delete(f"/crm/v3/objects/deals/{deal_id}")
    assert deleted.status_code == 204
    archived = client.get(f"/crm/v3/objects/deals/{deal_id}", params={"archived": "true"})
    assert archived.json()["archived"] is True
    check_spec(archived)


def test_writes_and_errors_validate(client: httpx.Client, check_spec: Validate) -> None:
    """Create (201), PATCH, and the ``Error`` bodies of a refused property and a missing deal."""
    created = _create(client, amount="1200.50", closedate="2026-05-01")
    assert created.status_code == 201
    check_spec(created)
    deal_id = created.json()["id"]
    patched = client.patch(
        f"/crm/v3/objects/deals/{deal_id}", json={"properties": {"dealstage": "closedwon"}}
    )
    check_spec(patched)
    refused = client.patch(
        f"/crm/v3/objects/deals/{deal_id}", json={"properties": {"hs_object_id": "1"}}
    )
    assert refused.status_code == 400
    check_spec(refused)
    missing = client.get("/crm/v3/objects/deals/1")
    assert missing.status_code == 404
    check_spec(missing)


def test_batches_validate_including_207(client: httpx.Client, check_spec: Validate) -> None:
    """Batch create / read / update / upsert answer their schemas, a partial failure the
    ``…WithErrors`` one (207)."""
    inputs = [
        {
            "properties": {"dealname": f"B{i}", "dealstage": "qualifiedtobuy"},
            "objectWriteTraceId": str(i),
        }
        for i in range(3)
    ]
    created = client.post("/crm/v3/objects/deals/batch/create", json={"inputs": inputs})
    assert created.status_code == 201
    check_spec(created)
    ids = [r["id"] for r in created.json()["results"]]
    bad = [
        *inputs,
        {"properties": {"dealname": "Bad", "dealstage": "nope"}, "objectWriteTraceId": "x"},
    ]
    partial = client.post("/crm/v3/objects/deals/batch/create", json={"inputs": bad})
    assert partial.status_code == 207
    check_spec(partial)
    read = client.post(
        "/crm/v3/objects/deals/batch/read",
        json={"inputs": [{"id": i} for i in [*ids, "1"]], "properties": ["dealname"]},
    )
    assert read.status_code == 207
    check_spec(read)
    update = [{"id": i, "properties": {"amount": "5"}} for i in ids]
    check_spec(client.post("/crm/v3/objects/deals/batch/update", json={"inputs": update}))
    upsert = [
        {
            "id": "up-1",
            "idProperty": "crmsync_id",
            "properties": {"dealname": "U", "dealstage": "closedwon"},
        }
    ]
    upserted = client.post("/crm/v3/objects/deals/batch/upsert", json={"inputs": upsert})
    assert upserted.json()["results"][0]["new"] is True
    check_spec(upserted)


def test_search_pipelines_and_owners_validate(client: httpx.Client, check_spec: Validate) -> None:
    """Search answers ``CollectionResponseWithTotal…``; pipelines and owners their own specs."""
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}
        ],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "limit": 10,
    }
    found = client.post("/crm/v3/objects/deals/search", json=body)
    assert found.json()["total"] >= 25
    check_spec(found)
    check_spec(client.get("/crm/v3/pipelines/deals"))
    check_spec(client.get("/crm/v3/pipelines/deals/default"))
    check_spec(client.get("/crm/v3/owners", params={"limit": 2}))
