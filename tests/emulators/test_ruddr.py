"""Contract tests of the Ruddr emulator against shared/seeds/000 and shared/vendors.md §1."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sync.emulators import reference
from sync.emulators.ruddr import RuddrEmulator

DROP = object()  # leaves a key out of a request body
MS_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
#: Every key of the response example in seed 000, plus opportunityPipeline (vendors.md §1.2b).
SEED_000_KEYS = {
    "id", "name", "description", "nextSteps", "amount", "isActive", "probability", "priorityId",
    "createdAt", "openDate", "closeDate", "modifiedAt", "currency", "cloudFolderUrl", "owner",
    "opportunityType", "opportunityLeadSource", "company", "practice", "tags",
    "opportunityStage", "projects", "weightedAmount", "timeSpent", "salesforceId", "hubspotId",
    "opportunityPipeline",
}  # fmt: skip


def control(client: httpx.Client, name: str) -> str:
    """The absolute URL of a control endpoint (outside the vendor prefix)."""
    return str(client.base_url.copy_with(path=f"/_emulator/{name}"))


def first(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = client.get(path, params=params).json()["results"][0]
    return result


def company_id(client: httpx.Client, name: str = "Acme Corp") -> str:
    return str(first(client, "/companies", name=name)["id"])


def stage(client: httpx.Client, name: str) -> dict[str, Any]:
    return first(client, "/opportunity-stages", name=name)


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/opportunities", json={"name": "Deal", **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def scan(client: httpx.Client, between_pages: Callable[[int], None] | None = None) -> list[str]:
    """Every opportunity id, following startingAfter cursors until hasMore is false."""
    ids: list[str] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = client.get("/opportunities", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        ids += [r["id"] for r in body["results"]]
        if not body["hasMore"]:
            return ids
        params["startingAfter"] = ids[-1]
        if between_pages:
            between_pages(len(ids))


# -- auth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "ruddr-test-token"}],
    ids=["missing", "wrong-token", "not-bearer"],
)
def test_auth_failure_answers_documented_401(
    ruddr_emulator: RuddrEmulator,
    emulator_client: Callable[..., httpx.Client],
    headers: dict[str, str],
) -> None:
    """Without the right bearer token every vendor path answers Ruddr's documented 401 body."""
    client = emulator_client(ruddr_emulator, base_url="http://r.test/api/workspace")
    response = client.get("/opportunities", headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "status": 401,
        "message": "The provided bearer token is missing or invalid.",
    }


def test_custom_token_is_honoured(emulator_client: Callable[..., httpx.Client]) -> None:
    """An emulator started with another token accepts that token and refuses the default."""
    emulator = RuddrEmulator(token="other")
    client = emulator_client(emulator, base_url="http://r.test/api/workspace")
    assert client.get("/members", headers={"Authorization": "Bearer other"}).status_code == 200
    refused = client.get("/members", headers={"Authorization": "Bearer ruddr-test-token"})
    assert refused.status_code == 401


# -- CRUD ----------------------------------------------------------------------------------------
def test_create_answers_200_with_the_full_seed_000_object(ruddr_client: httpx.Client) -> None:
    """POST /opportunities with seed 000's fields answers 200 and the full nested object."""
    member = first(ruddr_client, "/members")
    proposal = stage(ruddr_client, "Proposal")
    body = {
        "name": "Acme Corp - Mobile App",
        "companyId": company_id(ruddr_client),
        "opportunityStageId": proposal["id"],
        "description": "Proposal for a new mobile application.",
        "nextSteps": "Follow up with client on proposal.",
        "amount": 50000,
        "isActive": True,
        "probability": 0.75,
        "closeDate": "2025-06-30",
        "priorityId": "high",
        "currency": "USD",
        "ownerId": member["id"],
        "cloudFolderUrl": "https://drive.google.com/drive/folders/abc123",
    }
    response = ruddr_client.post("/opportunities", json=body)
    assert response.status_code == 200
    opp = response.json()
    assert set(opp) == SEED_000_KEYS
    assert UUID4.match(opp["id"])
    assert opp["weightedAmount"] == 37500
    assert opp["owner"] == {"id": member["id"], "name": member["name"]}
    assert opp["company"]["client"] == {"id": opp["company"]["client"]["id"], "key": "acme-corp",
                                        "name": "Acme Corp"}  # fmt: skip
    assert opp["opportunityStage"] == {"id": proposal["id"], "name": "Proposal",
                                       "statusId": "open"}  # fmt: skip
    assert opp["opportunityPipeline"]["name"] == "Sales"
    assert MS_STAMP.match(opp["createdAt"]) and opp["modifiedAt"] == opp["createdAt"]
    assert opp["openDate"] == opp["createdAt"][:10]
    assert (opp["salesforceId"], opp["hubspotId"], opp["timeSpent"]) == (None, None, 0)


