"""The ParsaLink connector against the ParsaLink emulator: listing through ``next`` URLs, round
trips, references, the error table and both credential kinds (API key, rotating JWT)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from sync.connectors import build_connector
from sync.connectors.errors import (
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Retryable,
)
from sync.connectors.http import ParsaLinkJWTAuth, RetryPolicy
from sync.connectors.parsalink import ParsaLinkConnector
from sync.emulators import reference
from sync.emulators.parsalink import (
    DEFAULT_API_KEY,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    ParsaLinkEmulator,
)

from .conftest import FAST_RETRY, control, parsalink_config


def connect(
    emulator: ParsaLinkEmulator,
    credentials: dict[str, str] | None = None,
    retry: RetryPolicy = FAST_RETRY,
) -> ParsaLinkConnector:
    connector = build_connector(
        "parsalink",
        parsalink_config(credentials or {"api_key": DEFAULT_API_KEY}),
        transport=emulator.transport(),
        retry=retry,
    )
    assert isinstance(connector, ParsaLinkConnector)
    return connector


@pytest.fixture
def emulator() -> ParsaLinkEmulator:
    return ParsaLinkEmulator(seed=4, seed_opportunities=30)


@pytest.fixture
def parsalink(emulator: ParsaLinkEmulator) -> Iterator[ParsaLinkConnector]:
    connector = connect(emulator)
    yield connector
    connector.close()


def account_id(connector: ParsaLinkConnector, name: str = "Acme Corp") -> str:
    return next(r.id for r in connector.references("company") if r.key == name)


# -- listing ---------------------------------------------------------------------------------
def test_scan_lists_every_record_once_in_pages_of_100() -> None:
    """A scan over 1,000 records follows ``next`` URLs, 100 per page, each record once."""
    emulator = ParsaLinkEmulator(seed=1, seed_opportunities=1000)
    pages = list(connect(emulator).scan())
    listed = [r.external_id for page in pages for r in page]
    assert len(listed) == len(set(listed)) == len(emulator.collections["opportunities"])
    assert max(len(page) for page in pages) == 100
    first = pages[0][0]
    assert first.modified == dt.datetime.fromisoformat(first.data["updatedAt"])


def test_scan_while_records_are_edited_and_deleted_misses_and_repeats_nothing() -> None:
    """Edits between pages, and deletes of records already listed (which shift later pages
    back), leave every surviving record listed exactly once."""
    emulator = ParsaLinkEmulator(seed=2, seed_opportunities=1000)
    connector = connect(emulator)
    opps = emulator.collections["opportunities"]
    before = set(opps)
    deleted: set[str] = set()
    listed: list[str] = []
    for index, page in enumerate(connector.scan()):
        listed += [r.external_id for r in page]
        unlisted = [i for i in opps if i not in set(listed)]
        for opp_id in unlisted[:3]:
            connector.update(opp_id, {"description": f"edited during page {index}"})
        if index in (1, 4):  # delete already-listed records: the rest moves back
            for record in page[:7]:
                connector.delete(record.external_id)
                deleted.add(record.external_id)
    assert len(listed) == len(set(listed))
    assert before - deleted <= set(listed)
    assert any("limit=7" in r["query"] for r in emulator.requests)  # the shift was re-read


def test_scan_completes_with_ten_percent_injected_5xx() -> None:
    """With 10 % of requests answered 500/502/503 the scan still lists every record."""
    emulator = ParsaLinkEmulator(seed=3, seed_opportunities=1000)
    connector = connect(emulator)
    control(emulator, "faults", {"error_rate": 0.1})
    listed = [r.external_id for page in connector.scan() for r in page]
    assert sorted(listed) == sorted(emulator.collections["opportunities"])
    assert any(r["status"] >= 500 for r in emulator.requests)


# -- round trips -----------------------------------------------------------------------------
def test_round_trip_with_trailing_slashes_and_vendor_status_codes(
    parsalink: ParsaLinkConnector, emulator: ParsaLinkEmulator
) -> None:
    """Create (201), get, PATCH only the given fields (200), delete (204), then 404."""
    made = parsalink.create(
        {"name": "New deal", "accountId": account_id(parsalink), "value": 2400},
        idempotency_key="k",
    )
    assert made.data["value"] == 2400
    updated = parsalink.update(made.external_id, {"stage": "negotiation", "probability": 70})
    assert (updated.data["stage"], updated.data["value"]) == ("negotiation", 2400)
    assert parsalink.get(made.external_id).data["probability"] == 70
    parsalink.delete(made.external_id)
    with pytest.raises(NotFound):
        parsalink.get(made.external_id)
    statuses = [(r["method"], r["status"]) for r in emulator.requests]
    assert ("POST", 201) in statuses and ("DELETE", 204) in statuses


def test_find_candidates_uses_search_and_keeps_exact_recent_names(
    parsalink: ParsaLinkConnector, emulator: ParsaLinkEmulator
) -> None:
    """Candidates are exact-name matches created at or after the instant, found by ``search``."""
    since = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    acme = account_id(parsalink)
    made = parsalink.create({"name": "Needle deal", "accountId": acme}, idempotency_key="k")
    parsalink.create({"name": "Needle deal two", "accountId": acme}, idempotency_key="k2")
    found = parsalink.find_candidates("Needle deal", since)
    assert [r.external_id for r in found] == [made.external_id]
    assert "search=Needle" in emulator.requests[-1]["query"]


def test_find_like_filters_on_account_stage_and_value_and_ignores_the_name(
    parsalink: ParsaLinkConnector, emulator: ParsaLinkEmulator
) -> None:
    """Deals whose account, stage and value equal the payload's, whatever their name, created
    at or after the instant: where a renamed deal of ours may be, in one filtered request."""
    since = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    acme = account_id(parsalink)
    base = {"accountId": acme, "stage": "proposal", "value": 4321.5}
    renamed = parsalink.create({"name": "Renamed", **base}, idempotency_key="k")
    parsalink.create({"name": "Other value", **base, "value": 4321.6}, idempotency_key="k2")
    parsalink.create({"name": "Other stage", **base, "stage": "negotiation"}, idempotency_key="k3")
    emulator.requests.clear()
    found = parsalink.find_like({"name": "Ours", **base}, since)
    assert [r.external_id for r in found] == [renamed.external_id]
    assert found[0].partial
    assert len(emulator.requests) == 1
    assert parsalink.find_like({"name": "no filterable field"}, since) is None


# -- references ------------------------------------------------------------------------------
def test_references_are_accounts_and_users_without_stages(parsalink: ParsaLinkConnector) -> None:
    """Companies are accounts keyed by name, owners users keyed by e-mail; stages are an enum."""
    assert set(reference.COMPANIES) <= {r.key for r in parsalink.references("company")}
    emails = {r.key for r in parsalink.references("owner")}
    assert {e for _, e in reference.USERS} <= emails
    with pytest.raises(NotImplementedError):
        parsalink.references("stage")


def test_create_reference_makes_an_account_usable_at_once(parsalink: ParsaLinkConnector) -> None:
    """An auto-created account is returned, cached, and accepted on an opportunity."""
    parsalink.references("company")
    made = parsalink.create_reference("company", "Brand New Co")
    assert made in parsalink.references("company")
    parsalink.create({"name": "First", "accountId": made.id}, idempotency_key="k")


# -- the error table -------------------------------------------------------------------------
def test_validation_error_is_rejected_with_parsalinks_field_messages(
    parsalink: ParsaLinkConnector,
) -> None:
    """A 422 becomes Rejected carrying the vendor's detail and per-field messages."""
    with pytest.raises(Rejected) as caught:
        parsalink.create({"value": 5, "probability": 40.5}, idempotency_key="k")
    error = caught.value
    assert error.status == 422
    assert error.message.startswith("Invalid input.")
    assert {"name", "accountId", "probability"} <= set(error.field_errors)
    assert error.field_errors["name"] == "This field is required."


