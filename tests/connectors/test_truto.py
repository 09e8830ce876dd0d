"""The Truto connector: its paginator, capture detection, idempotency keys, error parsing, and
its contract with the Truto emulator (Salesforce and Capsule accounts behind one token)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.connectors import build_connector
from sync.connectors.errors import (
    AuthFailed,
    ConnectorError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Retryable,
)
from sync.connectors.http import RetryPolicy
from sync.connectors.pagination import PaginationLoop
from sync.connectors.truto import TrutoConnector, next_cursor_paginator, update_idempotency_key
from sync.emulators import reference
from sync.emulators.truto import TrutoEmulator

from .conftest import FAST_RETRY, TRUTO_ACCOUNTS, TRUTO_BASE, control, truto_config

# -- the next_cursor paginator (pure state machine) ------------------------------------------


def test_next_cursor_paginator_follows_until_null() -> None:
    """The paginator asks for next_cursor pages and stops when the cursor is null."""
    paginator = next_cursor_paginator()
    assert paginator.next_request_params() == {}
    paginator.update({"result": [{"id": "1"}], "next_cursor": "c1"})
    assert paginator.next_request_params() == {"next_cursor": "c1"}
    paginator.update({"result": [{"id": "2"}], "next_cursor": None})
    assert not paginator.has_next


def test_next_cursor_paginator_stops_on_empty_page() -> None:
    """An empty result ends the listing even when a cursor is present."""
    paginator = next_cursor_paginator()
    assert paginator.update({"result": [], "next_cursor": "c1"}) == []
    assert not paginator.has_next


def test_next_cursor_paginator_raises_on_repeated_cursor() -> None:
    """A cursor handed back twice raises instead of looping forever."""
    paginator = next_cursor_paginator()
    paginator.update({"result": [{"id": "1"}], "next_cursor": "c1"})
    with pytest.raises(PaginationLoop):
        paginator.update({"result": [{"id": "2"}], "next_cursor": "c1"})


def test_update_key_names_record_and_payload_and_differs_per_call() -> None:
    """The update key is stable for one call (order-insensitive payload hash) and distinct
    across calls, so a later identical write is applied instead of replayed."""
    one = update_idempotency_key("006A", {"amount": 10, "name": "x"}, nonce="n")
    assert one == update_idempotency_key("006A", {"name": "x", "amount": 10}, nonce="n")
    assert one != update_idempotency_key("006A", {"amount": 11, "name": "x"}, nonce="n")
    assert one != update_idempotency_key("006B", {"amount": 10, "name": "x"}, nonce="n")
    assert update_idempotency_key("006A", {"a": 1}) != update_idempotency_key("006A", {"a": 1})


# -- what a stub can isolate: the meta/list schema shapes, one 429 signal --------------------


def canned(status: int, body: object, headers: dict[str, str] | None = None) -> Any:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=json.dumps(body).encode(), headers=headers or {})

    client = httpx.Client(base_url=TRUTO_BASE, transport=httpx.MockTransport(handler))
    connector = TrutoConnector("truto", client, {"integrated_account_id": "ia"})
    return connector, seen


@pytest.mark.parametrize(
    ("query_schema", "expected"),
    [
        ({"updated_at": {"type": "string", "format": "date-time"}}, "incremental"),
        ({"properties": {"updated_at": {"type": "string"}}}, "incremental"),
        ({"name": {"type": "string"}}, "scan"),
        (None, "scan"),
    ],
    ids=["flat-updated_at", "json-schema-updated_at", "no-updated_at", "no-schema"],
)
def test_capture_is_read_once_from_meta_list(query_schema: object, expected: str) -> None:
    """capture is incremental exactly when meta/list's query schema lists updated_at."""
    connector, seen = canned(200, {"query_schema": query_schema})
    assert connector.capture == expected
    assert connector.capture == expected
    assert len(seen) == 1
    assert seen[0].url.path.endswith("/opportunities/meta/list")
    assert seen[0].url.params["integrated_account_id"] == "ia"


def test_rate_limit_reset_header_is_the_wait() -> None:
    """A 429 becomes RateLimited with ``ratelimit-reset`` seconds as the wait."""
    body = {"statusCode": 429, "error": "Too Many Requests", "message": "slow down"}
    connector, _ = canned(429, body, {"ratelimit-reset": "4"})
    with pytest.raises(RateLimited, match="slow down") as caught:
        connector.get("006A")
    assert caught.value.retry_after == 4.0