def test_get_patch_delete_round_trip(ruddr_client: httpx.Client) -> None:
    """GET returns what was created, PATCH changes only the sent fields, DELETE answers 204."""
    opp = create(ruddr_client, companyId=company_id(ruddr_client), amount=1000, nextSteps="Call")
    assert ruddr_client.get(f"/opportunities/{opp['id']}").json() == opp
    patched = ruddr_client.patch(f"/opportunities/{opp['id']}", json={"amount": 2500.5})
    assert patched.status_code == 200
    after = patched.json()
    assert after["amount"] == 2500.5 and after["nextSteps"] == "Call"
    assert after["modifiedAt"] > opp["modifiedAt"] and after["createdAt"] == opp["createdAt"]
    deleted = ruddr_client.delete(f"/opportunities/{opp['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    missing = ruddr_client.get(f"/opportunities/{opp['id']}")
    assert missing.status_code == 404 and missing.json()["status"] == 404


def test_default_stage_is_the_lowest_probability_stage(ruddr_client: httpx.Client) -> None:
    """Without opportunityStageId the stage with the lowest probability (Closed Lost) is used."""
    opp = create(ruddr_client, companyId=company_id(ruddr_client))
    assert opp["opportunityStage"]["name"] == "Closed Lost"
    assert opp["probability"] == 0 and opp["currency"] == "USD" and opp["isActive"] is True


def test_probability_defaults_to_the_stage_on_create_only(ruddr_client: httpx.Client) -> None:
    """Create takes the stage's probability; a later stage change keeps the stored probability."""
    negotiation = stage(ruddr_client, "Negotiation")
    opp = create(ruddr_client, companyId=company_id(ruddr_client),
                 opportunityStageId=negotiation["id"])  # fmt: skip
    assert opp["probability"] == 0.8
    won = stage(ruddr_client, "Closed Won")
    moved = ruddr_client.patch(
        f"/opportunities/{opp['id']}", json={"opportunityStageId": won["id"]}
    )
    assert moved.json()["opportunityStage"]["statusId"] == "won"
    assert moved.json()["probability"] == 0.8


def test_empty_strings_become_null_and_null_unsets(ruddr_client: httpx.Client) -> None:
    """An empty string is stored as null and an explicit null clears a value, as documented."""
    opp = create(ruddr_client, companyId=company_id(ruddr_client), description="x", amount=10,
                 priorityId="low")  # fmt: skip
    patched = ruddr_client.patch(
        f"/opportunities/{opp['id']}", json={"description": "", "amount": None, "priorityId": None}
    ).json()
    assert (patched["description"], patched["amount"], patched["priorityId"]) == (None,) * 3
    assert patched["weightedAmount"] is None
    cleared = ruddr_client.patch(f"/opportunities/{opp['id']}", json={"tagIds": None})
    assert cleared.status_code == 200 and cleared.json()["tags"] == []


def test_every_write_moves_modified_at_strictly_later(ruddr_client: httpx.Client) -> None:
    """Back-to-back PATCHes within one millisecond still get strictly increasing modifiedAt."""
    opp = create(ruddr_client, companyId=company_id(ruddr_client))
    stamps = [opp["modifiedAt"]]
    for i in range(20):
        body = ruddr_client.patch(f"/opportunities/{opp['id']}", json={"amount": i}).json()
        assert MS_STAMP.match(body["modifiedAt"])
        stamps.append(body["modifiedAt"])
    assert stamps == sorted(set(stamps))


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"name": DROP}, "'name' is required", id="name-missing"),
        pytest.param({"name": ""}, "'name' is required", id="name-empty"),
        pytest.param({"name": "n" * 256}, "'name' must be at most 255 characters", id="name-long"),
        pytest.param({"companyId": DROP}, "'companyId' is required", id="company-missing"),
        pytest.param({"companyId": "nope"}, "'companyId' must be the ID of an existing company",
                     id="company-unknown"),
        pytest.param({"probability": 1.5}, "'probability' must be a number from 0 to 1 with at "
                     "most four decimals", id="probability-range"),
        pytest.param({"probability": 0.12345}, "'probability' must be a number from 0 to 1 with "
                     "at most four decimals", id="probability-decimals"),
        pytest.param({"priorityId": "urgent"}, "'priorityId' must be one of: high, medium, low",
                     id="priority"),
        pytest.param({"description": "d" * 5001},
                     "'description' must be at most 5000 characters", id="description"),
        pytest.param({"nextSteps": "s" * 256}, "'nextSteps' must be at most 255 characters",
                     id="next-steps"),
        pytest.param({"currency": "usd"}, "'currency' must be a 3-letter currency code",
                     id="currency"),
        pytest.param({"ownerId": "nobody"}, "'ownerId' must be the ID of an existing member",
                     id="owner"),
        pytest.param({"opportunityStageId": "x"},
                     "'opportunityStageId' must be the ID of an existing opportunity stage",
                     id="stage"),
        pytest.param({"closeDate": "2025-02-30"}, "'closeDate' must be a date (YYYY-MM-DD)",
                     id="close-date"),
        pytest.param({"amount": "100"}, "'amount' must be a number", id="amount"),
        pytest.param({"salesforceId": "006x"}, "'salesforceId' is read-only", id="salesforce-id"),
        pytest.param({"hubspotId": "1"}, "'hubspotId' is read-only", id="hubspot-id"),
        pytest.param({"modifiedAt": "x"}, "'modifiedAt' is not allowed", id="unknown-field"),
    ],
)  # fmt: skip
def test_invalid_create_answers_400_with_errors(
    ruddr_client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    """Each documented constraint is enforced with Ruddr's {status, message, errors} body."""
    body = {"name": "Deal", "companyId": company_id(ruddr_client), **body}
    body = {key: value for key, value in body.items() if value is not DROP}
    response = ruddr_client.post("/opportunities", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["status"] == 400 and payload["message"]
    assert message in payload["errors"]


def test_patch_validates_and_changes_nothing_on_error(ruddr_client: httpx.Client) -> None:
    """A PATCH with one bad field answers 400 and leaves the record untouched."""
    opp = create(ruddr_client, companyId=company_id(ruddr_client), amount=5)
    bad = ruddr_client.patch(f"/opportunities/{opp['id']}", json={"amount": 9, "name": None})
    assert bad.status_code == 400 and bad.json()["errors"] == ["'name' cannot be null"]
    assert ruddr_client.get(f"/opportunities/{opp['id']}").json() == opp


def test_malformed_json_answers_400(ruddr_client: httpx.Client) -> None:
    """A body that is not a JSON object answers 400 in Ruddr's error shape."""
    response = ruddr_client.post("/opportunities", content=b"{not json")
    assert response.status_code == 400 and response.json()["status"] == 400
    assert ruddr_client.post("/opportunities", json=[1]).status_code == 400


def test_unknown_route_and_method_use_the_vendor_body(ruddr_client: httpx.Client) -> None:
    """Unknown paths answer 404 and unsupported methods 405, both as {status, message}."""
    assert ruddr_client.get("/nothing-here").json()["status"] == 404
    assert ruddr_client.put("/opportunities").json()["status"] == 405


# -- lists and pagination ------------------------------------------------------------------------
def test_list_is_created_at_descending_with_default_limit_10(ruddr_client: httpx.Client) -> None:
    """The default page holds 10 records, newest createdAt first, with hasMore."""
    body = ruddr_client.get("/opportunities").json()
    assert len(body["results"]) == 10 and body["hasMore"] is True
    stamps = [r["createdAt"] for r in body["results"]]
    assert stamps == sorted(stamps, reverse=True)
    newest = create(ruddr_client, companyId=company_id(ruddr_client))
    assert first(ruddr_client, "/opportunities")["id"] == newest["id"]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"startingAfter": "a", "endingBefore": "b"},
     {"modifiedAtOnAfter": "2025-01-01"}, {"companyId": "x"}, {"startingAfter": "gone"}],
    ids=["limit-0", "limit-101", "limit-text", "both-cursors", "modified-filter", "company-filter",
         "unknown-cursor"],
)  # fmt: skip
def test_bad_list_parameters_answer_400(ruddr_client: httpx.Client, params: dict[str, Any]) -> None:
    """Out-of-range limits, both cursors, unknown cursors and undocumented filters answer 400."""
    response = ruddr_client.get("/opportunities", params=params)
    assert response.status_code == 400 and response.json()["status"] == 400


