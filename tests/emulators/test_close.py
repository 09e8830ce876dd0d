"""Contract tests of the Close emulator against Close's documented behaviour (vendors.md §2)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.emulators.close import API_KEY, MAX_SKIP, CloseEmulator

NAME_CF = "cf_OppName0000000000000000000000000000000001"
CRMSYNC_CF = "cf_CrmsyncId00000000000000000000000000000002"
TAGS_CF = "cf_Tags00000000000000000000000000000000000003"


# -- helpers ---------------------------------------------------------------------------------
def statuses(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {s["label"]: s for s in client.get("/status/opportunity/").json()["data"]}


def pipelines(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in client.get("/pipeline/").json()["data"]}


def lead_id(client: httpx.Client, name: str = "Acme Corp") -> str:
    leads = client.get("/lead/", params={"query": f'name:"{name}"'}).json()["data"]
    return str(next(ld["id"] for ld in leads if ld["name"] == name))


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"lead_id": lead_id(client), **fields}
    response = client.post("/opportunity/", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def list_all(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    skip = 0
    while True:
        page = client.get("/opportunity/", params={**params, "_skip": skip}).json()
        out += page["data"]
        if not page["has_more"]:
            return out
        skip += len(page["data"])


def control(client: httpx.Client, name: str, json: Any = None) -> httpx.Response:
    """POST to the control API, which lives outside the vendor prefix."""
    return client.post(f"http://close.test/_emulator/{name}", json=json)


def ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


@pytest.fixture
def big_close() -> CloseEmulator:
    """An emulator holding 1,050 opportunities."""
    return CloseEmulator(seed=3, seed_opportunities=1050)


@pytest.fixture
def big_client(big_close: CloseEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=big_close.transport(), base_url="http://close.test/api/v1", auth=(API_KEY, "")
    ) as client:
        yield client


# -- auth ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"wrong-key:").decode()},
        {"Authorization": "Basic " + base64.b64encode(f"{API_KEY}:secret".encode()).decode()},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Token " + API_KEY},
    ],
    ids=["missing", "wrong-key", "non-empty-password", "wrong-bearer", "other-scheme"],
)
def test_auth_failures_answer_401_with_error_body(
    close_emulator: CloseEmulator, headers: dict[str, str]
) -> None:
    """Requests without the API key as Basic username (empty password) or Bearer get 401."""
    with httpx.Client(transport=close_emulator.transport(), base_url="http://c/api/v1") as c:
        response = c.get("/opportunity/", headers=headers)
    assert response.status_code == 401
    assert isinstance(response.json()["error"], str)


def test_bearer_key_is_accepted(close_emulator: CloseEmulator) -> None:
    """``Authorization: Bearer <key>`` authenticates like Basic does."""
    with httpx.Client(transport=close_emulator.transport(), base_url="http://c/api/v1") as c:
        response = c.get("/me/", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200
    assert response.json()["email"] == "john.davis@example.com"


def test_control_api_needs_no_auth(close_emulator: CloseEmulator) -> None:
    """``/_emulator/`` lives outside the vendor's auth."""
    with httpx.Client(transport=close_emulator.transport(), base_url="http://c") as c:
        assert c.get("/_emulator/requests").status_code == 200


# -- CRUD ------------------------------------------------------------------------------------
def test_crud_round_trip(close_client: httpx.Client) -> None:
    """Create, read, update and delete an opportunity; delete answers 200 ``{}`` then 404."""
    created = create(close_client, value=300000, confidence=75, note="hello")
    assert created["id"].startswith("oppo_") and len(created["id"]) == 48
    assert created["value_formatted"] == "$3,000" and created["value_currency"] == "USD"
    got = close_client.get(f"/opportunity/{created['id']}/").json()
    assert got == created
    updated = close_client.put(f"/opportunity/{created['id']}/", json={"value": 50000}).json()
    assert updated["value"] == 50000 and updated["value_formatted"] == "$500"
    deleted = close_client.delete(f"/opportunity/{created['id']}/")
    assert (deleted.status_code, deleted.json()) == (200, {})
    missing = close_client.get(f"/opportunity/{created['id']}/")
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["error"]


def test_put_acts_as_patch(close_client: httpx.Client) -> None:
    """A PUT changes only the fields it names."""
    created = create(close_client, value=100000, confidence=40, note="keep me")
    updated = close_client.put(f"/opportunity/{created['id']}/", json={"confidence": 60}).json()
    unchanged = {"value", "note", "status_id", "lead_id", "user_id", "value_period"}
    assert updated["confidence"] == 60
    assert {k: updated[k] for k in unchanged} == {k: created[k] for k in unchanged}