def test_missing_integrated_account_is_a_config_error() -> None:
    """A Truto connector without integrated_account_id fails when built, not mid-run."""
    with pytest.raises(ConnectorError, match="integrated_account_id"):
        TrutoConnector("truto", httpx.Client(), {})


# -- against the emulator --------------------------------------------------------------------


def connect(
    emulator: TrutoEmulator,
    integration: str = "salesforce",
    *,
    token: str = "truto-test-token",
    retry: RetryPolicy = FAST_RETRY,
    **options: Any,
) -> TrutoConnector:
    config = truto_config(integration, token, options=options)
    connector = build_connector("truto", config, transport=emulator.transport(), retry=retry)
    assert isinstance(connector, TrutoConnector)
    return connector


def sf_ids(emulator: TrutoEmulator) -> set[str]:
    return set(emulator.integrations["salesforce"].collection("opportunities"))


@pytest.fixture
def emulator() -> TrutoEmulator:
    return TrutoEmulator(seed=5, seed_opportunities=40)


@pytest.fixture
def truto(emulator: TrutoEmulator) -> Iterator[TrutoConnector]:
    connector = connect(emulator)
    yield connector
    connector.close()


def ref_id(connector: TrutoConnector, kind: str, key: str) -> str:
    return next(r.id for r in connector.references(kind) if r.key == key)


def new_deal(connector: TrutoConnector, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "amount": 12500.0,
        "stage": {"id": ref_id(connector, "stage", "Prospecting")},
        "close_date": "2027-03-31T00:00:00.000Z",
        "account": {"id": ref_id(connector, "company", "Acme Corp")},
        "owner": {"id": ref_id(connector, "owner", "wei.chen@example.com")},
        **fields,
    }


def test_capture_follows_the_integration(emulator: TrutoEmulator, closing: list[Any]) -> None:
    """Salesforce filters on updated_at (incremental); Capsule does not (scan only)."""
    salesforce, capsule = connect(emulator), connect(emulator, "capsule")
    closing += [salesforce, capsule]
    assert salesforce.capture == "incremental"
    assert capsule.capture == "scan"
    with pytest.raises(NotImplementedError):
        next(iter(capsule.list_changed(dt.datetime.now(dt.UTC))))
    forced = connect(emulator, "salesforce", capture="scan")
    closing.append(forced)
    assert forced.capture == "scan"


