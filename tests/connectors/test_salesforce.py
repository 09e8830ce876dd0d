"""The Salesforce connector against the Salesforce emulator: keyset capture, Get Deleted and its
gap, idempotent creates, collections with per-record outcomes, sessions, the daily reserve."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from sync.config.models import SystemConfig
from sync.connectors import build_connector
from sync.connectors.errors import AuthFailed, DeleteFeedGap, NotFound, RateLimited, Rejected
from sync.connectors.salesforce import SalesforceConnector
from sync.emulators.salesforce import CLIENT_ID, CLIENT_SECRET, ORG_ID, TOKEN, SalesforceEmulator

from .conftest import FAST_RETRY

BASE = "https://emu.my.salesforce.com"
OPP = {"Name": "Acme - Pilot", "StageName": "Prospecting", "CloseDate": "2026-06-30"}


def make(emulator: SalesforceEmulator, **options: Any) -> SalesforceConnector:
    credentials = options.pop("credentials", {"token": TOKEN})
    cfg = SystemConfig(type="salesforce", base_url=BASE, credentials=credentials, options=options)
    connector = build_connector("sf", cfg, transport=emulator.transport(), retry=FAST_RETRY)
    assert isinstance(connector, SalesforceConnector)
    return connector


@pytest.fixture
def emulator() -> SalesforceEmulator:
    return SalesforceEmulator(seed=4, seed_opportunities=10)


@pytest.fixture
def connector(emulator: SalesforceEmulator) -> Iterator[SalesforceConnector]:
    connector = make(emulator, page_size=200)
    yield connector
    connector.close()


def test_keyset_pages_lose_nothing_inside_one_stamp(
    emulator: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    """450 deals sharing few stamps come in pages of 200 by (SystemModstamp, Id): each once."""
    emulator.add_opportunities(440, seed=2)
    stamp = next(iter(emulator.opportunities.values()))["SystemModstamp"]
    for row in emulator.opportunities.values():
        row["SystemModstamp"] = stamp  # one shared stamp: only the Id orders them
    pages = list(connector.scan())
    ids = [r.external_id for page in pages for r in page]
    assert len(ids) == len(set(ids)) == 450 and [len(p) for p in pages] == [200, 200, 50]


def test_list_changed_reads_from_the_cursor_and_a_quiet_org_is_one_page(
    emulator: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    """Only deals modified at or after ``since``; nothing changed → one (empty) SOQL page."""
    emulator.clock.advance(60)
    since = emulator.clock.peek()
    created = connector.create(OPP, idempotency_key="rec-1")
    changed = [r.external_id for page in connector.list_changed(since) for r in page]
    assert changed == [created.external_id]
    before = len(emulator.requests)
    quiet = list(connector.list_changed(emulator.clock.peek() + dt.timedelta(seconds=1)))
    assert quiet == [[]] and len(emulator.requests) - before == 1


def test_create_is_an_upsert_so_a_repeat_creates_nothing(
    emulator: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    """Sending one create twice (a lost answer) leaves one opportunity, with our key."""
    first = connector.create({**OPP, "Amount": 10}, idempotency_key="rec-7")
    again = connector.create({**OPP, "Amount": 10}, idempotency_key="rec-7")
    assert first.external_id == again.external_id
    assert first.data["Crmsync_Id__c"] == "rec-7" and first.data["Probability"] == 10.0
    held = [r for r in emulator.opportunities.values() if r["Crmsync_Id__c"] == "rec-7"]
    assert len(held) == 1


def test_update_get_delete_and_the_delete_feed(
    emulator: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    """PATCH then read back; a delete is NotFound after and reported by Get Deleted."""
    since = emulator.clock.peek() - dt.timedelta(minutes=1)
    opp = connector.create(OPP, idempotency_key="rec-2")
    updated = connector.update(opp.external_id, {"Amount": 99.5})
    assert updated.data["Amount"] == 99.5 and updated.modified > opp.modified
    connector.delete(opp.external_id)
    with pytest.raises(NotFound):
        connector.get(opp.external_id)
    emulator.clock.advance(120)
    assert [d.external_id for d in connector.deleted_since(since)] == [opp.external_id]


def test_a_purged_delete_log_is_a_gap_not_silence(
    emulator: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    """When earliestDateAvailable is past our cursor, DeleteFeedGap asks for a full compare."""
    since = emulator.clock.peek() - dt.timedelta(minutes=5)
    emulator.clock.advance(180)
    from sync.emulators.salesforce.windows import purge

    purge(emulator, emulator.clock.peek())
    with pytest.raises(DeleteFeedGap, match="full compare"):
        list(connector.deleted_since(since))


def test_collections_give_one_outcome_per_record_in_order(
    emulator: SalesforceEmulator, connector: SalesforceConnector
) -> None:
    """One request creates many; a bad record is Rejected alone with Salesforce's reason;
    an update of a deleted deal is NotFound; the others are read back."""
    before = len(emulator.requests)
    outcomes = connector.create_many(
        [(OPP, "k-1"), ({**OPP, "StageName": "Nope"}, "k-2"), ({**OPP, "Name": "Third"}, "k-3")]
    )
    assert len(emulator.requests) - before <= 3  # org probe + upsert + one read back
    first, bad, third = outcomes
    assert isinstance(bad, Rejected) and "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in bad.message
    assert not isinstance(first, Exception) and not isinstance(third, Exception)
    assert third.data["Name"] == "Third" and third.data["Crmsync_Id__c"] == "k-3"
    connector.delete(first.external_id)
    results = connector.update_many(
        [(first.external_id, {"Amount": 1}), (third.external_id, {"Amount": 2})]
    )
    assert isinstance(results[0], NotFound)
    assert not isinstance(results[1], Exception) and results[1].data["Amount"] == 2.0
    again = connector.create_many([(OPP, "k-3")])  # a resend after a lost answer
    assert not isinstance(again[0], Exception) and again[0].external_id == third.external_id


def test_client_credentials_renew_an_expired_session(emulator: SalesforceEmulator) -> None:
    """With client credentials an expired session is renewed and the call goes through."""
    connector = make(emulator, credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert connector.org_id() == ORG_ID
    emulator.sessions = dict.fromkeys(emulator.sessions, emulator.clock.peek())
    opp = connector.create(OPP, idempotency_key="after-expiry")
    assert opp.external_id.startswith("006") and len(emulator.sessions) == 2
    bad = make(emulator, credentials={"client_id": CLIENT_ID, "client_secret": "wrong"})
    with pytest.raises(AuthFailed, match="client credentials were refused"):
        bad.org_id()


def test_the_reserve_pauses_the_system_and_a_spent_allocation_waits(
    emulator: SalesforceEmulator,
) -> None:
    """Past (1 - api_reserve) of the allocation every call is RateLimited saying why; a
    spent allocation (403 REQUEST_LIMIT_EXCEEDED) is RateLimited too, not an auth failure."""
    emulator.api_limit, emulator.api_usage = 1000, [(emulator.clock.peek(), 790)]
    connector = make(emulator, api_reserve=0.2)
    connector.get(next(iter(emulator.opportunities)))  # 792/1000: below the line
    assert connector.api_usage == (792, 1000)  # the currency probe and the read
    emulator.api_usage = [(emulator.clock.peek(), 800)]
    connector.get(next(iter(emulator.opportunities)))  # learns 801/1000
    with pytest.raises(RateLimited, match="20% is kept for other tools"):
        connector.get(next(iter(emulator.opportunities)))
    unreserved = make(emulator, api_reserve=0)
    emulator.api_usage = [(emulator.clock.peek(), 1000)]
    with pytest.raises(RateLimited, match="REQUEST_LIMIT_EXCEEDED"):
        unreserved.get(next(iter(emulator.opportunities)))


def test_org_currency_and_references(emulator: SalesforceEmulator) -> None:
    """A single-currency org's amounts are in its corporate currency; a multi-currency org
    has none (each deal says CurrencyIsoCode). Stages carry open/won/lost."""
    connector = make(emulator)
    assert connector.account_currency() == "USD"
    stages = {r.key: r.extra["status_type"] for r in connector.references("stage")}
    assert stages["Closed Won"] == "won" and stages["Prospecting"] == "open"
    assert "john.davis@example.com" in {r.key for r in connector.references("owner")}
    emulator.set_multi_currency(True)
    multi = make(emulator)
    assert multi.account_currency() is None
    assert multi.get(next(iter(emulator.opportunities))).data["CurrencyIsoCode"] == "USD"