def test_date_updated_is_microseconds_utc_and_strictly_later_on_every_write(
    close_client: httpx.Client,
) -> None:
    """Every write stamps ``date_updated`` later than the last, formatted ``…ffffff+00:00``."""
    opp = create(close_client)
    stamps = [opp["date_updated"]]
    for confidence in (10, 20, 30):
        url = f"/opportunity/{opp['id']}/"
        stamps.append(close_client.put(url, json={"confidence": confidence}).json()["date_updated"])
    assert all(len(s) == 32 and s.endswith("+00:00") and s[19] == "." for s in stamps)
    assert [ts(s) for s in stamps] == sorted({ts(s) for s in stamps})


def test_derived_values_follow_value_period_and_confidence(close_client: httpx.Client) -> None:
    """Monthly values are ×12 annualized; expected values are value × confidence / 100."""
    opp = create(close_client, value=123456, value_period="monthly", confidence=25)
    assert opp["value_formatted"] == "$1,234.56"
    assert opp["expected_value"] == 30864
    assert opp["annualized_value"] == 123456 * 12
    assert opp["annualized_expected_value"] == 123456 * 12 // 4


# -- pagination ------------------------------------------------------------------------------
def test_skip_paging_reaches_the_end_without_misses_or_repeats_under_updates(
    big_client: httpx.Client,
) -> None:
    """``_skip`` paging (default order) sees every record once while records are modified."""
    everyone = {o["id"] for o in list_all(big_client, _limit=100, _fields="id")}
    assert len(everyone) == 1050
    seen: list[str] = []
    skip, page_no = 0, 0
    while True:
        page = big_client.get("/opportunity/", params={"_skip": skip, "_limit": 100}).json()
        seen += [o["id"] for o in page["data"]]
        for victim in list(everyone)[page_no * 7 : page_no * 7 + 7]:
            big_client.put(f"/opportunity/{victim}/", json={"confidence": 55})
        page_no += 1
        if not page["has_more"]:
            break
        skip += 100
    assert len(seen) == len(set(seen)) == 1050
    assert set(seen) == everyone


def test_date_updated_rewindowing_sees_every_record_and_ends_on_latest_versions(
    big_client: httpx.Client,
) -> None:
    """Re-windowing on ``date_updated__gte`` + ``_order_by=date_updated`` misses nothing under
    concurrent updates, and the last version seen of each record is its current one."""
    cursor = "2000-01-01T00:00:00+00:00"
    latest: dict[str, str] = {}
    pages = 0
    ids = sorted(o["id"] for o in list_all(big_client, _limit=100, _fields="id"))
    while True:
        params: dict[str, Any] = {
            "date_updated__gte": cursor,
            "_order_by": "date_updated",
            "_limit": 100,
        }
        page = big_client.get("/opportunity/", params=params).json()
        for opp in page["data"]:
            latest[opp["id"]] = opp["date_updated"]
        if pages < 5:  # a concurrent writer touches records already seen and not yet seen
            for victim in ids[pages * 50 : pages * 50 + 3] + ids[-(pages + 1) :]:
                big_client.put(f"/opportunity/{victim}/", json={"note": f"touch {pages}"})
        pages += 1
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["date_updated"]
    assert set(latest) == set(ids)
    current = {o["id"]: o["date_updated"] for o in list_all(big_client, _fields="id,date_updated")}
    assert latest == current


def test_limit_default_and_has_more(close_client: httpx.Client) -> None:
    """``_limit`` defaults to 100, ``has_more`` and ``total_results`` describe the rest."""
    page = close_client.get("/opportunity/", params={"_limit": 7}).json()
    assert len(page["data"]) == 7 and page["has_more"] is True and page["total_results"] == 20
    last = close_client.get("/opportunity/", params={"_limit": 7, "_skip": 14}).json()
    assert len(last["data"]) == 6 and last["has_more"] is False
    assert len(close_client.get("/opportunity/").json()["data"]) == 20


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"_limit": 101}, "_limit"),
        ({"_skip": MAX_SKIP + 1}, "_skip"),
        ({"_limit": -1}, "_limit"),
        ({"_skip": "abc"}, "_skip"),
    ],
)
def test_limit_and_skip_beyond_maximum_answer_400(
    close_client: httpx.Client, params: dict[str, Any], field: str
) -> None:
    """``_limit`` above 100 and ``_skip`` above 10,000 (or not a number) are 400s."""
    response = close_client.get("/opportunity/", params=params)
    assert response.status_code == 400
    body = response.json()
    assert field in body["errors"][0] and body["field-errors"] == {}


