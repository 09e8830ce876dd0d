"""Contract tests of the Truto unified CRM emulator (seed 001, vendors.md §3)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest

from sync.emulators import reference
from sync.emulators.truto import TrutoEmulator

SF = reference.TRUTO_ACCOUNTS["salesforce"]
CAPSULE = reference.TRUTO_ACCOUNTS["capsule"]
CLOSE = reference.TRUTO_ACCOUNTS["close"]
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def first(client: httpx.Client, path: str, account: str) -> dict[str, Any]:
    """The first item of a unified list."""
    response = client.get(path, params={"integrated_account_id": account})
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()["result"][0]
    return item


def sf_create(client: httpx.Client, **extra: Any) -> httpx.Response:
    """Create a valid Salesforce opportunity through Truto."""
    owner = first(client, "/users", SF)["id"]
    account = first(client, "/accounts", SF)["id"]
    body = {
        "name": "Acme Corp - Pilot",
        "amount": 12500.5,
        "stage": {"id": "Prospecting"},
        "close_date": "2026-06-30T00:00:00.000Z",
        "owner": {"id": owner},
        "account": {"id": account},
        **extra,
    }
    return client.post("/opportunities", params={"integrated_account_id": SF}, json=body)


def scan(client: httpx.Client, account: str, **params: Any) -> list[dict[str, Any]]:
    """Every opportunity of an account, following ``next_cursor`` to the end."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"integrated_account_id": account, "limit": 100, **params}
    while True:
        page = client.get("/opportunities", params=query).json()
        items += page["result"]
        if page["next_cursor"] is None:
            return items
        query = {"integrated_account_id": account, "limit": 100, "next_cursor": page["next_cursor"]}


# -- auth and integrated accounts ------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_bad_or_missing_token_is_401_in_the_error_envelope(
    truto_client: httpx.Client, headers: dict[str, str]
) -> None:
    """A missing or wrong Bearer token gets 401 with Truto's statusCode/error/message body."""
    truto_client.headers.pop("Authorization")
    response = truto_client.get(
        "/opportunities", params={"integrated_account_id": SF}, headers=headers
    )
    assert response.status_code == 401
    body = response.json()
    assert body["statusCode"] == 401 and body["error"] == "Unauthorized" and body["message"]


