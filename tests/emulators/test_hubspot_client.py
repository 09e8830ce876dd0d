"""HubSpot's own Python client (``hubspot-api-client``), pointed at the emulator's host over
real HTTP, works against it unchanged: list, page, search on ``hs_lastmodifieddate``, create,
batch create and read, update, archive, pipelines and owners."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

hubspot = pytest.importorskip("hubspot")
from hubspot.crm.deals import (  # noqa: E402
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)

from sync.emulators.hubspot import TOKEN, HubSpotEmulator  # noqa: E402
from sync.emulators.server import running  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    emulator = HubSpotEmulator(seed=4, seed_opportunities=30)
    emulator.index_lag = 0
    with running(emulators={"hubspot": emulator}) as served:
        yield hubspot.Client.create(access_token=TOKEN, host=served["hubspot"].root_url)


def test_list_and_page(client: Any) -> None:
    """``get_page`` pages with ``after`` until the end and sees every seeded deal once."""
    seen: list[str] = []
    after = None
    while True:
        page = client.crm.deals.basic_api.get_page(limit=10, after=after, properties=["dealname"])
        seen += [deal.id for deal in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(seen) == len(set(seen)) >= 30


def test_create_update_archive(client: Any) -> None:
    """Create, update and archive a deal; the archived deal reads back with ``archived``."""
    deals = client.crm.deals.basic_api
    made = deals.create(
        SimplePublicObjectInputForCreate(
            properties={"dealname": "Client deal", "dealstage": "qualifiedtobuy", "amount": "10"}
        )
    )
    updated = deals.update(made.id, SimplePublicObjectInput(properties={"amount": "20"}))
    assert updated.properties["amount"] == "20"
    deals.archive(made.id)
    gone = deals.get_by_id(made.id, archived=True)
    assert gone.archived is True


def test_batch_create_and_read(client: Any) -> None:
    """Batch create then batch read returns the same deals."""
    inputs = [
        SimplePublicObjectBatchInputForCreate(
            properties={"dealname": f"Batch {i}", "dealstage": "closedwon"}, associations=[]
        )
        for i in range(3)
    ]
    made = client.crm.deals.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
    )
    ids = sorted(deal.id for deal in made.results)
    read = client.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids],
            properties=["dealname"],
            properties_with_history=[],
        )
    )
    assert sorted(deal.id for deal in read.results) == ids


def test_search_on_last_modified(client: Any) -> None:
    """Search with a ``GTE`` filter on ``hs_lastmodifieddate``, sorted ascending, pages."""
    request = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(
                filters=[Filter(property_name="hs_lastmodifieddate", operator="GTE", value="0")]
            )
        ],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        properties=["dealname", "hs_lastmodifieddate"],
        limit=20,
        after="0",
    )
    first = client.crm.deals.search_api.do_search(public_object_search_request=request)
    stamps = [deal.properties["hs_lastmodifieddate"] for deal in first.results]
    assert first.total >= 30 and stamps == sorted(stamps) and first.paging.next.after == "20"


def test_pipelines_and_owners(client: Any) -> None:
    """Pipelines carry stages with probability metadata; owners carry e-mails."""
    pipelines = client.crm.pipelines.pipelines_api.get_all(object_type="deals").results
    stage = pipelines[0].stages[0]
    assert 0 <= float(stage.metadata["probability"]) <= 1
    owners = client.crm.owners.owners_api.get_page(limit=10).results
    assert all("@" in owner.email for owner in owners)