def test_scan_while_records_are_edited_lists_each_once(closing: list[Any]) -> None:
    """A scan of 1,020 Salesforce records, edited while it runs, lists every record exactly
    once, in pages of ≤ 100, with integrated_account_id on every call."""
    emulator = TrutoEmulator(seed=1, seed_opportunities=1700)
    connector, editor = connect(emulator), connect(emulator)
    closing += [connector, editor]
    rng = random.Random(2)
    ids = sorted(sf_ids(emulator))
    listed: list[str] = []
    pages = 0
    for page in connector.scan():
        pages += 1
        assert len(page) <= 100
        listed += [r.external_id for r in page]
        for target in rng.sample(ids, 3):
            editor.update(target, {"amount": float(rng.randrange(1000, 9000))})
    assert len(listed) == len(set(listed)) == len(ids) >= 1000
    assert set(listed) == set(ids)
    assert pages == -(-len(ids) // 100)
    account = TRUTO_ACCOUNTS["salesforce"]
    assert all(f"integrated_account_id={account}" in r["query"] for r in emulator.requests)


def test_incremental_listing_while_records_are_edited_misses_and_repeats_nothing(
    closing: list[Any],
) -> None:
    """Edits during a 1,000-record updated_at listing: every record listed, no version twice,
    and a catch-up poll from the last stamp brings every edited record's final version."""
    emulator = TrutoEmulator(seed=2, seed_opportunities=1700)
    connector, editor = connect(emulator), connect(emulator)
    closing += [connector, editor]
    rng = random.Random(3)
    ids = sorted(sf_ids(emulator))
    versions: list[tuple[str, str]] = []
    edited: set[str] = set()
    for page in connector.list_changed(dt.datetime(2000, 1, 1, tzinfo=dt.UTC)):
        versions += [(r.external_id, r.data["updated_at"]) for r in page]
        for target in rng.sample(ids, 3):
            editor.update(target, {"amount": float(rng.randrange(1000, 9000))})
            edited.add(target)
    assert len(versions) == len(set(versions)), "a version was yielded twice"
    assert {i for i, _ in versions} == set(ids), "a record was missed"
    last = max(dt.datetime.fromisoformat(s) for _, s in versions)
    for page in connector.list_changed(last):
        versions += [(r.external_id, r.data["updated_at"]) for r in page]
    finals = {(i, editor.get(i).data["updated_at"]) for i in edited}
    assert finals <= set(versions)
    assert any("updated_at%5Bgte%5D=" in r["query"] for r in emulator.requests)


def test_scan_completes_with_ten_percent_injected_5xx(closing: list[Any]) -> None:
    """With 10 % of requests answered 500/502/503 the scan still lists every record."""
    emulator = TrutoEmulator(seed=3, seed_opportunities=1700)
    connector = connect(emulator)
    closing.append(connector)
    control(emulator, "faults", {"error_rate": 0.1})
    listed = [r.external_id for page in connector.scan() for r in page]
    assert sorted(listed) == sorted(sf_ids(emulator))
    by_status = emulator.request_counts()["by_status"]
    assert sum(by_status.get(s, 0) for s in ("500", "502", "503")) > 0


# -- round trips -----------------------------------------------------------------------------


def test_create_get_update_delete_round_trip(truto: TrutoConnector) -> None:
    """A created deal reads back as written; an update changes only the field sent; a delete
    answers and the deal is gone (404 → NotFound)."""
    created = truto.create(new_deal(truto, "Round trip"), idempotency_key="intent-1")
    assert created.data["name"] == "Round trip"
    assert created.data["stage"] == {"id": "Prospecting", "name": "Prospecting"}
    assert "remote_data" not in created.data
    fetched = truto.get(created.external_id)
    assert fetched.external_id == created.external_id
    assert fetched.data["amount"] == 12500.0
    updated = truto.update(created.external_id, {"amount": 99000.0})
    assert updated.data["amount"] == 99000.0
    assert updated.data["name"] == "Round trip"
    assert updated.modified >= created.modified
    truto.delete(created.external_id)
    with pytest.raises(NotFound):
        truto.get(created.external_id)


def test_idempotent_create_replays_after_a_lost_answer(
    emulator: TrutoEmulator, truto: TrutoConnector
) -> None:
    """A create whose answers are all lost (applied, then 502/dropped) is OutcomeUnknown; the
    retries and a later create with the same key replay it: one deal, never a duplicate."""
    deal = new_deal(truto, "Lost answer")
    before = sf_ids(emulator)
    control(emulator, "faults", {"fail_after_commit_rate": 1.0})
    with pytest.raises(OutcomeUnknown):
        truto.create(deal, idempotency_key="intent-lost")
    control(emulator, "faults", {})
    posts = [r for r in emulator.requests if r["method"] == "POST"]
    assert len(posts) == FAST_RETRY.attempts  # retried: the key makes the POST safe to repeat
    assert len(sf_ids(emulator) - before) == 1
    adopted = truto.create(deal, idempotency_key="intent-lost")
    assert sf_ids(emulator) - before == {adopted.external_id}


def test_same_update_twice_apart_is_applied_not_replayed(truto: TrutoConnector) -> None:
    """A→B, B→A, A→B: the third write is applied, not answered from the first one's key."""
    target = truto.create(new_deal(truto, "Flip"), idempotency_key="intent-flip").external_id
    truto.update(target, {"amount": 1.0})
    truto.update(target, {"amount": 2.0})
    truto.update(target, {"amount": 1.0})
    assert truto.get(target).data["amount"] == 1.0


def test_find_candidates_matches_name_and_creation_time(truto: TrutoConnector) -> None:
    """find_candidates finds deals by exact name created since a moment."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    created = truto.create(new_deal(truto, "Needle"), idempotency_key="intent-n")
    truto.create(new_deal(truto, "Needle and thread"), idempotency_key="intent-o")
    found = truto.find_candidates("Needle", before)
    assert [r.external_id for r in found] == [created.external_id]
    assert truto.find_candidates("Needle", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) == []


def test_remote_data_is_kept_only_when_asked(emulator: TrutoEmulator, closing: list[Any]) -> None:
    """Reads drop remote_data by default and keep it with the remote_data option."""
    lean, full = connect(emulator), connect(emulator, remote_data=True)
    closing += [lean, full]
    ident = sorted(sf_ids(emulator))[0]
    assert "remote_data" not in lean.get(ident).data
    assert full.get(ident).data["remote_data"]["Id"] == ident
    assert "Probability" in next(iter(full.scan()))[0].data["remote_data"]


# -- references ------------------------------------------------------------------------------


def test_references_are_accounts_users_and_picklist_stages(
    emulator: TrutoEmulator, truto: TrutoConnector
) -> None:
    """Companies are accounts by name, owners users by e-mail, Salesforce stages picklist
    names whose id is the name; a second look-up sends no request."""
    assert set(reference.COMPANIES) <= {r.key for r in truto.references("company")}
    assert {r.key for r in truto.references("owner")} == {e for _, e in reference.USERS}
    stages = truto.references("stage")
    assert [r.key for r in stages] == [name for name, _, _ in reference.SALESFORCE_STAGES]
    assert all(r.id == r.key for r in stages)
    won = next(r for r in stages if r.key == "Closed Won")
    assert won.extra["remote_data"]["IsWon"] is True
    sent = len(emulator.requests)
    truto.references("company"), truto.references("owner"), truto.references("stage")
    assert len(emulator.requests) == sent


# -- the error table -------------------------------------------------------------------------


def test_wrong_token_is_auth_failed(emulator: TrutoEmulator, closing: list[Any]) -> None:
    """A 401 becomes AuthFailed carrying Truto's message."""
    connector = connect(emulator, token="wrong")
    closing.append(connector)
    with pytest.raises(AuthFailed, match="Invalid or missing API token"):
        connector.references("owner")


def test_not_found_carries_truto_message(truto: TrutoConnector) -> None:
    """A 404 envelope becomes NotFound with Truto's message."""
    with pytest.raises(NotFound) as caught:
        truto.get("006000000000000AAA")
    assert caught.value.status == 404
    assert "not found" in caught.value.message.lower()


def test_validation_failure_carries_message_and_field_errors(truto: TrutoConnector) -> None:
    """A 400 ``Validation failed`` becomes Rejected with its failures as field errors."""
    with pytest.raises(Rejected, match="Validation failed") as caught:
        truto.create({"amount": 5.0}, idempotency_key="intent-bad")
    assert caught.value.status == 400
    assert "name" in caught.value.field_errors


def test_upstream_422_carries_the_remote_error(emulator: TrutoEmulator, closing: list[Any]) -> None:
    """Capsule's 422 passes through Truto and becomes Rejected with the upstream's fields."""
    capsule = connect(emulator, "capsule")
    closing.append(capsule)
    stage = capsule.references("stage")[0].id
    with pytest.raises(Rejected) as caught:
        capsule.create({"name": "No party", "stage": {"id": stage}}, idempotency_key="i-422")
    assert caught.value.status == 422
    assert caught.value.message
    assert caught.value.field_errors


def test_exhausted_429_is_rate_limited_with_ratelimit_reset(emulator: TrutoEmulator) -> None:
    """Under a limit the retries cannot outwait, the 429 surfaces with ratelimit-reset seconds."""
    retry = RetryPolicy(attempts=2, wait_initial=0.001, wait_jitter=0, max_vendor_wait=0.01)
    connector = connect(emulator, retry=retry)
    control(emulator, "rate_limit", {"enabled": True, "rate": 0.01, "burst": 1})
    connector.references("owner")
    with pytest.raises(RateLimited, match="Rate limit exceeded") as caught:
        connector.references("company")
    assert caught.value.retry_after is not None and 50 < caught.value.retry_after <= 100
    connector.close()


def test_persistent_5xx_is_retryable_after_bounded_attempts(
    emulator: TrutoEmulator, truto: TrutoConnector
) -> None:
    """A GET failing every time raises Retryable after exactly the policy's attempts."""
    control(emulator, "faults", {"error_rate": 1.0, "statuses": [502]})
    with pytest.raises(Retryable) as caught:
        truto.get("006000000000000AAA")
    assert caught.value.status == 502
    assert len(emulator.requests) == FAST_RETRY.attempts


def test_timeouts_are_retryable_on_reads_and_outcome_unknown_on_writes(
    emulator: TrutoEmulator, truto: TrutoConnector
) -> None:
    """A read that never gets an answer is Retryable; an update is OutcomeUnknown."""
    target = sorted(sf_ids(emulator))[0]
    control(emulator, "faults", {"timeout_rate": 1.0})
    with pytest.raises(Retryable) as read:
        truto.get(target)
    assert not isinstance(read.value, OutcomeUnknown)
    with pytest.raises(OutcomeUnknown):
        truto.update(target, {"amount": 1.0})
