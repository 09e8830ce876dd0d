"""The HubSpot connector against the HubSpot emulator (built the way the runtime builds it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from sync.config import SystemConfig
from sync.connectors import build_connector
from sync.connectors.errors import AuthFailed, NotFound, Rejected
from sync.connectors.hubspot import HubSpotConnector
from sync.emulators.hubspot import TOKEN, HubSpotEmulator

from .conftest import FAST_RETRY

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def emulator() -> HubSpotEmulator:
    made = HubSpotEmulator(seed=6, seed_opportunities=20)
    made.index_lag = 0
    return made


@pytest.fixture
def connector(emulator: HubSpotEmulator) -> Iterator[HubSpotConnector]:
    cfg = SystemConfig(
        type="hubspot", base_url="https://api.hubapi.com", credentials={"token": TOKEN}
    )
    built = build_connector("hubspot", cfg, transport=emulator.transport(), retry=FAST_RETRY)
    assert isinstance(built, HubSpotConnector)
    yield built
    built.close()


def _ids(pages: Iterator[list[object]]) -> list[str]:
    return [record.external_id for page in pages for record in page]  # type: ignore[attr-defined]


def test_list_changed_reads_every_deal_once_with_its_company(connector: HubSpotConnector) -> None:
    """Search on ``hs_lastmodifieddate`` yields each deal once, flat, with ``company_id``."""
    pages = list(connector.list_changed(EPOCH))
    records = [r for page in pages for r in page]
    assert len(records) == len({r.external_id for r in records}) >= 20
    assert all(r.data["company_id"] and r.data["dealname"] for r in records)
    assert connector.listing_clock is not None


@pytest.mark.slow
def test_list_changed_rewindows_past_the_10000_cap(
    emulator: HubSpotEmulator, connector: HubSpotConnector
) -> None:
    """More than 10,000 changed deals are all read: the window restarts before the cap."""
    emulator.add_opportunities(10_300, seed=2)
    ids = _ids(connector.list_changed(EPOCH))  # type: ignore[arg-type]
    assert len(ids) == len(set(ids)) == len(emulator.collections["deals"])


def test_scan_pages_the_plain_list(emulator: HubSpotEmulator, connector: HubSpotConnector) -> None:
    """``scan`` reads every deal through the list, 100 a page."""
    ids = _ids(connector.scan())  # type: ignore[arg-type]
    assert sorted(ids) == sorted(emulator.collections["deals"])


def test_create_is_idempotent_by_crmsync_id(
    emulator: HubSpotEmulator, connector: HubSpotConnector
) -> None:
    """A create repeated with the same crmsync id answers with the deal the first one made,
    marked ``existing`` (the engine adopts it)."""
    company = emulator.company_named("Globex")
    payload = {
        "dealname": "Once",
        "dealstage": "qualifiedtobuy",
        "crmsync_id": "rec-1",
        "amount": 10,
        "company_id": company,
    }
    first = connector.create(payload, idempotency_key="k1")
    again = connector.create(payload, idempotency_key="k1")
    assert first.external_id == again.external_id and again.data["company_id"] == company
    assert again.existing and not first.existing
    assert (
        sum(d["props"].get("crmsync_id") == "rec-1" for d in emulator.collections["deals"].values())
        == 1
    )


def test_update_moves_the_company_and_clears_with_none(
    emulator: HubSpotEmulator, connector: HubSpotConnector
) -> None:
    """PATCH sends strings (None clears); a new company replaces the association."""
    made = connector.create(
        {"dealname": "Move", "dealstage": "qualifiedtobuy", "description": "x"}, idempotency_key="k"
    )
    hooli = emulator.company_named("Hooli")
    updated = connector.update(made.external_id, {"description": None, "company_id": hooli})
    assert "description" not in emulator.collections["deals"][made.external_id]["props"]
    assert emulator.collections["deals"][made.external_id]["companies"] == [hooli]
    assert updated.data["company_id"] == hooli


def test_a_refused_property_names_hubspots_message(connector: HubSpotConnector) -> None:
    """A 400 is ``Rejected`` with HubSpot's message per property."""
    made = connector.create({"dealname": "R", "dealstage": "qualifiedtobuy"}, idempotency_key="k")
    with pytest.raises(Rejected) as caught:
        connector.update(made.external_id, {"dealstage": "nope"})
    assert "dealstage" in caught.value.field_errors and "nope" in str(caught.value)