def test_limit_bounds_are_inclusive(ruddr_client: httpx.Client) -> None:
    """limit=1 and limit=100 are both accepted."""
    assert len(ruddr_client.get("/opportunities", params={"limit": 1}).json()["results"]) == 1
    assert ruddr_client.get("/opportunities", params={"limit": 100}).status_code == 200


def test_ending_before_pages_backwards(ruddr_client: httpx.Client) -> None:
    """endingBefore returns the records just before the cursor, still newest first."""
    all_ids = scan(ruddr_client)
    page = ruddr_client.get(
        "/opportunities", params={"endingBefore": all_ids[10], "limit": 4}
    ).json()
    assert [r["id"] for r in page["results"]] == all_ids[6:10]
    assert page["hasMore"] is True
    top = ruddr_client.get("/opportunities", params={"endingBefore": all_ids[3]}).json()
    assert [r["id"] for r in top["results"]] == all_ids[:3] and top["hasMore"] is False


def test_pagination_over_1000_records_while_editing(
    ruddr_emulator: RuddrEmulator, ruddr_client: httpx.Client
) -> None:
    """A full cursor scan of 1,000+ records sees each exactly once while records are edited."""
    ruddr_emulator.add_opportunities(1000, seed=99)
    expected = set(ruddr_emulator.collections["opportunities"])
    assert len(expected) > 1000
    everything = list(expected)

    def edit(seen: int) -> None:
        # Edit records on both sides of the cursor: already returned and not yet returned.
        for opp_id in (everything[seen % len(everything)], everything[-seen % len(everything)]):
            response = ruddr_client.patch(f"/opportunities/{opp_id}", json={"amount": seen})
            assert response.status_code == 200

    ids = scan(ruddr_client, between_pages=edit)
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected


