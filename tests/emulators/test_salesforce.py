"""Salesforce emulator contract: SOQL subset, sObject rows, collections, windows, org, limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from sync.emulators.salesforce import CLIENT_ID, CLIENT_SECRET, ORG_ID, SalesforceEmulator

OPP = {"Name": "Acme - Pilot", "StageName": "Prospecting", "CloseDate": "2026-06-30"}


def query(client: httpx.Client, soql: str, **headers: str) -> httpx.Response:
    return client.get("/query", params={"q": soql}, headers=headers)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body, list), body  # Salesforce errors are a JSON array
    return str(body[0]["errorCode"])


def create(client: httpx.Client, **fields: Any) -> str:
    response = client.post("/sobjects/Opportunity", json={**OPP, **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# -- SOQL --------------------------------------------------------------------------------------
def test_query_pages_by_batch_size_on_a_snapshot_in_modstamp_id_order(
    salesforce_emulator: SalesforceEmulator, salesforce_client: httpx.Client
) -> None:
    """450 rows at batchSize=200 come in three pages linked by nextRecordsUrl, ordered by
    (SystemModstamp, Id); a write after the first page does not change the later pages."""
    salesforce_emulator.add_opportunities(430, seed=3)
    soql = "SELECT Id, SystemModstamp FROM Opportunity ORDER BY SystemModstamp, Id"
    page = query(salesforce_client, soql, **{"Sforce-Query-Options": "batchSize=200"}).json()
    assert page["totalSize"] == 450 and not page["done"] and len(page["records"]) == 200
    create(salesforce_client)
    rows = list(page["records"])
    while not page["done"]:
        page = salesforce_client.get(page["nextRecordsUrl"].removeprefix("/services/data/v59.0"))
        page = page.json()
        rows += page["records"]
    assert len(rows) == 450
    keys = [(r["SystemModstamp"], r["Id"]) for r in rows]
    assert keys == sorted(keys)
    assert all(len(r["Id"]) == 18 and r["Id"].startswith("006") for r in rows)


def test_where_filters_with_unquoted_datetimes_in_and_or(
    salesforce_emulator: SalesforceEmulator, salesforce_client: httpx.Client
) -> None:
    """A cursor predicate on an unquoted datetime literal selects exactly the later rows."""
    salesforce_emulator.clock.advance(5)
    cut = salesforce_emulator.clock.peek().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    salesforce_emulator.clock.advance(1)
    new = create(salesforce_client, StageName="Closed Won")
    soql = (
        f"SELECT Id, IsWon FROM Opportunity WHERE (SystemModstamp > {cut} OR Name = 'nobody') "
        "AND StageName IN ('Closed Won', 'Closed Lost') AND Amount = null"
    )
    response = query(salesforce_client, soql)
    assert response.status_code == 200, response.text
    assert [(r["Id"], r["IsWon"]) for r in response.json()["records"]] == [(new, True)]
    names = query(salesforce_client, "select name from opportunity where name = 'ACME - PILOT'")
    assert names.json()["records"][0]["Name"] == "Acme - Pilot"  # case-insensitive, as SOQL


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id Opportunity", "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
         "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity WHERE Name = 'open", "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity WHERE SystemModstamp > 2025-13-01T00:00:00Z",
         "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity LIMIT ten", "MALFORMED_QUERY"),
        ("SELECT Id FROM Opportunity WHERE SystemModstamp > '2025-01-01T00:00:00Z'",
         "INVALID_FIELD"),
        ("SELECT Nope FROM Opportunity", "INVALID_FIELD"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
        ("SELECT Id FROM CurrencyType", "INVALID_TYPE"),  # single-currency org
    ],
)  # fmt: skip
def test_bad_queries_answer_400_with_salesforces_error_array(
    salesforce_client: httpx.Client, soql: str, code: str
) -> None:
    """Syntax errors are MALFORMED_QUERY, bad fields/values INVALID_FIELD, unknown objects
    INVALID_TYPE — each a 400 with the JSON-array body."""
    response = query(salesforce_client, soql)
    assert response.status_code == 400
    assert error_code(response) == code


# -- sObject rows --------------------------------------------------------------------------------
def test_create_get_update_derive_stage_fields_and_move_the_modstamp(
    salesforce_client: httpx.Client,
) -> None:
    """Probability defaults from the stage and resets when the stage changes without one;
    IsClosed/IsWon follow the stage; every write moves SystemModstamp."""
    opp_id = create(salesforce_client, Amount=1234.5)
    row = salesforce_client.get(f"/sobjects/Opportunity/{opp_id}").json()
    assert (row["Probability"], row["IsClosed"], row["Amount"]) == (10.0, False, 1234.5)
    patch = salesforce_client.patch(f"/sobjects/Opportunity/{opp_id}", json={"Probability": 35})
    assert patch.status_code == 204
    after = salesforce_client.get(f"/sobjects/Opportunity/{opp_id}").json()
    assert after["Probability"] == 35.0 and after["SystemModstamp"] > row["SystemModstamp"]
    salesforce_client.patch(f"/sobjects/Opportunity/{opp_id}", json={"StageName": "Closed Won"})
    won = salesforce_client.get(f"/sobjects/Opportunity/{opp_id}?fields=Probability,IsWon").json()
    assert (won["Probability"], won["IsWon"]) == (100.0, True)
    both = {"StageName": "Closed Lost", "Probability": 5}
    salesforce_client.patch(f"/sobjects/Opportunity/{opp_id}", json=both)
    lost = salesforce_client.get(f"/sobjects/Opportunity/{opp_id}").json()
    assert (lost["Probability"], lost["IsClosed"], lost["IsWon"]) == (5.0, True, False)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"Name": None}, "REQUIRED_FIELD_MISSING"),
        ({"Name": "x" * 121}, "STRING_TOO_LONG"),
        ({"StageName": "Maybe"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"CloseDate": "tomorrow"}, "JSON_PARSER_ERROR"),
        ({"Probability": 150}, "NUMBER_OUTSIDE_VALID_RANGE"),
        ({"AccountId": "0015g00000ZZZZZAAA"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"OwnerId": "nope"}, "MALFORMED_ID"),
        ({"IsWon": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Colour__c": "red"}, "INVALID_FIELD"),
        ({"CurrencyIsoCode": "EUR"}, "INVALID_FIELD"),  # single-currency org
    ],
)
def test_invalid_creates_are_refused_with_the_documented_codes(
    salesforce_client: httpx.Client, body: dict[str, Any], code: str
) -> None:
    """Each broken rule answers 400 with its error code and creates nothing."""
    before = query(salesforce_client, "SELECT COUNT() FROM Opportunity").json()["totalSize"]
    response = salesforce_client.post("/sobjects/Opportunity", json={**OPP, **body})
    assert response.status_code == 400 and error_code(response) == code
    after = query(salesforce_client, "SELECT COUNT() FROM Opportunity").json()["totalSize"]
    assert after == before


def test_delete_leaves_the_row_in_query_all_and_the_delete_log(
    salesforce_emulator: SalesforceEmulator, salesforce_client: httpx.Client
) -> None:
    """A deleted opportunity is 404 ENTITY_IS_DELETED, gone from query, IsDeleted in queryAll,
    and listed by Get Deleted within its window."""
    start = salesforce_emulator.clock.peek() - dt.timedelta(minutes=2)
    opp_id = create(salesforce_client)
    assert salesforce_client.delete(f"/sobjects/Opportunity/{opp_id}").status_code == 204
    gone = salesforce_client.get(f"/sobjects/Opportunity/{opp_id}")
    assert gone.status_code == 404 and error_code(gone) == "ENTITY_IS_DELETED"
    soql = f"SELECT Id, IsDeleted FROM Opportunity WHERE Id = '{opp_id}'"
    assert query(salesforce_client, soql).json()["records"] == []
    all_rows = salesforce_client.get("/queryAll", params={"q": soql}).json()["records"]
    assert all_rows[0]["IsDeleted"] is True
    salesforce_emulator.clock.advance(120)
    end = salesforce_emulator.clock.peek()
    window = {"start": start.isoformat(), "end": end.isoformat()}
    deleted = salesforce_client.get("/sobjects/Opportunity/deleted/", params=window).json()
    assert [d["id"] for d in deleted["deletedRecords"]] == [opp_id]
    assert deleted["latestDateCovered"].endswith(":00.000+0000")  # minute granularity
    assert deleted["earliestDateAvailable"] < deleted["latestDateCovered"]
    updated = salesforce_client.get("/sobjects/Opportunity/updated/", params=window).json()
    assert opp_id not in updated["ids"]
    salesforce_client.post("http://sf.test/_emulator/salesforce", json={"purge_deleted": True})
    purged = salesforce_client.get("/sobjects/Opportunity/deleted/", params=window).json()
    assert purged["deletedRecords"] == []
    assert purged["earliestDateAvailable"] > start.strftime("%Y-%m-%dT%H:%M")


def test_upsert_by_external_id_creates_updates_and_answers_300_on_several(
    salesforce_client: httpx.Client,
) -> None:
    """PATCH …/Crmsync_Id__c/{v}: 201 created, then 200 updated; two holders of v → 300."""
    url = "/sobjects/Opportunity/Crmsync_Id__c/rec-1"
    first = salesforce_client.patch(url, json=OPP)
    assert first.status_code == 201 and first.json()["created"] is True
    again = salesforce_client.patch(url, json={"Amount": 10})
    assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
    create(salesforce_client, Crmsync_Id__c="rec-1")
    several = salesforce_client.patch(url, json={"Amount": 11})
    assert several.status_code == 300 and len(several.json()) == 2


# -- sObject Collections -------------------------------------------------------------------------
def test_collection_create_answers_per_record_in_order_and_counts_once(
    salesforce_emulator: SalesforceEmulator, salesforce_client: httpx.Client
) -> None:
    """One bad record fails alone; the others are created; the request is one API call."""
    records = [
        {"attributes": {"type": "Opportunity"}, **OPP, "Name": "one"},
        {"attributes": {"type": "Opportunity"}, **OPP, "StageName": "Nope"},
        {"attributes": {"type": "Opportunity"}, **OPP, "Name": "three"},
    ]
    used = salesforce_emulator.api_used()
    response = salesforce_client.post("/composite/sobjects", json={"records": records})
    assert response.status_code == 200
    assert response.headers["Sforce-Limit-Info"] == f"api-usage={used + 1}/100000"
    results = response.json()
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    names = {
        r["Id"]: r["Name"]
        for r in query(salesforce_client, "SELECT Id, Name FROM Opportunity").json()["records"]
    }
    assert (names[results[0]["id"]], names[results[2]["id"]]) == ("one", "three")


def test_all_or_none_rolls_every_record_back(salesforce_client: httpx.Client) -> None:
    """With allOrNone one failure leaves nothing written; the good records say rolled back."""
    before = query(salesforce_client, "SELECT COUNT() FROM Opportunity").json()["totalSize"]
    records = [
        {"attributes": {"type": "Opportunity"}, **OPP},
        {"attributes": {"type": "Opportunity"}, **OPP, "Name": None},
    ]
    body = {"allOrNone": True, "records": records}
    results = salesforce_client.post("/composite/sobjects", json=body).json()
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    after = query(salesforce_client, "SELECT COUNT() FROM Opportunity").json()["totalSize"]
    assert after == before


def test_collection_update_upsert_and_the_200_record_cap(salesforce_client: httpx.Client) -> None:
    """PATCH updates by id, the upsert collection reports created per record, 201 records is
    a 400 EXCEEDED_ID_LIMIT."""
    opp_id = create(salesforce_client)
    update = [{"attributes": {"type": "Opportunity"}, "id": opp_id, "Amount": 7}]
    assert salesforce_client.patch("/composite/sobjects", json={"records": update}).json() == [
        {"id": opp_id, "success": True, "errors": []}
    ]
    upserts = [
        {"attributes": {"type": "Opportunity"}, **OPP, "Crmsync_Id__c": f"u-{i}"} for i in (1, 1)
    ]
    url = "/composite/sobjects/Opportunity/Crmsync_Id__c"
    results = salesforce_client.patch(url, json={"records": upserts}).json()
    assert [r["created"] for r in results] == [True, False]
    too_many = [{"attributes": {"type": "Opportunity"}, **OPP}] * 201
    refused = salesforce_client.post("/composite/sobjects", json={"records": too_many})
    assert refused.status_code == 400 and error_code(refused) == "EXCEEDED_ID_LIMIT"


def test_fail_after_commit_on_a_collection_writes_but_loses_the_answer(
    salesforce_emulator: SalesforceEmulator, salesforce_client: httpx.Client
) -> None:
    """With fail_after_commit the records exist although the client saw no SaveResults."""
    salesforce_emulator.faults.fail_after_commit_rate = 1.0
    records = [{"attributes": {"type": "Opportunity"}, **OPP, "Crmsync_Id__c": "lost-1"}]
    try:
        response = salesforce_client.post("/composite/sobjects", json={"records": records})
        assert response.status_code == 502
    except httpx.ReadTimeout:
        pass
    salesforce_emulator.faults.fail_after_commit_rate = 0.0
    soql = "SELECT Id FROM Opportunity WHERE Crmsync_Id__c = 'lost-1'"
    assert len(query(salesforce_client, soql).json()["records"]) == 1


# -- org, auth, limits ---------------------------------------------------------------------------
def test_organization_and_the_multi_currency_switch(salesforce_client: httpx.Client) -> None:
    """The org id and corporate currency are queryable; switching to multi-currency adds
    CurrencyType and a CurrencyIsoCode on every opportunity (existing ones in USD)."""
    org = query(salesforce_client, "SELECT Id, DefaultCurrencyIsoCode FROM Organization")
    assert org.json()["records"][0]["Id"] == ORG_ID
    salesforce_client.post("http://sf.test/_emulator/salesforce", json={"multi_currency": True})
    currencies = query(salesforce_client, "SELECT IsoCode, IsCorporate FROM CurrencyType").json()
    assert {(r["IsoCode"], r["IsCorporate"]) for r in currencies["records"]} >= {
        ("USD", True),
        ("EUR", False),
    }
    euro = create(salesforce_client, CurrencyIsoCode="EUR", Amount=10)
    rows = query(salesforce_client, "SELECT Id, CurrencyIsoCode FROM Opportunity").json()
    codes = {r["Id"]: r["CurrencyIsoCode"] for r in rows["records"]}
    assert codes.pop(euro) == "EUR" and set(codes.values()) == {"USD"}
    bad = salesforce_client.post("/sobjects/Opportunity", json={**OPP, "CurrencyIsoCode": "XYZ"})
    assert error_code(bad) == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_the_org_is_not_trutos_until_told_to_hold_ruddrs_salesforce_ids(
    salesforce_emulator: SalesforceEmulator, salesforce_client: httpx.Client
) -> None:
    """By default the org is another one than Truto's Salesforce account: its own org id, no
    opportunity Ruddr's salesforceId names, ids on its own pod (never one of Truto's). The
    control API seeds those deals with their exact ids, and can serve another org id."""
    from sync.emulators import reference

    shared = {deal.salesforce_id for deal in reference.shared_deals(salesforce_emulator.seed)}
    rows = query(salesforce_client, "SELECT Id FROM Opportunity").json()["records"]
    ids = {r["Id"] for r in rows}
    assert ORG_ID != reference.TRUTO_SALESFORCE_ORG and ids and not ids & shared
    assert {i[3:5] for i in ids | {create(salesforce_client)}} == {"5g"}
    assert {i[3:5] for i in shared} == {reference.TRUTO_SALESFORCE_POD}
    control = "http://sf.test/_emulator/salesforce"
    answer = salesforce_client.post(control, json={"shared_deals": True, "organization_id": "00Dx"})
    assert answer.json()["organization_id"] == "00Dx"
    rows = query(salesforce_client, "SELECT Id, Name FROM Opportunity").json()["records"]
    assert {r["Id"] for r in rows} >= shared
    org = query(salesforce_client, "SELECT Id FROM Organization").json()["records"]
    assert org[0]["Id"] == "00Dx"


def test_an_account_is_created_and_renamed_and_its_deals_keep_their_stamps(
    salesforce_emulator: SalesforceEmulator, salesforce_client: httpx.Client
) -> None:
    """POST sobjects/Account creates (Name required), PATCH renames (204) without moving its
    opportunities' SystemModstamp unless the emulator is told to."""
    made = salesforce_client.post("/sobjects/Account", json={"Name": "Vandelay"})
    assert made.status_code == 201 and made.json()["success"], made.text
    account = made.json()["id"]
    assert error_code(salesforce_client.post("/sobjects/Account", json={})) == (
        "REQUIRED_FIELD_MISSING"
    )
    opp = create(salesforce_client, AccountId=account)
    before = salesforce_emulator.opportunities[opp]["SystemModstamp"]
    salesforce_emulator.clock.advance(5)
    renamed = salesforce_client.patch(f"/sobjects/Account/{account}", json={"Name": "V. Ind"})
    assert renamed.status_code == 204
    rows = query(salesforce_client, f"SELECT Name FROM Account WHERE Id = '{account}'").json()
    assert rows["records"][0]["Name"] == "V. Ind"
    assert salesforce_emulator.opportunities[opp]["SystemModstamp"] == before
    salesforce_emulator.rename_touches_deals = True
    salesforce_client.patch(f"/sobjects/Account/{account}", json={"Name": "Vandelay"})
    assert salesforce_emulator.opportunities[opp]["SystemModstamp"] > before