def test_maximum_limit_and_skip_are_accepted(close_client: httpx.Client) -> None:
    """The maxima themselves are valid."""
    response = close_client.get("/opportunity/", params={"_limit": 100, "_skip": MAX_SKIP})
    assert response.status_code == 200 and response.json()["data"] == []


# -- filters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["date_updated", "date_created"])
def test_date_range_filters_are_inclusive_or_exclusive_by_suffix(
    close_client: httpx.Client, field: str
) -> None:
    """``__gte`` / ``__lte`` include the bound, ``__gt`` / ``__lt`` exclude it."""
    rows = list_all(close_client, _order_by=field)
    pivot = rows[10][field]
    ids = {
        op: {o["id"] for o in list_all(close_client, **{f"{field}__{op}": pivot})}
        for op in ("gt", "gte", "lt", "lte")
    }
    assert ids["gte"] == {o["id"] for o in rows[10:]}
    assert ids["gt"] == {o["id"] for o in rows[11:]}
    assert ids["lt"] == {o["id"] for o in rows[:10]}
    assert ids["lte"] == {o["id"] for o in rows[:11]}


def test_date_filter_accepts_a_plain_date_and_refuses_garbage(close_client: httpx.Client) -> None:
    """A date bound means midnight UTC; an unparseable one is a 400 naming the parameter."""
    assert len(list_all(close_client, date_updated__gte="2000-01-01")) == 20
    assert list_all(close_client, date_updated__lt="2000-01-01") == []
    bad = close_client.get("/opportunity/", params={"date_updated__gt": "yesterday"})
    assert bad.status_code == 400 and "date_updated__gt" in bad.json()["field-errors"]


@pytest.mark.parametrize(
    ("param", "field", "many"),
    [
        ("lead_id", "lead_id", False),
        ("status_id", "status_id", False),
        ("status_type", "status_type", False),
        ("user_id", "user_id", False),
        ("value_period", "value_period", False),
        ("status_label", "status_label", False),
        ("status_type__in", "status_type", True),
        ("user_id__in", "user_id", True),
        ("status_id__in", "status_id", True),
    ],
)
def test_equality_and_in_filters(
    close_client: httpx.Client, param: str, field: str, many: bool
) -> None:
    """Each equality filter (and its ``__in`` form) returns exactly the matching records."""
    everything = list_all(close_client)
    values = sorted({o[field] for o in everything})
    wanted = set(values[:2]) if many else {values[0]}
    got = list_all(close_client, **{param: ",".join(sorted(wanted))})
    assert got and {o["id"] for o in got} == {o["id"] for o in everything if o[field] in wanted}


def test_invalid_status_type_is_refused(close_client: httpx.Client) -> None:
    """``status_type`` must be active, won or lost."""
    response = close_client.get("/opportunity/", params={"status_type": "open"})
    assert response.status_code == 400 and "status_type" in response.json()["field-errors"]


@pytest.mark.parametrize(
    "field",
    [
        "date_won",
        "date_updated",
        "date_created",
        "confidence",
        "user_name",
        "value",
        "annualized_value",
        "annualized_expected_value",
    ],
)
@pytest.mark.parametrize("descending", [False, True])
def test_order_by_documented_fields(
    close_client: httpx.Client, field: str, descending: bool
) -> None:
    """``_order_by`` sorts on each documented field, ``-`` descending, ties broken by id."""
    key = f"-{field}" if descending else field
    rows = list_all(close_client, _order_by=key, _limit=6)
    present = [(o[field], o["id"]) for o in rows if o[field] is not None]
    nulls = [o for o in rows if o[field] is None]
    assert present == sorted(present, reverse=descending)
    assert len(present) + len(nulls) == 20
    if nulls:  # PostgreSQL's placement: nulls last ascending, first descending
        null_at = [i for i, o in enumerate(rows) if o[field] is None]
        assert null_at == (list(range(len(nulls))) if descending else list(range(len(present), 20)))