def test_cursor_of_a_deleted_record_answers_400(ruddr_client: httpx.Client) -> None:
    """A scan whose cursor record was deleted cannot continue (the stricter choice)."""
    page = ruddr_client.get("/opportunities", params={"limit": 5}).json()["results"]
    assert ruddr_client.delete(f"/opportunities/{page[-1]['id']}").status_code == 204
    response = ruddr_client.get("/opportunities", params={"startingAfter": page[-1]["id"]})
    assert response.status_code == 400


# -- supporting resources ------------------------------------------------------------------------
def test_companies_list_filter_and_create(ruddr_client: httpx.Client) -> None:
    """Companies carry their client, filter by exact name, and can be created (with a client)."""
    acme = first(ruddr_client, "/companies", name="Acme Corp")
    assert acme["client"]["key"] == "acme-corp"
    assert ruddr_client.get("/companies", params={"name": "Acme"}).json()["results"] == []
    created = ruddr_client.post(
        "/companies", json={"name": "New Co", "clientId": acme["client"]["id"]}
    )
    assert created.status_code == 200 and created.json()["client"] == acme["client"]
    assert first(ruddr_client, "/companies")["id"] == created.json()["id"]
    opp = create(ruddr_client, companyId=created.json()["id"])
    assert opp["company"]["name"] == "New Co"
    bad = ruddr_client.post("/companies", json={"clientId": "nope"})
    assert bad.status_code == 400 and "'name' is required" in bad.json()["errors"]


