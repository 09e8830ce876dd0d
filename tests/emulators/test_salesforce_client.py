"""``simple-salesforce``, the most used Python client, works against the emulator unchanged.

The client talks HTTPS to ``{domain}.salesforce.com`` / its ``instance_url``; the only thing
swapped is the ``requests.Session`` transport (an adapter that hands each request to the
emulator in-process) — every URL, header and body is the client's own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
import requests
from requests.adapters import BaseAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sync.emulators.salesforce import CLIENT_ID, CLIENT_SECRET, TOKEN, SalesforceEmulator


class EmulatorAdapter(BaseAdapter):
    """A requests transport adapter that answers from an emulator's httpx transport."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        super().__init__()
        self.transport = transport

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        body = request.body.encode() if isinstance(request.body, str) else request.body
        outgoing = httpx.Request(
            str(request.method), str(request.url), headers=dict(request.headers), content=body
        )
        answer = self.transport.handle_request(outgoing)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers.update(answer.headers)
        response._content = answer.read()
        response.url = str(request.url)
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def emulator() -> SalesforceEmulator:
    return SalesforceEmulator(seed=3, seed_opportunities=0)


@pytest.fixture
def session(emulator: SalesforceEmulator) -> Iterator[requests.Session]:
    transport = emulator.transport()
    with requests.Session() as session:
        session.mount("https://", EmulatorAdapter(transport))
        yield session
    transport.close()


def test_crud_query_all_and_replication_windows(
    emulator: SalesforceEmulator, session: requests.Session
) -> None:
    """create, get, update, delete, query_all over several pages, updated() and deleted()."""
    sf = Salesforce(instance_url="https://emu.my.salesforce.com", session_id=TOKEN, session=session)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    created = sf.Opportunity.create(
        {"Name": "Client deal", "StageName": "Prospecting", "CloseDate": "2026-05-01"}
    )
    assert created["success"] and created["id"].startswith("006")
    assert sf.Opportunity.get(created["id"])["Probability"] == 10.0
    assert sf.Opportunity.update(created["id"], {"Amount": 2500.75}) == 204
    assert sf.Opportunity.get(created["id"])["Amount"] == 2500.75
    emulator.add_opportunities(2300, seed=9)  # > 2,000: query_all follows nextRecordsUrl
    everything = sf.query_all("SELECT Id, Name FROM Opportunity ORDER BY SystemModstamp, Id")
    assert everything["totalSize"] == 2301 and len(everything["records"]) == 2301
    assert sf.Opportunity.delete(created["id"]) == 204
    with_deleted = sf.query_all(
        f"SELECT Id, IsDeleted FROM Opportunity WHERE Id = '{created['id']}'",
        include_deleted=True,
    )
    assert with_deleted["records"][0]["IsDeleted"] is True
    emulator.clock.advance(120)
    end = emulator.clock.peek()
    assert created["id"] not in sf.Opportunity.updated(start, end)["ids"]
    deleted = sf.Opportunity.deleted(start, end)
    assert [d["id"] for d in deleted["deletedRecords"]] == [created["id"]]
    assert sf.api_usage["api-usage"].used > 0
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT FROM Opportunity")


def test_upsert_and_composite_sobjects(session: requests.Session) -> None:
    """Upsert by Crmsync_Id__c, then create and update through composite/sobjects."""
    sf = Salesforce(instance_url="https://emu.my.salesforce.com", session_id=TOKEN, session=session)
    body = {"Name": "Upserted", "StageName": "Qualification", "CloseDate": "2026-07-01"}
    assert sf.Opportunity.upsert("Crmsync_Id__c/crm-42", body) == 201
    assert sf.Opportunity.upsert("Crmsync_Id__c/crm-42", {"Amount": 5}) == 200
    assert sf.Opportunity.get_by_custom_id("Crmsync_Id__c", "crm-42")["Amount"] == 5.0
    records = [
        {"attributes": {"type": "Opportunity"}, **body, "Name": f"Batch {i}"} for i in range(3)
    ]
    results = sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert [r["success"] for r in results] == [True, True, True]
    updates = [
        {"attributes": {"type": "Opportunity"}, "id": r["id"], "Amount": 100} for r in results
    ]
    updated = sf.restful("composite/sobjects", method="PATCH", json={"records": updates})
    assert all(r["success"] for r in updated)


def test_client_credentials_login_and_renewal_after_expiry(
    emulator: SalesforceEmulator, session: requests.Session
) -> None:
    """The client-credentials login finds the instance; after the session expires the client
    renews it on INVALID_SESSION_ID and the call succeeds."""
    sf = Salesforce(
        consumer_key=CLIENT_ID, consumer_secret=CLIENT_SECRET, domain="emu.my", session=session
    )
    first = sf.session_id
    assert sf.query("SELECT Id FROM Organization")["totalSize"] == 1
    emulator.sessions = dict.fromkeys(emulator.sessions, emulator.clock.peek())
    assert sf.query("SELECT Id FROM Organization")["totalSize"] == 1
    assert sf.session_id != first
