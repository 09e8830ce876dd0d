"""Contract tests of the ParsaLink emulator against shared/seeds/003 and shared/vendors.md §6."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sync.emulators import reference
from sync.emulators.parsalink import DEMO_EMAIL, DEMO_PASSWORD, ParsaLinkEmulator

SECONDS_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ULID_ID = re.compile(r"^(opp|acc|usr)_[0-9A-HJKMNP-TV-Z]{26}$")
#: The keys of seed 003's list example and of its "Get an Opportunity" example.
LIST_KEYS = {
    "id", "name", "accountId", "accountName", "value", "stage", "probability", "closeDate",
    "assignedTo", "source", "createdAt", "updatedAt",
}  # fmt: skip
DETAIL_KEYS = LIST_KEYS | {"closedDate", "lossReason", "assignedToName", "contactIds",
                           "description"}  # fmt: skip
DROP = object()  # leaves a key out of a request body


def control(client: httpx.Client, name: str) -> str:
    """The absolute URL of a control endpoint (outside the vendor prefix)."""
    return str(client.base_url.copy_with(path=f"/_emulator/{name}"))


def account_id(client: httpx.Client, name: str = "Acme Corp") -> str:
    return str(client.get("/accounts/", params={"search": name}).json()["results"][0]["id"])


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "Deal", "accountId": account_id(client), **fields}
    response = client.post("/opportunities/", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def scan(
    client: httpx.Client,
    params: dict[str, Any] | None = None,
    between_pages: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Every listed opportunity, following the absolute ``next`` URLs to the end."""
    records: list[dict[str, Any]] = []
    response = client.get("/opportunities/", params={"limit": 100, **(params or {})})
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["results"]
        if body["next"] is None:
            assert len(records) == body["count"]
            return records
        if between_pages:
            between_pages(len(records))
        response = client.get(body["next"])