def test_order_by_unknown_field_is_refused(close_client: httpx.Client) -> None:
    """Only the documented ``_order_by`` fields are accepted."""
    response = close_client.get("/opportunity/", params={"_order_by": "note"})
    assert response.status_code == 400 and "_order_by" in response.json()["field-errors"]


def test_fields_projects_the_answer(close_client: httpx.Client) -> None:
    """``_fields`` returns only the named fields, on lists and on single objects."""
    page = close_client.get("/opportunity/", params={"_fields": "id,date_updated"}).json()
    assert all(set(o) == {"id", "date_updated"} for o in page["data"])
    one = page["data"][0]["id"]
    got = close_client.get(f"/opportunity/{one}/", params={"_fields": f"id,custom.{NAME_CF}"})
    assert set(got.json()) == {"id", f"custom.{NAME_CF}"}


def test_list_aggregates_cover_all_matches(close_client: httpx.Client) -> None:
    """The value aggregates sum over every match, regardless of ``_limit``."""
    rows = list_all(close_client)
    page = close_client.get("/opportunity/", params={"_limit": 1}).json()
    for period in ("one_time", "monthly", "annual"):
        of = [o for o in rows if o["value_period"] == period]
        assert page["count_by_value_period"][period] == len(of)
        assert page[f"total_value_{period}"] == sum(o["value"] for o in of)
        assert page[f"expected_value_{period}"] == sum(o["expected_value"] for o in of)
    assert page["total_value_annualized"] == sum(o["annualized_value"] for o in rows)
    assert page["expected_value_annualized"] == sum(o["annualized_expected_value"] for o in rows)
    assert page["total_results"] == 20


@pytest.mark.parametrize("param", ["query", "_group_by", "lead_query", "bogus"])
def test_unknown_or_unimplemented_list_parameters_are_refused(
    close_client: httpx.Client, param: str
) -> None:
    """A filter the emulator would otherwise ignore is a 400, never a silently wrong answer."""
    response = close_client.get("/opportunity/", params={param: "x"})
    assert response.status_code == 400 and param in response.json()["errors"][0]