def test_integrated_account_id_is_required_and_must_exist(truto_client: httpx.Client) -> None:
    """Without integrated_account_id the answer is 400; an unknown one is 404."""
    missing = truto_client.get("/opportunities")
    assert missing.status_code == 400 and missing.json()["statusCode"] == 400
    unknown = truto_client.get(
        "/opportunities", params={"integrated_account_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "Not Found"
    assert truto_client.get("/users").status_code == 400


def test_users_carry_the_reference_emails_in_every_integration(truto_client: httpx.Client) -> None:
    """GET /users lists the reference users with their e-mails behind each account."""
    want = {email for _, email in reference.USERS}
    for account in (SF, CAPSULE, CLOSE):
        users = truto_client.get("/users", params={"integrated_account_id": account}).json()
        assert {u["emails"][0]["email"] for u in users["result"]} == want


def test_salesforce_accounts_are_the_reference_companies(truto_client: httpx.Client) -> None:
    """Salesforce accounts have 001 ids and the reference company names."""
    page = truto_client.get("/accounts", params={"integrated_account_id": SF, "limit": 100})
    accounts = page.json()["result"]
    assert {a["name"] for a in accounts} == set(reference.COMPANIES)
    assert all(a["id"].startswith("001") and len(a["id"]) == 18 for a in accounts)


def test_stages_per_integration(truto_client: httpx.Client) -> None:
    """GET /stages lists the Salesforce picklist (id = name), Capsule milestones, Close statuses."""

    def names(account: str) -> list[tuple[str, str]]:
        page = truto_client.get("/stages", params={"integrated_account_id": account}).json()
        return [(stage["id"], stage["name"]) for stage in page["result"]]

    assert names(SF) == [(name, name) for name, _, _ in reference.SALESFORCE_STAGES]
    assert [name for _, name in names(CAPSULE)] == [m[0] for m in reference.CAPSULE_MILESTONES]
    close = names(CLOSE)
    assert [name for _, name in close] == [label for label, _ in reference.CLOSE_STATUSES]
    assert all(stage_id.startswith("stat_") for stage_id, _ in close)


def test_shared_deals_exist_in_salesforce_with_their_exact_ids(
    truto_client: httpx.Client,
) -> None:
    """Every reference shared deal is in the Salesforce account under its salesforce_id."""
    for deal in reference.shared_deals(3):
        response = truto_client.get(
            f"/opportunities/{deal.salesforce_id}", params={"integrated_account_id": SF}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["name"] == deal.name and body["amount"] == deal.amount
        assert body["close_date"] == f"{deal.close_date.isoformat()}T00:00:00.000Z"


def test_same_seed_gives_the_same_ids() -> None:
    """Two emulators from one seed hold identical records (ids included)."""
    one, two = (
        TrutoEmulator(seed=9, seed_opportunities=15),
        TrutoEmulator(seed=9, seed_opportunities=15),
    )
    for name in ("salesforce:opportunities", "capsule:opportunities", "close:accounts"):
        assert list(one.collections[name]) == list(two.collections[name])


# -- creates ----------------------------------------------------------------------------------
def test_close_requires_account_and_owner(truto_client: httpx.Client) -> None:
    """A Close create without account and owner is a 400 naming both fields."""
    response = truto_client.post(
        "/opportunities", params={"integrated_account_id": CLOSE}, json={"name": "x"}
    )
    assert response.status_code == 400
    fields = {f["field"] for f in response.json()["details"]["failures"]}
    assert fields == {"account", "owner"}


def test_capsule_requires_name_and_stage(truto_client: httpx.Client) -> None:
    """A Capsule create without a stage is a 400 naming the stage."""
    response = truto_client.post(
        "/opportunities", params={"integrated_account_id": CAPSULE}, json={"name": "x"}
    )
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["details"]["failures"]] == ["stage"]


def test_salesforce_requires_name(truto_client: httpx.Client) -> None:
    """A Salesforce create without a name is a 400 naming it."""
    response = truto_client.post(
        "/opportunities", params={"integrated_account_id": SF}, json={"amount": 5}
    )
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["details"]["failures"]] == ["name"]


def test_salesforce_own_required_fields_pass_through(truto_client: httpx.Client) -> None:
    """Salesforce's own REQUIRED_FIELD_MISSING (stage, close date) comes back as 400."""
    response = truto_client.post(
        "/opportunities", params={"integrated_account_id": SF}, json={"name": "Only a name"}
    )
    assert response.status_code == 400
    remote = response.json()["details"]["remote_error"][0]
    assert remote["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert set(remote["fields"]) == {"StageName", "CloseDate"}


def test_salesforce_rejects_a_stage_outside_the_picklist(truto_client: httpx.Client) -> None:
    """An unknown StageName is Salesforce's restricted-picklist 400."""
    response = sf_create(truto_client, stage={"id": "Dreaming"})
    assert response.status_code == 400
    assert "PICKLIST" in response.json()["details"]["remote_error"][0]["errorCode"]


@pytest.mark.parametrize("length", [121, 300])
def test_salesforce_refuses_a_name_over_120_characters(
    truto_client: httpx.Client, length: int
) -> None:
    """``Name`` is string(120): a longer one, on create or on update, is Salesforce's
    STRING_TOO_LONG relayed as a 400 that names the field and quotes the value's start; the
    refused update changes nothing, and exactly 120 characters are accepted."""
    name = "n" * length
    refused = sf_create(truto_client, name=name)
    assert refused.status_code == 400
    remote = refused.json()["details"]["remote_error"][0]
    assert (remote["errorCode"], remote["fields"]) == ("STRING_TOO_LONG", ["Name"])
    expected = f"Opportunity Name: data value too large: {'n' * 40} (max length=120)"
    assert remote["message"] == refused.json()["message"] == expected

    deal = sf_create(truto_client, name="m" * 120)
    assert deal.status_code == 201, deal.text
    url, params = f"/opportunities/{deal.json()['id']}", {"integrated_account_id": SF}
    patched = truto_client.patch(url, params=params, json={"name": name})
    assert patched.status_code == 400
    assert patched.json()["details"]["remote_error"][0]["errorCode"] == "STRING_TOO_LONG"
    raw = truto_client.patch(url, params=params, json={"remote_data": {"Name": name}})
    assert raw.status_code == 400
    assert truto_client.get(url, params=params).json()["name"] == "m" * 120


def test_close_create_populates_the_seed_001_fields(truto_client: httpx.Client) -> None:
    """Close answers with status, last_activity_at, close_date and updated_at, amount in units."""
    owner = first(truto_client, "/users", CLOSE)["id"]
    account = first(truto_client, "/accounts", CLOSE)["id"]
    response = truto_client.post(
        "/opportunities",
        params={"integrated_account_id": CLOSE},
        json={
            "account": {"id": account},
            "owner": {"id": owner},
            "amount": 1500.25,
            "close_date": "2026-05-01T00:00:00Z",
            "description": "From Truto",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("oppo_") and body["status"] == "open"
    assert body["amount"] == 1500.25 and body["remote_data"]["value"] == 150025
    assert body["close_date"] == "2026-05-01T00:00:00.000Z"
    assert ISO_MS_Z.match(body["updated_at"]) and ISO_MS_Z.match(body["last_activity_at"])
    assert body["account"] == {"id": account} and body["owner"] == {"id": owner}


def test_capsule_create_maps_stage_to_a_milestone(truto_client: httpx.Client) -> None:
    """A Capsule create with name, stage and account stores the milestone and answers unified."""
    account = first(truto_client, "/accounts", CAPSULE)["id"]
    response = truto_client.post(
        "/opportunities",
        params={"integrated_account_id": CAPSULE},
        json={"name": "Deal", "stage": {"name": "Won"}, "account": {"id": account}, "amount": 10},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["stage"]["name"] == "Won" and body["status"] == "won"
    assert body["remote_data"]["milestone"]["name"] == "Won"


def test_fields_seed_001_does_not_write_for_an_integration_are_dropped(
    truto_client: httpx.Client,
) -> None:
    """Close takes no unified description (seed 001), Capsule no unified owner: each is left
    out, not refused; Close's own note, sent through remote_data, is written."""
    deal = scan(truto_client, CLOSE)[0]
    url = f"/opportunities/{deal['id']}"
    params = {"integrated_account_id": CLOSE}
    dropped = truto_client.patch(url, params=params, json={"description": "unified"})
    assert dropped.status_code == 200 and dropped.json()["description"] == deal["description"]
    noted = truto_client.patch(url, params=params, json={"remote_data": {"note": "own field"}})
    assert noted.json()["description"] == "own field"
    capsule = scan(truto_client, CAPSULE)[0]
    users = [
        u["id"]
        for u in truto_client.get("/users", params={"integrated_account_id": CAPSULE}).json()[
            "result"
        ]
    ]
    other = next(u for u in users if u != capsule["owner"]["id"])
    url, params = f"/opportunities/{capsule['id']}", {"integrated_account_id": CAPSULE}
    ignored = truto_client.patch(url, params=params, json={"owner": {"id": other}})
    assert ignored.json()["owner"] == capsule["owner"]


def test_capsule_owner_and_probability_through_remote_data(truto_client: httpx.Client) -> None:
    """remote_data reaches Capsule as is: an owner that is a Capsule user is set (an unknown
    one is Capsule's 422), a probability sent with a milestone is kept over the milestone's."""
    capsule = scan(truto_client, CAPSULE)[0]
    users = truto_client.get("/users", params={"integrated_account_id": CAPSULE}).json()
    other = next(u["id"] for u in users["result"] if u["id"] != capsule["owner"]["id"])
    url, params = f"/opportunities/{capsule['id']}", {"integrated_account_id": CAPSULE}
    moved = truto_client.patch(url, params=params, json={"remote_data": {"owner": {"id": other}}})
    assert moved.status_code == 200 and moved.json()["owner"] == {"id": other}
    unknown = truto_client.patch(url, params=params, json={"remote_data": {"owner": {"id": "1"}}})
    assert unknown.status_code == 422
    assert unknown.json()["details"]["remote_error"]["errors"][0]["field"] == "owner"
    body = {"stage": {"name": "Negotiation"}, "remote_data": {"probability": 35}}
    both = truto_client.patch(url, params=params, json=body)
    assert both.json()["remote_data"]["probability"] == 35
    alone = truto_client.patch(url, params=params, json={"stage": {"name": "Proposal"}})
    assert alone.json()["remote_data"]["probability"] == 50  # the milestone's
    bad = truto_client.patch(url, params=params, json={"remote_data": {"probability": 120}})
    assert bad.status_code == 422


# -- CRUD ---------------------------------------------------------------------------------------
def test_salesforce_crud_round_trip(
    truto_client: httpx.Client, truto_emulator: TrutoEmulator
) -> None:
    """Create, get, patch, delete a Salesforce deal; each answer is the unwrapped object."""
    created = sf_create(truto_client)
    assert created.status_code == 201, created.text
    deal = created.json()
    assert re.fullmatch(r"006[A-Za-z0-9]{15}", deal["id"])
    assert deal["stage"] == {"id": "Prospecting", "name": "Prospecting"}
    assert deal["status"] == "open" and ISO_MS_Z.match(deal["created_at"])
    assert re.search(r"\.\d{3}\+0000$", deal["remote_data"]["SystemModstamp"])
    assert deal["remote_data"]["CloseDate"] == "2026-06-30"
    params = {"integrated_account_id": SF}
    url = f"/opportunities/{deal['id']}"
    assert truto_client.get(url, params=params).json()["name"] == deal["name"]

    truto_emulator.clock.advance(5)
    patched = truto_client.patch(url, params=params, json={"stage": {"id": "Closed Won"}})
    assert patched.status_code == 200
    after = patched.json()
    assert after["status"] == "won" and after["updated_at"] > deal["updated_at"]
    assert after["remote_data"]["IsWon"] is True and after["remote_data"]["Probability"] == 100

    deleted = truto_client.delete(url, params=params)
    assert deleted.status_code == 200 and deleted.json() == {"id": deal["id"]}
    gone = truto_client.get(url, params=params)
    assert gone.status_code == 404 and gone.json()["statusCode"] == 404


def test_failed_patch_changes_nothing(truto_client: httpx.Client) -> None:
    """A PATCH that Salesforce rejects leaves every field as it was."""
    deal = sf_create(truto_client).json()
    url, params = f"/opportunities/{deal['id']}", {"integrated_account_id": SF}
    bad = truto_client.patch(url, params=params, json={"name": "New", "stage": {"id": "Nope"}})
    assert bad.status_code == 400
    assert truto_client.get(url, params=params).json()["name"] == deal["name"]


def test_custom_fields_round_trip_and_unknown_ones_fail(truto_client: httpx.Client) -> None:
    """Known custom fields are stored and returned; an unknown one is an upstream 400."""
    deal = sf_create(truto_client, custom_fields={"Crmsync_Id__c": "c-1"}).json()
    assert deal["custom_fields"]["Crmsync_Id__c"] == "c-1"
    assert sf_create(truto_client, custom_fields={"Nope__c": 1}).status_code == 400


# -- listing -------------------------------------------------------------------------------------
def test_pagination_to_the_end_while_records_change() -> None:
    """A 1,200-record scan sees every record once although records change between pages."""
    emulator = TrutoEmulator(seed=4, seed_opportunities=2000)
    before = set(emulator.collections["salesforce:opportunities"])
    assert len(before) >= 1000
    transport = emulator.transport()
    client = httpx.Client(
        transport=transport,
        base_url="http://t/unified/crm",
        headers={"Authorization": "Bearer truto-test-token"},
    )
    seen: list[str] = []
    query: dict[str, Any] = {"integrated_account_id": SF, "limit": 100}
    ids = sorted(before)
    for turn in range(100):
        page = client.get("/opportunities", params=query).json()
        seen += [item["id"] for item in page["result"]]
        for record_id in ids[turn * 7 : turn * 7 + 7]:  # touch seen and unseen records
            client.patch(
                f"/opportunities/{record_id}",
                params={"integrated_account_id": SF},
                json={"amount": turn},
            )
        if page["next_cursor"] is None:
            break
        query = {"integrated_account_id": SF, "limit": 100, "next_cursor": page["next_cursor"]}
    client.close()
    transport.close()
    assert len(seen) == len(set(seen)) == len(before)
    assert set(seen) == before


def test_limit_is_1_to_100(truto_client: httpx.Client) -> None:
    """limit above the documented maximum of 100 is a 400; 100 works."""
    params = {"integrated_account_id": SF}
    assert truto_client.get("/opportunities", params={**params, "limit": 101}).status_code == 400
    assert truto_client.get("/opportunities", params={**params, "limit": 100}).status_code == 200


def test_list_envelope(truto_client: httpx.Client) -> None:
    """A list page has result, next_cursor, prev_cursor and result_count."""
    page = truto_client.get("/opportunities", params={"integrated_account_id": SF, "limit": 3})
    body = page.json()
    assert set(body) == {"result", "next_cursor", "prev_cursor", "result_count"}
    assert body["result_count"] == 3 and isinstance(body["next_cursor"], str)


@pytest.mark.parametrize("account", [SF, CLOSE])
def test_updated_at_gte_returns_changed_records_in_update_order(
    truto_client: httpx.Client, truto_emulator: TrutoEmulator, account: str
) -> None:
    """updated_at[gte] returns the records changed since, oldest change first."""
    items = scan(truto_client, account)
    truto_emulator.clock.advance(60)
    changed = []
    for item in (items[3], items[1]):
        truto_emulator.clock.advance(1)  # distinct stamps even at Salesforce's milliseconds
        response = truto_client.patch(
            f"/opportunities/{item['id']}",
            params={"integrated_account_id": account},
            json={"description": "changed"},
        )
        changed.append(response.json())
    since = changed[0]["updated_at"]
    got = scan(truto_client, account, **{"updated_at[gte]": since})
    assert [g["id"] for g in got] == [c["id"] for c in changed]
    later = scan(truto_client, account, **{"updated_at[gt]": changed[1]["updated_at"]})
    # The unified stamp has milliseconds, the upstream compares finer (Close: µs) or coarser
    # (Salesforce: whole seconds), so [gt] of a record's own stamp may return that record again.
    assert {g["id"] for g in later} <= {changed[1]["id"]}


def test_salesforce_gt_filter_is_truncated_to_the_second(
    truto_client: httpx.Client, truto_emulator: TrutoEmulator
) -> None:
    """Salesforce updated_at[gt] still returns a record of the same second (SOQL literal)."""
    truto_emulator.clock.advance(120)
    deal = sf_create(truto_client).json()
    got = scan(truto_client, SF, **{"updated_at[gt]": deal["updated_at"]})
    if not deal["updated_at"].endswith(".000Z"):
        assert [g["id"] for g in got] == [deal["id"]]


def test_capsule_rejects_updated_at_filters(truto_client: httpx.Client) -> None:
    """Capsule declares no updated_at filter, so using one is a 400 in the envelope."""
    response = truto_client.get(
        "/opportunities",
        params={"integrated_account_id": CAPSULE, "updated_at[gt]": "2026-01-01T00:00:00Z"},
    )
    assert response.status_code == 400 and response.json()["statusCode"] == 400


def test_unknown_query_parameter_is_rejected(truto_client: httpx.Client) -> None:
    """A parameter no integration declares (sort_by) is a 400, not silently ignored."""
    response = truto_client.get(
        "/opportunities", params={"integrated_account_id": SF, "sort_by": "name"}
    )
    assert response.status_code == 400


def test_meta_list_declares_updated_at_per_integration(truto_client: httpx.Client) -> None:
    """meta/list's query_schema offers updated_at for Salesforce and Close, not Capsule."""

    def schema(account: str) -> dict[str, Any]:
        response = truto_client.get(
            "/opportunities/meta/list", params={"integrated_account_id": account}
        )
        assert response.status_code == 200
        query_schema: dict[str, Any] = response.json()["query_schema"]
        return query_schema

    assert "gte" in schema(SF)["updated_at"]["operators"]
    assert "updated_at" in schema(CLOSE)
    assert "updated_at" not in schema(CAPSULE)


# -- idempotency and formats -------------------------------------------------------------------
def test_idempotency_key_replays_the_first_create(
    truto_client: httpx.Client, truto_emulator: TrutoEmulator
) -> None:
    """The same Idempotency-Key returns the first answer and creates nothing more."""
    count = len(truto_emulator.collections["salesforce:opportunities"])
    key = {"Idempotency-Key": "create-1"}
    one = sf_create(truto_client, description="d")
    truto_client.headers.update(key)
    first_answer = sf_create(truto_client, description="d")
    again = sf_create(truto_client, description="d")
    assert one.json()["id"] != first_answer.json()["id"]
    assert again.status_code == 201 and again.json() == first_answer.json()
    assert len(truto_emulator.collections["salesforce:opportunities"]) == count + 2


def test_idempotency_key_reused_with_another_body_is_422(truto_client: httpx.Client) -> None:
    """Reusing an Idempotency-Key for a different request is refused with 422."""
    truto_client.headers["Idempotency-Key"] = "k"
    assert sf_create(truto_client).status_code == 201
    other = sf_create(truto_client, name="Different")
    assert other.status_code == 422 and other.json()["statusCode"] == 422


def test_raw_and_normalized_formats(truto_client: httpx.Client) -> None:
    """raw returns the Salesforce object; normalized every unified field, no remote_data."""
    deal = sf_create(truto_client).json()
    url = f"/opportunities/{deal['id']}"
    raw = truto_client.get(
        url, params={"integrated_account_id": SF, "truto_response_format": "raw"}
    ).json()
    assert raw["Id"] == deal["id"] and raw["StageName"] == "Prospecting" and "name" not in raw
    normalized = truto_client.get(
        url, params={"integrated_account_id": SF, "truto_response_format": "normalized"}
    ).json()
    assert "remote_data" not in normalized and normalized["tags"] is None
    assert normalized["name"] == deal["name"]
    bare = truto_client.get(
        url, params={"integrated_account_id": SF, "truto_ignore_remote_data": "true"}
    ).json()
    assert "remote_data" not in bare and bare["id"] == deal["id"]
    bad = truto_client.get(url, params={"integrated_account_id": SF, "truto_response_format": "x"})
    assert bad.status_code == 400


def test_remote_data_on_write_reaches_close(
    truto_client: httpx.Client, truto_emulator: TrutoEmulator
) -> None:
    """remote_data.status_id is passed to Close as is and sets the won status and date."""
    deal = scan(truto_client, CLOSE)[0]
    statuses = truto_emulator.collections["close:statuses"].values()
    won = next(s["id"] for s in statuses if s["type"] == "won")
    patched = truto_client.patch(
        f"/opportunities/{deal['id']}",
        params={"integrated_account_id": CLOSE},
        json={"remote_data": {"status_id": won}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "won" and patched.json()["close_date"]
    assert patched.json()["remote_data"]["status_type"] == "won"


# -- rate limits and faults ---------------------------------------------------------------------
def test_429_carries_the_envelope_and_ratelimit_headers(truto_client: httpx.Client) -> None:
    """With limits on, answers carry ratelimit-* headers and the bucket's end is a 429."""
    truto_client.post("http://truto.test/_emulator/rate_limit", json={"rate": 1, "burst": 3})
    params = {"integrated_account_id": SF}
    answers = [truto_client.get("/users", params=params) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[0].headers["ratelimit-remaining"] == "2"
    limited = answers[-1]
    assert int(limited.headers["ratelimit-reset"]) >= 1
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.json()["statusCode"] == 429 and limited.json()["error"] == "Too Many Requests"
    other = truto_client.get("/users", params={"integrated_account_id": CLOSE})
    assert other.status_code == 200  # one bucket per integrated account


def test_error_fault_answers_5xx(truto_client: httpx.Client) -> None:
    """error_rate 1 makes every vendor call fail with a 5xx."""
    truto_client.post("http://truto.test/_emulator/faults", json={"error_rate": 1})
    response = truto_client.get("/users", params={"integrated_account_id": SF})
    assert response.status_code in {500, 502, 503}


def test_fail_after_commit_then_idempotent_retry_creates_once(
    truto_client: httpx.Client, truto_emulator: TrutoEmulator
) -> None:
    """A create that fails after commit exists; its retry with the key replays, no duplicate."""
    count = len(truto_emulator.collections["salesforce:opportunities"])
    truto_client.post("http://truto.test/_emulator/faults", json={"fail_after_commit_rate": 1})
    truto_client.headers["Idempotency-Key"] = "retry-me"
    try:
        failed = sf_create(truto_client)
        assert failed.status_code == 502
    except httpx.ReadTimeout:
        pass
    assert len(truto_emulator.collections["salesforce:opportunities"]) == count + 1
    truto_client.post("http://truto.test/_emulator/faults", json={})
    retried = sf_create(truto_client)
    assert retried.status_code == 201
    assert retried.json()["id"] in truto_emulator.collections["salesforce:opportunities"]
    assert len(truto_emulator.collections["salesforce:opportunities"]) == count + 1


# -- control API ------------------------------------------------------------------------------
def test_control_set_changes_raw_fields(truto_client: httpx.Client) -> None:
    """POST /_emulator/set on salesforce:opportunities changes the stored Salesforce object."""
    deal = reference.shared_deals(3)[0]
    response = truto_client.post(
        "http://truto.test/_emulator/set",
        json={
            "collection": "salesforce:opportunities",
            "id": deal.salesforce_id,
            "fields": {"Description": "set by control"},
        },
    )
    assert response.status_code == 200
    got = truto_client.get(
        f"/opportunities/{deal.salesforce_id}", params={"integrated_account_id": SF}
    )
    assert got.json()["description"] == "set by control"


def test_reset_restores_the_seeded_state(
    truto_client: httpx.Client, truto_emulator: TrutoEmulator
) -> None:
    """POST /_emulator/reset drops created records and brings the seeded ones back."""
    before = set(truto_emulator.collections["salesforce:opportunities"])
    sf_create(truto_client)
    truto_client.post("http://truto.test/_emulator/reset")
    assert set(truto_emulator.collections["salesforce:opportunities"]) == before


def test_close_dates_are_utc_dates(truto_client: httpx.Client) -> None:
    """close_date with an offset is stored as its UTC date and answered at midnight UTC."""
    deal = sf_create(truto_client, close_date="2026-03-01T01:00:00+02:00").json()
    assert deal["close_date"] == "2026-02-28T00:00:00.000Z"
    bad = sf_create(truto_client, close_date="2026-03-01")
    assert bad.status_code == 400
    assert dt.date.fromisoformat(deal["remote_data"]["CloseDate"]) == dt.date(2026, 2, 28)


def test_a_multi_currency_salesforce_org_reads_and_writes_currency_iso_code(
    truto_client: httpx.Client,
) -> None:
    """The emulated org is multi-currency: unified ``currency`` is ``CurrencyIsoCode``, a new
    deal defaults to the corporate USD, a written code is kept, a malformed one is refused."""
    plain = sf_create(truto_client).json()
    assert plain["currency"] == "USD"
    euro = sf_create(truto_client, currency="EUR").json()
    url = f"/opportunities/{euro['id']}"
    raw = truto_client.get(
        url, params={"integrated_account_id": SF, "truto_response_format": "raw"}
    ).json()
    assert (euro["currency"], raw["CurrencyIsoCode"]) == ("EUR", "EUR")
    moved = truto_client.patch(url, params={"integrated_account_id": SF}, json={"currency": "GBP"})
    assert moved.json()["currency"] == "GBP"
    bad = truto_client.patch(url, params={"integrated_account_id": SF}, json={"currency": "€"})
    assert bad.status_code == 400
    assert bad.json()["details"]["remote_error"][0]["fields"] == ["CurrencyIsoCode"]


def test_a_single_currency_org_has_no_currency_field(
    truto_emulator: TrutoEmulator, truto_client: httpx.Client
) -> None:
    """Without multi-currency, Salesforce has no ``CurrencyIsoCode``: answers omit
    ``currency`` and writing it is INVALID_FIELD."""
    truto_emulator.integrations["salesforce"].multi_currency = False  # type: ignore[attr-defined]
    deal = sf_create(truto_client).json()
    assert "currency" not in deal
    refused = sf_create(truto_client, currency="EUR")
    assert refused.status_code == 400
    assert refused.json()["details"]["remote_error"][0]["errorCode"] == "INVALID_FIELD"