def test_members_have_reference_emails(ruddr_client: httpx.Client) -> None:
    """GET /members lists every reference user with id, name and e-mail."""
    members = ruddr_client.get("/members", params={"limit": 100}).json()["results"]
    assert {(m["name"], m["email"]) for m in members} == set(reference.USERS)
    assert all(UUID4.match(m["id"]) for m in members)


def test_opportunity_stages_shape_filter_and_pages(ruddr_client: httpx.Client) -> None:
    """Stages have the documented fields, filter by exact name and paginate with limit."""
    stages = ruddr_client.get("/opportunity-stages", params={"limit": 100}).json()
    assert {(s["name"], s["probability"], s["statusId"]) for s in stages["results"]} == set(
        reference.RUDDR_STAGES
    )
    assert set(stages["results"][0]) == {
        "id", "name", "description", "probability", "statusId", "isActive",
        "opportunityPipelineId", "createdAt",
    }  # fmt: skip
    page = ruddr_client.get("/opportunity-stages", params={"limit": 2}).json()
    assert len(page["results"]) == 2 and page["hasMore"] is True
    assert len(ruddr_client.get("/opportunity-stages", params={"name": "Proposal"}).json()[
        "results"]) == 1  # fmt: skip


# -- seeded data -----------------------------------------------------------------------------
def test_seed_is_deterministic_and_holds_the_shared_deals() -> None:
    """The same seed gives the same ids; shared deals carry reference's salesforceId/hubspotId."""
    one, two = (
        RuddrEmulator(seed=3, seed_opportunities=5),
        RuddrEmulator(seed=3, seed_opportunities=5),
    )
    timeless = ("createdAt", "modifiedAt", "openDate", "closeDate")  # relative to "now"

    def without_time(emulator: RuddrEmulator) -> dict[str, Any]:
        return {
            name: {i: {k: v for k, v in r.items() if k not in timeless} for i, r in rows.items()}
            for name, rows in emulator.collections.items()
        }

    assert without_time(one) == without_time(two)
    by_name = {o["name"]: o for o in one.collections["opportunities"].values()}
    for deal in reference.shared_deals(3):
        opp = by_name[deal.name]
        assert (opp["salesforceId"], opp["hubspotId"]) == (deal.salesforce_id, deal.hubspot_id)
        assert opp["amount"] == deal.amount and opp["closeDate"] == deal.close_date.isoformat()
    assert len(one.collections["opportunities"]) == 5 + len(reference.shared_deals(3))


# -- rate limit and faults -------------------------------------------------------------------
def test_rate_limit_answers_429_without_retry_after(
    ruddr_emulator: RuddrEmulator, ruddr_client: httpx.Client
) -> None:
    """With limiting on, a burst past the bucket answers Ruddr's 429 body and no Retry-After."""
    switched = ruddr_client.post(
        control(ruddr_client, "rate_limit"), json={"enabled": True, "rate": 5}
    )
    assert switched.json()["burst"] == 15  # burst scales with the documented 60 at 20 req/s
    statuses = [ruddr_client.get("/members").status_code for _ in range(20)]
    assert statuses[:15] == [200] * 15 and 429 in statuses[15:]
    limited = ruddr_client.get("/members")
    assert limited.status_code == 429
    assert limited.json() == {"status": 429, "message": "Too many requests"}
    assert "retry-after" not in limited.headers
    assert not any(h.startswith("x-ratelimit") for h in limited.headers)