def test_deletes_come_from_the_archived_listing(connector: HubSpotConnector) -> None:
    """An archived deal is a ``Deletion`` at its ``archivedAt``."""
    made = connector.create({"dealname": "Bye", "dealstage": "qualifiedtobuy"}, idempotency_key="k")
    connector.delete(made.external_id)
    assert [d.external_id for d in connector.deleted_since(EPOCH)] == [made.external_id]


def test_references_and_portal(connector: HubSpotConnector) -> None:
    """Owners by e-mail, companies by name, stages with probability and status, the currency."""
    owners = {r.key for r in connector.load_references("owner")}
    assert "john.davis@example.com" in owners
    assert "Globex" in {r.key for r in connector.load_references("company")}
    stages = {r.id: r.extra for r in connector.load_references("stage")}
    assert (
        stages["closedwon"]["status_type"] == "won"
        and stages["closedlost"]["status_type"] == "lost"
    )
    assert connector.account_currency() == "USD"


def test_429_policy_gives_the_wait() -> None:
    """Without ``Retry-After`` the 429's policy names the wait."""
    connector = HubSpotConnector("hubspot", httpx.Client())
    response = httpx.Response(429, json={"policyName": "TEN_SECONDLY_ROLLING"})
    assert connector.retry_after(response) == 10.0


def test_create_many_gives_each_deal_its_outcome(
    emulator: HubSpotEmulator, connector: HubSpotConnector
) -> None:
    """One ``batch/create``: the good deals are made, the bad one is ``Rejected`` in HubSpot's
    words, and one whose crmsync id a deal already holds is answered with that deal, marked
    ``existing``, read back in one ``batch/read`` with its company."""
    existing = connector.create(
        {"dealname": "Held", "dealstage": "qualifiedtobuy", "crmsync_id": "held"},
        idempotency_key="h",
    )
    emulator.requests.clear()
    items = [
        ({"dealname": "Good", "dealstage": "qualifiedtobuy", "crmsync_id": "g"}, "g"),
        ({"dealname": "Bad", "dealstage": "nope", "crmsync_id": "b"}, "b"),
        ({"dealname": "Held", "dealstage": "qualifiedtobuy", "crmsync_id": "held"}, "h"),
    ]
    good, bad, held = connector.create_many(items)
    assert not isinstance(good, Exception) and good.data["dealname"] == "Good"
    assert isinstance(bad, Rejected) and "dealstage" in bad.field_errors
    assert not isinstance(held, Exception) and held.external_id == existing.external_id
    assert held.existing and not good.existing
    routes = [r["path"] for r in emulator.requests]
    assert routes == [
        "/crm/v3/objects/deals/batch/create",
        "/crm/v3/objects/deals/batch/read",
        "/crm/v4/associations/deals/companies/batch/read",
    ]


def test_update_many_reports_a_missing_deal_as_not_found(connector: HubSpotConnector) -> None:
    """One ``batch/update``: the existing deal is updated, the missing one is ``NotFound``."""
    made = connector.create({"dealname": "U", "dealstage": "qualifiedtobuy"}, idempotency_key="u")
    updated, missing = connector.update_many(
        [(made.external_id, {"amount": 5}), ("1", {"amount": 6})]
    )
    assert not isinstance(updated, Exception) and updated.data["amount"] == "5"
    assert isinstance(missing, NotFound)


def test_setup_findings_name_what_to_fix(
    emulator: HubSpotEmulator, connector: HubSpotConnector
) -> None:
    """Doctor's HubSpot checks: all ok on the emulator; a missing scope, a wrong id property,
    another portal each say what to do; additional currencies are named (the money model is
    then multi by itself)."""
    assert {f.level for f in connector.setup_findings()} == {"ok"}
    emulator.scopes = ["crm.objects.deals.read"]
    emulator.additional_currencies = ["EUR"]
    connector.options.update(id_property="no_such_property", portal_id="1")
    connector._portal = None  # type: ignore[attr-defined]
    found = {f.check: f for f in connector.setup_findings()}
    assert found["scopes"].level == "problem" and "crm.objects.deals.write" in found["scopes"].fix
    assert (
        found["id property"].level == "problem"
        and "Require unique values" in found["id property"].fix
    )
    assert found["portal"].level == "problem" and "rebind" in found["portal"].fix
    assert found["currency"].level == "ok" and "USD and EUR" in found["currency"].what


def test_a_token_of_another_portal_is_refused(connector: HubSpotConnector) -> None:
    """Bound to a portal (``options.portal_id``), a token of another one reads nothing."""
    connector.options["portal_id"] = "1"
    with pytest.raises(AuthFailed, match="rebind"):
        next(connector.list_changed(EPOCH))