def test_wrong_key_is_auth_failed(emulator: ParsaLinkEmulator) -> None:
    """A 401 becomes AuthFailed with ParsaLink's message."""
    with pytest.raises(AuthFailed, match="not valid"):
        connect(emulator, {"api_key": "pk_wrong"}).get("opp_x")


def test_unknown_id_is_not_found(parsalink: ParsaLinkConnector) -> None:
    """A 404 on get, update or delete becomes NotFound naming the record."""
    for call in (
        lambda: parsalink.get("opp_missing"),
        lambda: parsalink.update("opp_missing", {"value": 1}),
        lambda: parsalink.delete("opp_missing"),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.record == "opp_missing"


def test_exhausted_429_is_rate_limited_with_the_reset_epoch(emulator: ParsaLinkEmulator) -> None:
    """A 429 the retries cannot outwait surfaces as RateLimited; retry_after comes from the
    ``X-RateLimit-Reset`` epoch."""
    control(emulator, "rate_limit", {"enabled": True, "rate": 0.01, "burst": 1})
    policy = RetryPolicy(attempts=2, wait_initial=0.001, wait_jitter=0, max_vendor_wait=0.01)
    connector = connect(emulator, retry=policy)
    connector.references("owner")
    with pytest.raises(RateLimited) as caught:
        connector.references("company")
    assert caught.value.retry_after is not None and caught.value.retry_after > 1


def test_persistent_5xx_is_retryable_after_bounded_attempts(
    parsalink: ParsaLinkConnector, emulator: ParsaLinkEmulator
) -> None:
    """A read failing every time raises Retryable after exactly the policy's attempts."""
    control(emulator, "faults", {"error_rate": 1.0, "statuses": [502]})
    with pytest.raises(Retryable) as caught:
        parsalink.get("opp_x")
    assert caught.value.status == 502
    assert len(emulator.requests) == FAST_RETRY.attempts


def test_fail_after_commit_create_is_outcome_unknown_and_found_again(
    parsalink: ParsaLinkConnector, emulator: ParsaLinkEmulator
) -> None:
    """A create applied but not answered is OutcomeUnknown, sent once, then found by name."""
    acme = account_id(parsalink)
    since = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    control(emulator, "faults", {"fail_after_commit_rate": 1.0})
    for attempt in range(4):
        with pytest.raises(OutcomeUnknown):
            parsalink.create({"name": f"Lost {attempt}", "accountId": acme}, idempotency_key="k")
    control(emulator, "faults", {})
    assert sum(r["method"] == "POST" for r in emulator.requests) == 4
    for attempt in range(4):
        assert len(parsalink.find_candidates(f"Lost {attempt}", since)) == 1


def test_timeout_on_update_is_outcome_unknown(
    parsalink: ParsaLinkConnector, emulator: ParsaLinkEmulator
) -> None:
    """An update that gets no answer is OutcomeUnknown (it may have been applied)."""
    opp_id = next(iter(emulator.collections["opportunities"]))
    control(emulator, "faults", {"timeout_rate": 1.0})
    with pytest.raises(OutcomeUnknown):
        parsalink.update(opp_id, {"value": 1})


# -- credentials -----------------------------------------------------------------------------
def test_email_and_password_use_the_rotating_jwt_flow(emulator: ParsaLinkEmulator) -> None:
    """E-mail/password log in once; when the access token expires the flow refreshes, keeps the
    rotated refresh token, and refreshes again with it later."""
    connector = connect(emulator, {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    auth = connector.client.auth
    assert isinstance(auth, ParsaLinkJWTAuth)
    connector.references("owner")
    first_refresh = auth.refresh
    for _ in range(2):
        control(emulator, "clock", {"advance_seconds": 3700})  # access tokens live 1 h
        connector.forget_references()
        connector.references("owner")
    paths = [r["path"] for r in emulator.requests]
    assert paths.count("/api/auth/login/") == 1
    assert paths.count("/api/auth/token/refresh/") == 2
    assert auth.refresh != first_refresh


def test_wrong_password_is_auth_failed(emulator: ParsaLinkEmulator) -> None:
    """A refused login surfaces as AuthFailed with ParsaLink's message."""
    connector = connect(emulator, {"email": DEMO_EMAIL, "password": "nope"})
    with pytest.raises(AuthFailed, match="No active account"):
        connector.get("opp_x")


def test_credentials_must_be_a_key_or_email_and_password(emulator: ParsaLinkEmulator) -> None:
    """Incomplete credentials are refused when the connector is built."""
    with pytest.raises(AuthFailed):
        connect(emulator, {"email": DEMO_EMAIL})