# -- validation ------------------------------------------------------------------------------
def test_status_and_pipeline_must_agree(close_client: httpx.Client) -> None:
    """A status from another pipeline than ``pipeline_id`` is a 400 on ``status_id``."""
    renewals = pipelines(close_client)["Renewals"]
    won = statuses(close_client)["Won"]
    response = close_client.post(
        "/opportunity/",
        json={
            "lead_id": lead_id(close_client),
            "pipeline_id": renewals["id"],
            "status_id": won["id"],
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [] and set(body["field-errors"]) == {"status_id"}


def test_pipeline_alone_picks_its_first_status_and_nothing_picks_the_org_default(
    close_client: httpx.Client,
) -> None:
    """Only ``pipeline_id`` → that pipeline's first status; neither → the org's first status."""
    renewals = pipelines(close_client)["Renewals"]
    in_renewals = create(close_client, pipeline_id=renewals["id"])
    assert in_renewals["status_id"] == renewals["statuses"][0]["id"]
    assert in_renewals["pipeline_name"] == "Renewals"
    default = create(close_client)
    assert default["status_label"] == "Prospecting" and default["pipeline_name"] == "Sales"


def test_unknown_pipeline_is_refused(close_client: httpx.Client) -> None:
    """A pipeline that does not exist is a 400."""
    response = close_client.post("/opportunity/", json={"pipeline_id": "pipe_nope"})
    assert response.status_code == 400 and "pipeline_id" in response.json()["field-errors"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Deal"}, "name"),
        ({"date_updated": "2024-01-01T00:00:00+00:00"}, "date_updated"),
        ({"status_label": "Won"}, "status_label"),
        ({"custom_fields": {}}, "custom_fields"),
        ({f"custom.{NAME_CF}.add": "x"}, f"custom.{NAME_CF}.add"),
        ({"custom.Opportunity Name": "x"}, "custom.Opportunity Name"),
        ({"custom.cf_doesnotexist": "x"}, "custom.cf_doesnotexist"),
        ({"confidence": 101}, "confidence"),
        ({"confidence": "50"}, "confidence"),
        ({"value": 10.5}, "value"),
        ({"value": True}, "value"),
        ({"value_period": "weekly"}, "value_period"),
        ({"user_id": "user_nope"}, "user_id"),
        ({"lead_id": "lead_nope"}, "lead_id"),
        ({"contact_id": "cont_nope"}, "contact_id"),
        ({"date_won": "soon"}, "date_won"),
        ({"status_id": "stat_nope"}, "status_id"),
        ({f"custom.{TAGS_CF}": "not-a-list"}, f"custom.{TAGS_CF}"),
        ({f"custom.{NAME_CF}": 5}, f"custom.{NAME_CF}"),
    ],
)
def test_invalid_create_bodies_are_400_with_field_errors(
    close_client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """Unknown keys, bad custom fields and bad values are 400 ``field-errors``, nothing written."""
    before = close_client.get("/opportunity/").json()["total_results"]
    leads_before = len(close_client.get("/lead/").json()["data"])
    response = close_client.post("/opportunity/", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["field-errors"]
    assert close_client.get("/opportunity/").json()["total_results"] == before
    assert len(close_client.get("/lead/").json()["data"]) == leads_before


def test_invalid_update_changes_nothing(close_client: httpx.Client) -> None:
    """A refused PUT leaves the record and its ``date_updated`` untouched."""
    opp = create(close_client, confidence=10)
    response = close_client.put(f"/opportunity/{opp['id']}/", json={"confidence": 5, "x": 1})
    assert response.status_code == 400 and "x" in response.json()["field-errors"]
    assert close_client.get(f"/opportunity/{opp['id']}/").json() == opp


def test_body_must_be_json(close_client: httpx.Client) -> None:
    """A non-JSON content type is 415; malformed JSON is 400."""
    assert close_client.post("/opportunity/", content=b"x=1").status_code == 415
    bad = close_client.post(
        "/opportunity/", content=b"{", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["errors"]


def test_custom_fields_set_add_remove_and_unset(close_client: httpx.Client) -> None:
    """``custom.cf_…`` sets, ``.add`` / ``.remove`` edit multi-value fields, null unsets."""
    opp = create(close_client, **{f"custom.{NAME_CF}": "Big deal", f"custom.{TAGS_CF}": ["a"]})
    assert opp[f"custom.{NAME_CF}"] == "Big deal" and opp[f"custom.{TAGS_CF}"] == ["a"]
    url = f"/opportunity/{opp['id']}/"
    opp = close_client.put(url, json={f"custom.{TAGS_CF}.add": "b"}).json()
    assert opp[f"custom.{TAGS_CF}"] == ["a", "b"]
    opp = close_client.put(url, json={f"custom.{TAGS_CF}.remove": "a"}).json()
    assert opp[f"custom.{TAGS_CF}"] == ["b"]
    opp = close_client.put(url, json={f"custom.{NAME_CF}": None}).json()
    assert f"custom.{NAME_CF}" not in opp and opp[f"custom.{TAGS_CF}"] == ["b"]
    refused = close_client.put(url, json={f"custom.{NAME_CF}.add": "x"})
    assert refused.status_code == 400


def test_create_without_lead_id_makes_an_untitled_lead(close_client: httpx.Client) -> None:
    """Seed 004: no ``lead_id`` → Close creates a new lead, shown as "Untitled"."""
    leads_before = {ld["id"] for ld in close_client.get("/lead/").json()["data"]}
    opp = close_client.post("/opportunity/", json={"value": 1000}).json()
    assert opp["lead_id"] not in leads_before and opp["lead_name"] is None
    lead = close_client.get(f"/lead/{opp['lead_id']}/").json()
    assert lead["display_name"] == "Untitled" and lead["name"] is None
    assert [o["id"] for o in lead["opportunities"]] == [opp["id"]]


def test_date_won_is_set_today_when_status_becomes_won_and_kept_on_revert(
    close_client: httpx.Client,
) -> None:
    """Moving to a won-type status sets ``date_won`` to today; reverting does not clear it."""
    known = statuses(close_client)
    opp = create(close_client)
    assert opp["date_won"] is None
    url = f"/opportunity/{opp['id']}/"
    won = close_client.put(url, json={"status_id": known["Won"]["id"]}).json()
    assert won["date_won"] == dt.datetime.now(dt.UTC).date().isoformat()
    back = close_client.put(url, json={"status_id": known["Proposal"]["id"]}).json()
    assert back["date_won"] == won["date_won"] and back["status_type"] == "active"


def test_date_won_given_or_already_set_is_not_overwritten(close_client: httpx.Client) -> None:
    """An explicit or existing ``date_won`` survives the move to won; datetimes become dates."""
    known = statuses(close_client)
    given = create(close_client, status_id=known["Won"]["id"], date_won="2025-03-04T10:00:00")
    assert given["date_won"] == "2025-03-04"
    planned = create(close_client, date_won="2026-12-31")
    won = close_client.put(
        f"/opportunity/{planned['id']}/", json={"status_id": known["Won"]["id"]}
    ).json()
    assert won["date_won"] == "2026-12-31"


def test_date_won_today_honours_x_tz_offset(close_client: httpx.Client) -> None:
    """Today is the caller's today when ``x-tz-offset`` is sent."""
    known = statuses(close_client)
    body = {"lead_id": lead_id(close_client), "status_id": known["Won"]["id"]}
    far_east = close_client.post("/opportunity/", json=body, headers={"x-tz-offset": "14"})
    expected = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date().isoformat()
    assert far_east.json()["date_won"] == expected


def test_date_lost_follows_lost_status(close_client: httpx.Client) -> None:
    """``date_lost`` is stamped on entering a lost status and cleared on leaving it."""
    known = statuses(close_client)
    opp = create(close_client)
    url = f"/opportunity/{opp['id']}/"
    lost = close_client.put(url, json={"status_id": known["Lost"]["id"]}).json()
    assert lost["date_lost"] is not None
    active = close_client.put(url, json={"status_id": known["Proposal"]["id"]}).json()
    assert active["date_lost"] is None


# -- event log -------------------------------------------------------------------------------
def test_every_write_is_in_the_event_log_including_deletes(close_client: httpx.Client) -> None:
    """Create, update and delete each log an opportunity event; deletes carry ``data: null``."""
    opp = create(close_client, confidence=10)
    close_client.put(f"/opportunity/{opp['id']}/", json={"confidence": 20})
    close_client.delete(f"/opportunity/{opp['id']}/")
    events = close_client.get(
        "/event/", params={"object_type": "opportunity", "object_id": opp["id"]}
    ).json()["data"]
    assert [e["action"] for e in events] == ["deleted", "updated", "created"]
    deleted, updated, created = events
    assert deleted["data"] is None and deleted["previous_data"]["id"] == opp["id"]
    assert deleted["lead_id"] == opp["lead_id"] and deleted["object_type"] == "opportunity"
    assert {"confidence", "date_updated"} <= set(updated["changed_fields"])
    assert updated["previous_data"]["confidence"] == 10 and updated["data"]["confidence"] == 20
    assert created["data"]["id"] == opp["id"] and created["changed_fields"] == []
    only_deletes = close_client.get(
        "/event/", params={"object_type": "opportunity", "action": "deleted"}
    ).json()["data"]
    assert [e["object_id"] for e in only_deletes] == [opp["id"]]


def test_event_cursor_pages_are_latest_first_and_capped_at_50(close_client: httpx.Client) -> None:
    """``_cursor`` walks 120 events latest first in pages of at most 50, no repeats."""
    opp = create(close_client)
    for i in range(119):
        close_client.put(f"/opportunity/{opp['id']}/", json={"confidence": i % 100})
    params: dict[str, Any] = {"object_type": "opportunity", "object_id": opp["id"], "_limit": 80}
    seen: list[dict[str, Any]] = []
    sizes = []
    while True:
        page = close_client.get("/event/", params=params).json()
        seen += page["data"]
        sizes.append(len(page["data"]))
        if page["cursor_next"] is None:
            break
        params["_cursor"] = page["cursor_next"]
    assert sizes == [50, 50, 20]
    assert len({e["id"] for e in seen}) == 120
    stamps = [e["date_updated"] for e in seen]
    assert stamps == sorted(stamps, reverse=True)
    back = close_client.get("/event/", params={**params, "_cursor": page["cursor_previous"]})
    assert [e["id"] for e in back.json()["data"]] == [e["id"] for e in seen[50:100]]


def test_event_filters_by_date_updated(close_client: httpx.Client) -> None:
    """``date_updated__gt`` on the event log returns only later events."""
    first = create(close_client)
    second = create(close_client)
    newer = close_client.get(
        "/event/",
        params={
            "object_type": "opportunity",
            "action": "created",
            "date_updated__gt": first["date_updated"],
        },
    ).json()["data"]
    assert [e["object_id"] for e in newer] == [second["id"]]


@pytest.mark.parametrize(
    "params",
    [{"object_type": "opportunity"}, {"action": "deleted"}, {"_skip": 10}, {"_cursor": "zzz"}],
)
def test_event_log_refuses_unsupported_queries(
    close_client: httpx.Client, params: dict[str, str]
) -> None:
    """Filter combinations the docs do not list, ``_skip`` and bad cursors are 400s."""
    assert close_client.get("/event/", params=params).status_code == 400


def test_events_expire_after_30_days(
    close_emulator: CloseEmulator, close_client: httpx.Client
) -> None:
    """The event log keeps 30 days."""
    create(close_client)
    query = {"object_type": "opportunity", "action": "created"}
    assert len(close_client.get("/event/", params=query).json()["data"]) == 1
    close_emulator.clock.advance(31 * 86_400)
    assert close_client.get("/event/", params=query).json()["data"] == []


# -- supporting resources ----------------------------------------------------------------------
def test_statuses_pipelines_users_and_custom_fields(close_client: httpx.Client) -> None:
    """Reference data is served with Close's id prefixes and the reference names."""
    known = statuses(close_client)
    assert list(known)[:6] == [
        "Prospecting",
        "Qualification",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
    ]
    assert all(s["id"].startswith("stat_") for s in known.values())
    sales = pipelines(close_client)["Sales"]
    assert sales["id"].startswith("pipe_") and [s["label"] for s in sales["statuses"]][-1] == "Lost"
    users = close_client.get("/user/").json()["data"]
    assert {u["email"] for u in users} >= {"john.davis@example.com", "wei.chen@example.com"}
    assert all(u["id"].startswith("user_") and u["first_name"] for u in users)
    fields = close_client.get("/custom_field/opportunity/").json()["data"]
    assert {f["id"]: f["name"] for f in fields}[NAME_CF] == "Opportunity Name"
    assert {f["id"] for f in fields} == {NAME_CF, CRMSYNC_CF, TAGS_CF}


def test_lead_search_by_name_and_create(close_client: httpx.Client) -> None:
    """``query=name:"…"`` is a phrase match; POST /lead/ creates a findable lead."""
    found = close_client.get("/lead/", params={"query": 'name:"acme corp"'}).json()["data"]
    assert [ld["name"] for ld in found] == ["Acme Corp"]
    created = close_client.post("/lead/", json={"name": "Acme Corp Europe"}).json()
    assert created["id"].startswith("lead_")
    found = close_client.get("/lead/", params={"query": 'name:"Acme Corp"'}).json()["data"]
    assert {ld["name"] for ld in found} == {"Acme Corp", "Acme Corp Europe"}
    refused = close_client.post("/lead/", json={"name": "X", "colour": "red"})
    assert refused.status_code == 400 and "colour" in refused.json()["field-errors"]


def test_reference_ids_are_deterministic_per_seed() -> None:
    """The same seed gives the same ids; another seed gives others."""
    a, b, c = (
        CloseEmulator(seed=5, seed_opportunities=3),
        CloseEmulator(seed=5, seed_opportunities=3),
        CloseEmulator(seed=6),
    )
    assert a.collections["status"].keys() == b.collections["status"].keys()
    assert a.collections["opportunity"].keys() == b.collections["opportunity"].keys()
    assert a.collections["status"].keys() != c.collections["status"].keys()


# -- rate limits -------------------------------------------------------------------------------
def test_rate_limit_header_and_429_shape(
    close_emulator: CloseEmulator, close_client: httpx.Client
) -> None:
    """When enabled, answers carry ``ratelimit``; beyond the burst Close answers 429 with
    ``error.rate_reset`` and ``Retry-After``."""
    control(close_client, "rate_limit", json={"enabled": True, "rate": 0.5, "burst": 3})
    answers = [close_client.get("/opportunity/", params={"_limit": 1}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit"].startswith("limit=3, remaining=2, reset=")
    refused = answers[-1]
    assert refused.json()["error"]["rate_reset"] > 0
    assert isinstance(refused.json()["error"]["rate_reset"], float)
    assert int(refused.headers["retry-after"]) >= 1
    assert "remaining=0" in refused.headers["ratelimit"]


def test_rate_limits_are_per_endpoint_group(close_client: httpx.Client) -> None:
    """Exhausting opportunity reads leaves writes and the event log their own budget."""
    control(close_client, "rate_limit", json={"enabled": True, "rate": 0.5, "burst": 2})
    for _ in range(2):
        close_client.get("/opportunity/")
    assert close_client.get("/opportunity/").status_code == 429
    assert close_client.get("/event/").status_code == 200
    assert close_client.post("/opportunity/", json={}).status_code == 200


def test_default_rate_limit_is_20_per_second(close_client: httpx.Client) -> None:
    """Enabled without a rate, the limit is the documented 20 requests/s per group."""
    control(close_client, "rate_limit", json={"enabled": True})
    assert close_client.get("/user/").headers["ratelimit"].startswith("limit=20, remaining=19")


# -- faults and control API --------------------------------------------------------------------
def test_error_rate_fault_writes_nothing(close_client: httpx.Client) -> None:
    """An injected 5xx before the handler leaves the store unchanged."""
    control(close_client, "faults", json={"error_rate": 1.0, "statuses": [503]})
    assert close_client.post("/opportunity/", json={}).status_code == 503
    control(close_client, "faults", json={})
    assert close_client.get("/opportunity/").json()["total_results"] == 20


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_fail_after_commit_applies_the_write(close_client: httpx.Client, method: str) -> None:
    """With fail-after-commit the client sees 502 or a timeout, but the write happened."""
    target = close_client.get("/opportunity/", params={"_limit": 1}).json()["data"][0]
    control(close_client, "faults", json={"fail_after_commit_rate": 1.0})
    url = "/opportunity/" if method == "POST" else f"/opportunity/{target['id']}/"
    body = {"lead_id": target["lead_id"], "note": "committed"} if method != "DELETE" else None
    try:
        response = close_client.request(method, url, json=body)
        assert response.status_code == 502
    except httpx.ReadTimeout:
        pass
    control(close_client, "faults", json={})
    notes = [o["note"] for o in list_all(close_client)]
    expected = {"POST": 21, "PUT": 20, "DELETE": 19}[method]
    assert len(notes) == expected
    if method != "DELETE":
        assert "committed" in notes
    events = close_client.get(
        "/event/",
        params={
            "object_type": "opportunity",
            "action": {"POST": "created", "PUT": "updated", "DELETE": "deleted"}[method],
        },
    ).json()["data"]
    assert len(events) == 1


def test_timeout_fault_raises_read_timeout(close_client: httpx.Client) -> None:
    """An injected timeout surfaces as ``httpx.ReadTimeout`` in-process."""
    control(close_client, "faults", json={"timeout_rate": 1.0})
    with pytest.raises(httpx.ReadTimeout):
        close_client.get("/opportunity/")


def test_control_reset_seed_set_and_request_log(close_client: httpx.Client) -> None:
    """Reset restores the seeded state, seed adds records, set writes read-only fields and
    every vendor request is logged."""
    opp = create(close_client)
    control(close_client, "seed", json={"opportunities": 5, "seed": 9})
    assert close_client.get("/opportunity/").json()["total_results"] == 26
    stamp = "2020-02-02T02:02:02.000002+00:00"
    control(
        close_client,
        "set",
        json={"collection": "opportunity", "id": opp["id"], "fields": {"date_updated": stamp}},
    )
    assert close_client.get(f"/opportunity/{opp['id']}/").json()["date_updated"] == stamp
    log = close_client.get("http://close.test/_emulator/requests").json()
    assert log["counts"]["by_route"]["POST /api/v1/opportunity/"] == 1
    control(close_client, "reset")
    assert close_client.get("/opportunity/").json()["total_results"] == 20
    assert close_client.get(f"/opportunity/{opp['id']}/").status_code == 404


def test_the_organization_has_one_currency_every_opportunity_repeats(
    close_client: httpx.Client, close_emulator: CloseEmulator
) -> None:
    """``GET /organization/{id}/`` answers the currency; ``PUT`` changes it, and every
    opportunity's ``value_currency`` follows; a bad code is a 400, an unknown id a 404."""
    org_id = close_emulator.organization_id
    assert close_client.get(f"/organization/{org_id}/").json()["currency"] == "USD"
    changed = close_client.put(f"/organization/{org_id}/", json={"currency": "eur"})
    assert changed.status_code == 200 and changed.json()["currency"] == "EUR"
    opportunity = close_client.get("/opportunity/", params={"_limit": 1}).json()["data"][0]
    assert opportunity["value_currency"] == "EUR"
    assert (
        close_client.put(f"/organization/{org_id}/", json={"currency": "euro"}).status_code == 400
    )
    assert close_client.get("/organization/orga_nope/").status_code == 404