def test_default_rate_limit_is_20_per_second_burst_60() -> None:
    """Switched on without a rate, the documented 20 req/s with a burst of 60 applies."""
    emulator = RuddrEmulator(rate_limited=True)
    assert (emulator.rate_limit.rate, emulator.rate_limit.burst) == (20.0, 60.0)


def test_error_rate_fault_answers_an_injected_status(ruddr_client: httpx.Client) -> None:
    """error_rate 1 makes every vendor call answer one of the configured statuses."""
    ruddr_client.post(control(ruddr_client, "faults"), json={"error_rate": 1.0, "statuses": [503]})
    assert ruddr_client.get("/opportunities").status_code == 503
    ruddr_client.post(control(ruddr_client, "faults"), json={"error_rate": 0})
    assert ruddr_client.get("/opportunities").status_code == 200


def test_timeout_fault_raises_read_timeout(ruddr_client: httpx.Client) -> None:
    """timeout_rate 1 makes an in-process call raise httpx.ReadTimeout."""
    ruddr_client.post(control(ruddr_client, "faults"), json={"timeout_rate": 1.0})
    with pytest.raises(httpx.ReadTimeout):
        ruddr_client.get("/opportunities")


def test_fail_after_commit_applies_the_write(
    ruddr_emulator: RuddrEmulator, ruddr_client: httpx.Client
) -> None:
    """fail_after_commit answers 502 or drops the call, yet the created records exist."""
    before = len(ruddr_emulator.collections["opportunities"])
    ruddr_client.post(control(ruddr_client, "faults"), json={"fail_after_commit_rate": 1.0})
    outcomes = []
    for _ in range(6):
        try:
            outcomes.append(
                ruddr_client.post(
                    "/opportunities", json={"name": "X", "companyId": company_id(ruddr_client)}
                ).status_code
            )
        except httpx.ReadTimeout:
            outcomes.append(0)
    assert set(outcomes) <= {502, 0} and outcomes
    assert len(ruddr_emulator.collections["opportunities"]) == before + 6


# -- control API ---------------------------------------------------------------------------------
def test_reset_restores_the_started_state(
    ruddr_emulator: RuddrEmulator, ruddr_client: httpx.Client
) -> None:
    """POST /_emulator/reset drops API writes and restores seeded data with the same ids."""
    seeded = {k: dict(v) for k, v in ruddr_emulator.collections["opportunities"].items()}
    create(ruddr_client, companyId=company_id(ruddr_client))
    ruddr_client.delete(f"/opportunities/{next(iter(seeded))}")
    assert ruddr_client.post(control(ruddr_client, "reset")).json() == {"ok": True}
    assert set(ruddr_emulator.collections["opportunities"]) == set(seeded)
    assert ruddr_client.get(control(ruddr_client, "requests")).json()["counts"]["total"] == 0


def test_seed_adds_distinct_opportunities(
    ruddr_emulator: RuddrEmulator, ruddr_client: httpx.Client
) -> None:
    """POST /_emulator/seed adds N new records, even when the same seed is used twice."""
    before = len(ruddr_emulator.collections["opportunities"])
    for _ in range(2):
        added = ruddr_client.post(
            control(ruddr_client, "seed"), json={"opportunities": 30, "seed": 5}
        )
        assert added.json() == {"ok": True, "added": 30}
    assert len(scan(ruddr_client)) == before + 60