def login(client: httpx.Client, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> Any:
    return client.post("/auth/login/", json={"email": email, "password": password}, headers={})


# -- auth ----------------------------------------------------------------------------------------
def test_missing_credentials_answer_401(
    parsalink_emulator: ParsaLinkEmulator, emulator_client: Callable[..., httpx.Client]
) -> None:
    """Without a bearer token the API answers DRF's 401 body and a WWW-Authenticate header."""
    client = emulator_client(parsalink_emulator, base_url="http://p.test/api")
    response = client.get("/opportunities/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["pk_live_wrong", "eyJ.eyJ.sig", "pk_test_parsalinkx"])
def test_invalid_token_answers_401(
    parsalink_emulator: ParsaLinkEmulator,
    emulator_client: Callable[..., httpx.Client],
    token: str,
) -> None:
    """A wrong API key or a forged JWT answers 401 token_not_valid."""
    client = emulator_client(parsalink_emulator, base_url="http://p.test/api")
    response = client.get("/opportunities/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_login_returns_tokens_and_the_user(parsalink_client: httpx.Client) -> None:
    """POST /auth/login/ answers {access, refresh, user}; the access token opens the API."""
    response = login(parsalink_client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "user"}
    assert body["user"]["email"] == DEMO_EMAIL
    assert set(body["user"]) == {"id", "email", "firstName", "lastName", "workspaceId"}
    assert body["access"].startswith("eyJ") and body["access"].count(".") == 2
    bearer = {"Authorization": f"Bearer {body['access']}"}
    assert parsalink_client.get("/opportunities/", headers=bearer).status_code == 200


def test_every_reference_user_logs_in_with_the_test_password(
    parsalink_client: httpx.Client,
) -> None:
    """Each seeded user can log in with the documented test password."""
    for _, email in reference.USERS:
        assert login(parsalink_client, email).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [({"email": DEMO_EMAIL, "password": "nope"}, 401), ({"email": DEMO_EMAIL}, 400),
     ({"email": "nobody@x.test", "password": DEMO_PASSWORD}, 401)],
    ids=["wrong-password", "missing-password", "unknown-user"],
)  # fmt: skip
def test_bad_login_is_refused(
    parsalink_client: httpx.Client, body: dict[str, str], status: int
) -> None:
    """Wrong credentials answer 401 with a detail; a missing field answers 400 per field."""
    response = parsalink_client.post("/auth/login/", json=body)
    assert response.status_code == status
    assert "detail" in response.json() or "password" in response.json()


def test_access_token_expires_after_one_hour(parsalink_client: httpx.Client) -> None:
    """An access token works before the hour is up and answers 401 after (emulator clock)."""
    access = login(parsalink_client).json()["access"]
    bearer = {"Authorization": f"Bearer {access}"}
    parsalink_client.post(control(parsalink_client, "clock"), json={"advance_seconds": 3500})
    assert parsalink_client.get("/users/", headers=bearer).status_code == 200
    parsalink_client.post(control(parsalink_client, "clock"), json={"advance_seconds": 200})
    expired = parsalink_client.get("/users/", headers=bearer)
    assert expired.status_code == 401 and expired.json()["code"] == "token_not_valid"


def test_refresh_rotates_and_a_used_refresh_token_is_refused(
    parsalink_client: httpx.Client,
) -> None:
    """Refreshing answers a new {access, refresh}; the old refresh token is then dead."""
    first = login(parsalink_client).json()["refresh"]
    rotated = parsalink_client.post("/auth/token/refresh/", json={"refresh": first})
    assert rotated.status_code == 200 and set(rotated.json()) == {"access", "refresh"}
    bearer = {"Authorization": f"Bearer {rotated.json()['access']}"}
    assert parsalink_client.get("/users/", headers=bearer).status_code == 200
    reused = parsalink_client.post("/auth/token/refresh/", json={"refresh": first})
    assert reused.status_code == 401 and reused.json()["code"] == "token_not_valid"
    again = parsalink_client.post(
        "/auth/token/refresh/", json={"refresh": rotated.json()["refresh"]}
    )
    assert again.status_code == 200


def test_refresh_token_expires_after_30_days(parsalink_client: httpx.Client) -> None:
    """A refresh token older than 30 days answers 401; an access token is not a refresh token."""
    tokens = login(parsalink_client).json()
    wrong_kind = parsalink_client.post("/auth/token/refresh/", json={"refresh": tokens["access"]})
    assert wrong_kind.status_code == 401
    parsalink_client.post(control(parsalink_client, "clock"), json={"advance_seconds": 30 * 86400})
    late = parsalink_client.post("/auth/token/refresh/", json={"refresh": tokens["refresh"]})
    assert late.status_code == 401


# -- CRUD and the seed 003 examples ----------------------------------------------------------
def test_create_example_answers_201_with_the_full_object(parsalink_client: httpx.Client) -> None:
    """Seed 003's create example answers 201 with every field of the "Get" example."""
    user = parsalink_client.get("/users/").json()["results"][0]
    body = {
        "name": "TechCorp — Professional Services Q2",
        "accountId": account_id(parsalink_client, "Initech"),
        "value": 24000,
        "stage": "qualification",
        "probability": 40,
        "closeDate": "2025-06-30",
        "assignedTo": user["id"],
        "source": "outbound",
        "contactIds": ["cnt_01HX...", "cnt_03HX..."],
        "description": "Professional services engagement for data migration project",
    }
    response = parsalink_client.post("/opportunities/", json=body)
    assert response.status_code == 201
    opp = response.json()
    assert set(opp) == DETAIL_KEYS
    assert {k: opp[k] for k in body} == body
    assert ULID_ID.match(opp["id"]) and opp["id"].startswith("opp_")
    assert opp["accountName"] == "Initech"
    assert opp["assignedToName"] == f"{user['firstName']} {user['lastName']}"
    assert (opp["closedDate"], opp["lossReason"]) == (None, None)
    assert SECONDS_STAMP.match(opp["createdAt"]) and opp["updatedAt"] == opp["createdAt"]


def test_get_patch_delete_round_trip(parsalink_client: httpx.Client) -> None:
    """GET returns the created object, PATCH answers 200 with it updated, DELETE answers 204."""
    opp = create(parsalink_client, value=100)
    assert parsalink_client.get(f"/opportunities/{opp['id']}/").json() == opp
    parsalink_client.post(control(parsalink_client, "clock"), json={"advance_seconds": 2})
    patched = parsalink_client.patch(f"/opportunities/{opp['id']}/", json={"probability": 55})
    assert patched.status_code == 200
    assert patched.json()["probability"] == 55 and patched.json()["value"] == 100
    assert patched.json()["updatedAt"] > opp["updatedAt"]
    deleted = parsalink_client.delete(f"/opportunities/{opp['id']}/")
    assert (deleted.status_code, deleted.content) == (204, b"")
    missing = parsalink_client.get(f"/opportunities/{opp['id']}/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}


def test_close_a_deal_example(parsalink_client: httpx.Client) -> None:
    """Seed 003's "close a deal" PATCH keeps the given closedDate and probability."""
    opp = create(parsalink_client)
    body = {"stage": "closed_won", "closedDate": "2025-03-25", "probability": 100}
    won = parsalink_client.patch(f"/opportunities/{opp['id']}/", json=body).json()
    assert {k: won[k] for k in body} == body


def test_log_a_loss_example_sets_closed_date(parsalink_client: httpx.Client) -> None:
    """Seed 003's "log a loss" stores lossReason and stamps closedDate; a reopen clears it."""
    opp = create(parsalink_client)
    body = {"stage": "closed_lost", "lossReason": "Chose competitor — price was primary objection"}
    lost = parsalink_client.patch(f"/opportunities/{opp['id']}/", json=body).json()
    assert lost["lossReason"] == body["lossReason"]
    assert lost["closedDate"] == lost["updatedAt"][:10]
    reopened = parsalink_client.patch(f"/opportunities/{opp['id']}/", json={"stage": "proposal"})
    assert reopened.json()["closedDate"] is None


def test_writes_within_a_second_share_the_stamp(parsalink_client: httpx.Client) -> None:
    """updatedAt has whole-second precision, so it is not strictly increasing per write."""
    opp = create(parsalink_client)
    stamps = {
        parsalink_client.patch(f"/opportunities/{opp['id']}/", json={"value": i}).json()[
            "updatedAt"
        ]
        for i in range(5)
    }
    assert len(stamps) <= 2 and all(SECONDS_STAMP.match(s) for s in stamps)


def test_unknown_and_read_only_fields_are_ignored(parsalink_client: httpx.Client) -> None:
    """Like DRF, unknown and read-only body fields are dropped silently."""
    opp = create(parsalink_client, accountName="Bogus", createdAt="2000-01-01T00:00:00Z", x=1)
    assert opp["accountName"] == "Acme Corp" and opp["createdAt"] != "2000-01-01T00:00:00Z"
    assert "x" not in opp


def test_defaults_of_a_minimal_create(parsalink_client: httpx.Client) -> None:
    """Only name and accountId given: stage prospecting, probability 0, nullables null."""
    opp = create(parsalink_client)
    assert (opp["stage"], opp["probability"], opp["value"], opp["contactIds"]) == (
        "prospecting", 0, None, [])  # fmt: skip


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": DROP}, "name", "This field is required."),
        ({"accountId": DROP}, "accountId", "This field is required."),
        ({"name": "  "}, "name", "This field may not be blank."),
        ({"name": None}, "name", "This field may not be null."),
        ({"name": "n" * 256}, "name", "Ensure this field has no more than 255 characters."),
        ({"accountId": "acc_nope"}, "accountId", 'Invalid pk "acc_nope" - object does not exist.'),
        ({"assignedTo": "usr_nope"}, "assignedTo",
         'Invalid pk "usr_nope" - object does not exist.'),
        ({"stage": "won"}, "stage", '"won" is not a valid choice.'),
        ({"probability": 101}, "probability", "Ensure this value is less than or equal to 100."),
        ({"probability": -1}, "probability", "Ensure this value is greater than or equal to 0."),
        ({"probability": 0.4}, "probability", "A valid integer is required."),
        ({"value": "24000"}, "value", "A valid number is required."),
        ({"value": 1.005}, "value", "Ensure that there are no more than 2 decimal places."),
        ({"value": -5}, "value", "Ensure this value is greater than or equal to 0."),
        ({"closeDate": "30/06/2025"}, "closeDate",
         "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        ({"contactIds": "cnt_1"}, "contactIds", 'Expected a list of items but got type "str".'),
    ],
    ids=["name-missing", "account-missing", "name-blank", "name-null", "name-long",
         "account-unknown", "user-unknown", "stage", "probability-high", "probability-low",
         "probability-float", "value-string", "value-decimals", "value-negative", "close-date",
         "contact-ids"],
)  # fmt: skip
def test_validation_errors_answer_422(
    parsalink_client: httpx.Client, body: dict[str, Any], field: str, message: str
) -> None:
    """Each field constraint answers 422 with DRF's {field: [message]} map plus detail."""
    full = {"name": "Deal", "accountId": account_id(parsalink_client), **body}
    full = {k: v for k, v in full.items() if v is not DROP}
    response = parsalink_client.post("/opportunities/", json=full)
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid input.", field: [message]}


def test_invalid_patch_changes_nothing(parsalink_client: httpx.Client) -> None:
    """A PATCH with one invalid field answers 422 and leaves the record as it was."""
    opp = create(parsalink_client, value=10)
    bad = parsalink_client.patch(
        f"/opportunities/{opp['id']}/", json={"value": 20, "stage": "done"}
    )
    assert bad.status_code == 422 and "stage" in bad.json()
    assert parsalink_client.get(f"/opportunities/{opp['id']}/").json() == opp


def test_malformed_json_answers_400(parsalink_client: httpx.Client) -> None:
    """A body that is not JSON answers 400 with a DRF parse-error detail."""
    response = parsalink_client.post("/opportunities/", content=b"{nope")
    assert response.status_code == 400 and response.json()["detail"].startswith("JSON parse")


def test_paths_need_the_trailing_slash_and_documented_methods(
    parsalink_client: httpx.Client,
) -> None:
    """A path without its trailing slash is 404 and an undocumented method 405."""
    assert parsalink_client.get("/opportunities").status_code == 404
    put = parsalink_client.put("/opportunities/", json={})
    assert put.status_code == 405 and put.json() == {"detail": 'Method "PUT" not allowed.'}


# -- lists and pagination ------------------------------------------------------------------------
def test_list_page_has_the_documented_envelope_and_summary_items(
    parsalink_client: httpx.Client,
) -> None:
    """GET /opportunities/ answers {count, next, previous, results} of list-example items."""
    body = parsalink_client.get("/opportunities/").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 30 and len(body["results"]) == 20
    assert body["next"] == "http://parsalink.test/api/opportunities/?page=2"
    assert body["previous"] is None
    assert all(set(r) == LIST_KEYS for r in body["results"])


def test_full_list_objects_option(emulator_client: Callable[..., httpx.Client]) -> None:
    """With full_list_objects the list items carry every field of the detail object."""
    emulator = ParsaLinkEmulator(seed_opportunities=3, full_list_objects=True)
    client = emulator_client(emulator, base_url="http://p.test/api",
                             headers={"Authorization": "Bearer pk_test_parsalink"})  # fmt: skip
    assert set(client.get("/opportunities/").json()["results"][0]) == DETAIL_KEYS


def test_page_links_walk_forward_and_back(parsalink_client: httpx.Client) -> None:
    """next/previous are absolute, keep the other parameters (sorted, as DRF re-encodes them),
    and page 2's previous drops ``page``."""
    two = parsalink_client.get("/opportunities/", params={"page": 2, "limit": 10}).json()
    assert two["next"] == "http://parsalink.test/api/opportunities/?limit=10&page=3"
    assert two["previous"] == "http://parsalink.test/api/opportunities/?limit=10"
    three = parsalink_client.get(two["next"]).json()
    assert three["next"] is None and len(three["results"]) == 10
    assert three["previous"].endswith("?limit=10&page=2")


def test_offset_pagination_links(parsalink_client: httpx.Client) -> None:
    """limit/offset pages link by offset and cover the list without overlap."""
    first = parsalink_client.get("/opportunities/", params={"limit": 12, "offset": 0}).json()
    assert first["next"].endswith("offset=12") and first["previous"] is None
    second = parsalink_client.get(first["next"]).json()
    assert second["previous"].endswith("limit=12") and "offset" not in second["previous"]
    ids = [r["id"] for r in first["results"] + second["results"]]
    assert len(set(ids)) == 24


@pytest.mark.parametrize("page", ["0", "abc", "99"])
def test_invalid_page_answers_404(parsalink_client: httpx.Client, page: str) -> None:
    """A page that is not a positive number or lies past the end answers 404 Invalid page."""
    response = parsalink_client.get("/opportunities/", params={"page": page})
    assert response.status_code == 404 and response.json() == {"detail": "Invalid page."}


def test_limit_is_clamped_to_100_and_bad_limits_use_the_default(
    parsalink_emulator: ParsaLinkEmulator, parsalink_client: httpx.Client
) -> None:
    """limit=500 returns 100 records; limit=0 or abc falls back to the default of 20."""
    parsalink_emulator.add_opportunities(150, seed=3)
    big = parsalink_client.get("/opportunities/", params={"limit": 500}).json()
    assert len(big["results"]) == 100
    for bad in ("0", "abc"):
        page = parsalink_client.get("/opportunities/", params={"limit": bad}).json()
        assert len(page["results"]) == 20


def test_order_is_created_at_ascending_and_ordering_is_ignored(
    parsalink_client: httpx.Client,
) -> None:
    """Lists come oldest-created first and an undocumented ``ordering`` changes nothing."""
    plain = scan(parsalink_client)
    assert [r["createdAt"] for r in plain] == sorted(r["createdAt"] for r in plain)
    assert scan(parsalink_client, {"ordering": "-updatedAt"}) == plain


def test_pagination_over_1000_records_while_editing(
    parsalink_emulator: ParsaLinkEmulator, parsalink_client: httpx.Client
) -> None:
    """Following next URLs over 1,000+ records sees each once while records are edited."""
    parsalink_emulator.add_opportunities(1000, seed=11)
    expected = set(parsalink_emulator.collections["opportunities"])
    everything = sorted(expected)

    def edit(seen: int) -> None:
        for opp_id in (everything[seen % len(everything)], everything[-seen % len(everything)]):
            response = parsalink_client.patch(f"/opportunities/{opp_id}/", json={"value": seen})
            assert response.status_code == 200

    ids = [r["id"] for r in scan(parsalink_client, between_pages=edit)]
    assert len(ids) == len(set(ids)) == len(expected) > 1000
    assert set(ids) == expected


# -- filters -------------------------------------------------------------------------------------
def stored(emulator: ParsaLinkEmulator) -> list[dict[str, Any]]:
    return list(emulator.collections["opportunities"].values())


def test_stage_filter(
    parsalink_emulator: ParsaLinkEmulator, parsalink_client: httpx.Client
) -> None:
    """stage returns exactly the opportunities in that stage; an unknown stage answers 400."""
    want = {r["id"] for r in stored(parsalink_emulator) if r["stage"] == "proposal"}
    got = {r["id"] for r in scan(parsalink_client, {"stage": "proposal"})}
    assert got == want and want
    bad = parsalink_client.get("/opportunities/", params={"stage": "won"})
    assert bad.status_code == 400 and "stage" in bad.json()


@pytest.mark.parametrize(("param", "collection"), [("accountId", "accounts"),
                                                   ("assignedTo", "users")])  # fmt: skip
def test_reference_filters(
    parsalink_emulator: ParsaLinkEmulator,
    parsalink_client: httpx.Client,
    param: str,
    collection: str,
) -> None:
    """accountId / assignedTo return exactly the matching records; unknown ids answer 400."""
    target = next(iter(parsalink_emulator.collections[collection]))
    want = {r["id"] for r in stored(parsalink_emulator) if r[param] == target}
    assert {r["id"] for r in scan(parsalink_client, {param: target})} == want
    assert parsalink_client.get("/opportunities/", params={param: "x_1"}).status_code == 400


def test_close_date_filters_are_exclusive(
    parsalink_emulator: ParsaLinkEmulator, parsalink_client: httpx.Client
) -> None:
    """closeDateAfter / closeDateBefore exclude the boundary date itself."""
    pivot = sorted(r["closeDate"] for r in stored(parsalink_emulator))[10]
    after = {r["id"] for r in scan(parsalink_client, {"closeDateAfter": pivot})}
    before = {r["id"] for r in scan(parsalink_client, {"closeDateBefore": pivot})}
    records = stored(parsalink_emulator)
    assert after == {r["id"] for r in records if r["closeDate"] > pivot}
    assert before == {r["id"] for r in records if r["closeDate"] < pivot}
    with_time = {r["id"] for r in scan(parsalink_client, {"closeDateAfter": f"{pivot}T23:00:00Z"})}
    assert with_time == after
    assert parsalink_client.get("/opportunities/", params={"closeDateAfter": "soon"}).json() == {
        "closeDateAfter": ["Enter a valid date."]
    }


def test_value_filters_are_inclusive(
    parsalink_emulator: ParsaLinkEmulator, parsalink_client: httpx.Client
) -> None:
    """valueMin / valueMax include the bound; a non-number answers 400."""
    values = sorted(r["value"] for r in stored(parsalink_emulator))
    low, high = values[5], values[20]
    got = {r["id"] for r in scan(parsalink_client, {"valueMin": low, "valueMax": high})}
    want = {r["id"] for r in stored(parsalink_emulator) if low <= r["value"] <= high}
    assert got == want
    assert parsalink_client.get("/opportunities/", params={"valueMin": "lots"}).status_code == 400


def test_search_filter_matches_name_terms(parsalink_client: httpx.Client) -> None:
    """search matches every term of the name case-insensitively."""
    create(parsalink_client, name="Zebra Rollout Phase Two")
    assert [r["name"] for r in scan(parsalink_client, {"search": "zebra two"})] == [
        "Zebra Rollout Phase Two"
    ]
    assert scan(parsalink_client, {"search": "zebra three"}) == []


# -- accounts and users --------------------------------------------------------------------------
def test_accounts_list_search_and_create(parsalink_client: httpx.Client) -> None:
    """Accounts list the reference companies, search by name, and POST answers 201 or 422."""
    accounts = parsalink_client.get("/accounts/", params={"limit": 100}).json()
    assert {a["name"] for a in accounts["results"]} == set(reference.COMPANIES)
    created = parsalink_client.post("/accounts/", json={"name": "TechCorp Inc"})
    assert created.status_code == 201 and ULID_ID.match(created.json()["id"])
    opp = create(parsalink_client, accountId=created.json()["id"])
    assert opp["accountName"] == "TechCorp Inc"
    invalid = parsalink_client.post("/accounts/", json={})
    assert invalid.status_code == 422 and invalid.json()["name"] == ["This field is required."]


def test_users_carry_emails(parsalink_client: httpx.Client) -> None:
    """GET /users/ lists the reference users (and the demo user) with their e-mails."""
    users = parsalink_client.get("/users/").json()["results"]
    emails = {u["email"] for u in users}
    assert emails == {e for _, e in reference.USERS} | {DEMO_EMAIL}
    assert all(ULID_ID.match(u["id"]) for u in users)


def test_seed_is_deterministic() -> None:
    """The same seed gives the same ids for users, accounts and opportunities."""
    one, two = (
        ParsaLinkEmulator(seed=4, seed_opportunities=10),
        ParsaLinkEmulator(seed=4, seed_opportunities=10),
    )
    for name in ("users", "accounts", "opportunities"):
        assert set(one.collections[name]) == set(two.collections[name])


# -- rate limit and faults -------------------------------------------------------------------
def test_rate_limit_headers_on_every_answer(parsalink_client: httpx.Client) -> None:
    """With the documented limit on, answers carry X-RateLimit-Limit/Remaining/Reset (Unix s)."""
    parsalink_client.post(control(parsalink_client, "rate_limit"), json={"enabled": True})
    response = parsalink_client.get("/users/")
    assert response.headers["x-ratelimit-limit"] == "100"
    assert response.headers["x-ratelimit-remaining"] == "99"
    reset = int(response.headers["x-ratelimit-reset"])
    assert time.time() <= reset <= time.time() + 61


def test_throttled_answer_is_429_with_headers(parsalink_client: httpx.Client) -> None:
    """Past the bucket, ParsaLink answers 429 {"detail": ...} with X-RateLimit-* headers."""
    parsalink_client.post(
        control(parsalink_client, "rate_limit"), json={"enabled": True, "rate": 5, "burst": 10}
    )
    statuses = [parsalink_client.get("/users/").status_code for _ in range(12)]
    assert statuses[:10] == [200] * 10 and statuses[-1] == 429
    limited = parsalink_client.get("/users/")
    assert limited.status_code == 429
    assert limited.json() == {"detail": "Request was throttled."}
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["x-ratelimit-reset"]) >= int(time.time())
    assert "retry-after" not in limited.headers


def test_default_limit_is_100_per_minute() -> None:
    """The documented Starter-plan limit (100 req/min) is the default."""
    emulator = ParsaLinkEmulator(rate_limited=True)
    assert emulator.rate_limit.burst == 100 and emulator.rate_limit.rate * 60 == pytest.approx(100)


def test_error_and_timeout_faults(parsalink_client: httpx.Client) -> None:
    """error_rate answers an injected status; timeout_rate raises httpx.ReadTimeout."""
    parsalink_client.post(control(parsalink_client, "faults"),
                          json={"error_rate": 1.0, "statuses": [500]})  # fmt: skip
    assert parsalink_client.get("/users/").status_code == 500
    parsalink_client.post(control(parsalink_client, "faults"), json={"timeout_rate": 1.0})
    with pytest.raises(httpx.ReadTimeout):
        parsalink_client.get("/users/")


def test_fail_after_commit_applies_the_write(
    parsalink_emulator: ParsaLinkEmulator, parsalink_client: httpx.Client
) -> None:
    """fail_after_commit answers 502 or drops the call, yet each PATCH was applied."""
    opp = create(parsalink_client)
    parsalink_client.post(control(parsalink_client, "faults"),
                          json={"fail_after_commit_rate": 1.0})  # fmt: skip
    for value in range(1, 7):
        try:
            status = parsalink_client.patch(
                f"/opportunities/{opp['id']}/", json={"value": value}
            ).status_code
            assert status == 502
        except httpx.ReadTimeout:
            pass
        assert parsalink_emulator.collections["opportunities"][opp["id"]]["value"] == value


# -- control API ---------------------------------------------------------------------------------
def test_reset_and_seed(
    parsalink_emulator: ParsaLinkEmulator, parsalink_client: httpx.Client
) -> None:
    """reset restores the started data; seed adds N more with fresh ids."""
    started = set(parsalink_emulator.collections["opportunities"])
    create(parsalink_client)
    parsalink_client.post(control(parsalink_client, "seed"), json={"opportunities": 15})
    parsalink_client.post(control(parsalink_client, "seed"), json={"opportunities": 15})
    assert parsalink_client.get("/opportunities/").json()["count"] == len(started) + 31
    parsalink_client.post(control(parsalink_client, "reset"))
    assert set(parsalink_emulator.collections["opportunities"]) == started


def test_requests_log(parsalink_client: httpx.Client) -> None:
    """The request log lists vendor calls with status and query, and counts them."""
    parsalink_client.get("/opportunities/", params={"stage": "proposal"})
    parsalink_client.get("/opportunities/nope/")
    log = parsalink_client.get(control(parsalink_client, "requests")).json()
    assert [(r["path"], r["status"]) for r in log["requests"]] == [
        ("/api/opportunities/", 200),
        ("/api/opportunities/nope/", 404),
    ]
    assert log["requests"][0]["query"] == "stage=proposal"
    assert log["counts"]["by_method"] == {"GET": 2}


def test_control_set_changes_read_only_fields(parsalink_client: httpx.Client) -> None:
    """POST /_emulator/set writes read-only fields such as createdAt."""
    opp = create(parsalink_client)
    fields = {"createdAt": "2020-01-01T00:00:00Z"}
    response = parsalink_client.post(
        control(parsalink_client, "set"),
        json={"collection": "opportunities", "id": opp["id"], "fields": fields},
    )
    assert response.json() == {"ok": True}
    assert parsalink_client.get(f"/opportunities/{opp['id']}/").json()["createdAt"] == (
        "2020-01-01T00:00:00Z"
    )