def test_client_credentials_sessions_expire_with_invalid_session_id(
    salesforce_emulator: SalesforceEmulator,
) -> None:
    """The token endpoint issues a session with instance_url; once expired it answers 401
    INVALID_SESSION_ID; wrong client credentials are invalid_client."""
    with httpx.Client(transport=salesforce_emulator.transport(), base_url="http://sf.test") as c:
        bad = c.post("/services/oauth2/token", data={"grant_type": "client_credentials"})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
        form = {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        token = c.post("/services/oauth2/token", data=form).json()
        assert token["instance_url"] == "http://sf.test"
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        url = "/services/data/v59.0/limits"
        assert c.get(url, headers=headers).status_code == 200
        c.post("/_emulator/salesforce", json={"expire_sessions": True})
        expired = c.get(url, headers=headers)
        assert expired.status_code == 401 and error_code(expired) == "INVALID_SESSION_ID"


def test_spent_daily_allocation_answers_403_request_limit_exceeded(
    salesforce_client: httpx.Client,
) -> None:
    """Every answer reports api-usage; at the limit the API refuses with 403."""
    salesforce_client.post(
        "http://sf.test/_emulator/salesforce", json={"api_limit": 1000, "api_used": 998}
    )
    ok = salesforce_client.get("/limits")
    assert ok.headers["Sforce-Limit-Info"] == "api-usage=999/1000"
    salesforce_client.get("/limits")
    refused = salesforce_client.get("/limits")
    assert refused.status_code == 403 and error_code(refused) == "REQUEST_LIMIT_EXCEEDED"
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=1000/1000"