def test_requests_log_counts_vendor_calls(ruddr_client: httpx.Client) -> None:
    """GET /_emulator/requests lists each vendor call with its status and counts them."""
    ruddr_client.get("/opportunities", params={"limit": 2})
    ruddr_client.get("/opportunities/missing")
    log = ruddr_client.get(control(ruddr_client, "requests")).json()
    assert [(r["method"], r["path"], r["status"]) for r in log["requests"]] == [
        ("GET", "/api/workspace/opportunities", 200),
        ("GET", "/api/workspace/opportunities/missing", 404),
    ]
    assert log["requests"][0]["query"] == "limit=2"
    assert log["counts"]["total"] == 2 and log["counts"]["by_status"] == {"200": 1, "404": 1}


def test_clock_advance_moves_write_stamps(ruddr_client: httpx.Client) -> None:
    """POST /_emulator/clock moves the server clock that stamps writes."""
    opp = create(ruddr_client, companyId=company_id(ruddr_client))
    ruddr_client.post(control(ruddr_client, "clock"), json={"advance_seconds": 86400 * 3})
    later = ruddr_client.patch(f"/opportunities/{opp['id']}", json={"amount": 1}).json()
    assert later["modifiedAt"][:10] > opp["modifiedAt"][:10]


def test_control_set_writes_read_only_ids(ruddr_client: httpx.Client) -> None:
    """POST /_emulator/set sets salesforceId / hubspotId and stamps a later modifiedAt."""
    opp = create(ruddr_client, companyId=company_id(ruddr_client))
    fields = {"salesforceId": "0060b00000BkFxAAAV", "hubspotId": "12345678"}
    response = ruddr_client.post(
        control(ruddr_client, "set"),
        json={"collection": "opportunities", "id": opp["id"], "fields": fields},
    )
    assert response.json() == {"ok": True}
    after = ruddr_client.get(f"/opportunities/{opp['id']}").json()
    assert (after["salesforceId"], after["hubspotId"]) == tuple(fields.values())
    assert after["modifiedAt"] > opp["modifiedAt"]
    unknown = ruddr_client.post(
        control(ruddr_client, "set"),
        json={"collection": "opportunities", "id": "nope", "fields": fields},
    )
    assert unknown.status_code == 404


def test_listing_order_extends_with_creates_and_resorts_on_anything_else(
    ruddr_emulator: RuddrEmulator, ruddr_client: httpx.Client
) -> None:
    """The newest-first order kept between pages (sorted once, then extended by each record
    created after the rest, for a million-deal scan that runs while deals are created) lists
    exactly what a fresh sort does — after creates between pages, a delete, and a record put
    straight into the table with an older ``createdAt``; backwards pages agree too."""

    def fresh() -> list[str]:
        rows = ruddr_emulator.collections["opportunities"].values()
        return [r["id"] for r in sorted(rows, key=lambda r: (r["createdAt"], r["id"]))][::-1]

    ruddr_emulator.add_opportunities(250, seed=5)  # three pages: creates land between them
    company = company_id(ruddr_client)
    scan(ruddr_client)  # the order is built
    created = [create(ruddr_client, companyId=company)["id"] for _ in range(3)]
    ids = scan(
        ruddr_client,
        between_pages=lambda _: created.append(create(ruddr_client, companyId=company)["id"]),
    )
    # newest first; creates within one millisecond tie on createdAt and go by id, as a sort does
    assert sorted(ids[:3]) == sorted(created[:3]) and len(created) == 5
    assert scan(ruddr_client) == fresh()
    assert ruddr_client.delete(f"/opportunities/{created[1]}").status_code == 204
    assert scan(ruddr_client) == fresh()
    table = ruddr_emulator.collections["opportunities"]
    older = {**table[created[0]], "id": "00000000-old", "createdAt": "2020-01-01T00:00:00.000Z"}
    table[older["id"]] = older
    listed = scan(ruddr_client)
    assert listed == fresh() and listed[-1] == "00000000-old"
    back = ruddr_client.get("/opportunities", params={"endingBefore": listed[5], "limit": 3})
    assert [r["id"] for r in back.json()["results"]] == listed[2:5]
