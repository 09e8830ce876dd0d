"""The Ruddr connector against the Ruddr emulator: listing, round trips, references, errors."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from sync.config import SystemConfig
from sync.connectors import build_connector, connector_class
from sync.connectors.base import VendorRecord
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
from sync.connectors.ruddr import RuddrConnector
from sync.emulators import reference
from sync.emulators.ruddr import RuddrEmulator

from .conftest import FAST_RETRY, control, ruddr_config


def connect(
    emulator: RuddrEmulator, token: str = "ruddr-test-token", retry: RetryPolicy = FAST_RETRY
) -> RuddrConnector:
    connector = build_connector(
        "ruddr", ruddr_config(token), transport=emulator.transport(), retry=retry
    )
    assert isinstance(connector, RuddrConnector)
    return connector


@pytest.fixture
def emulator() -> RuddrEmulator:
    return RuddrEmulator(seed=5, seed_opportunities=30)


@pytest.fixture
def ruddr(emulator: RuddrEmulator) -> Iterator[RuddrConnector]:
    connector = connect(emulator)
    yield connector
    connector.close()


def company_id(connector: RuddrConnector, name: str = "Acme Corp") -> str:
    return next(r.id for r in connector.references("company") if r.key == name)


def stage_id(connector: RuddrConnector, name: str = "Proposal") -> str:
    return next(r.id for r in connector.references("stage") if r.key == name)


# -- listing ---------------------------------------------------------------------------------
def test_scan_lists_every_record_once_in_pages_of_100() -> None:
    """A scan over 1,205 records yields each exactly once, 100 per request."""
    emulator = RuddrEmulator(seed=1, seed_opportunities=1200)
    connector = connect(emulator)
    pages = list(connector.scan())
    listed = [r.external_id for page in pages for r in page]
    assert len(listed) == len(set(listed)) == len(emulator.collections["opportunities"]) >= 1000
    assert max(len(page) for page in pages) == 100
    record = pages[0][0]
    assert record.modified == dt.datetime.fromisoformat(record.data["modifiedAt"])
    assert record.modified.tzinfo is not None


def test_scan_while_records_are_edited_and_deleted_misses_and_repeats_nothing() -> None:
    """Edits, creates and deletes during a 1,000-record scan — including deleting the record the
    cursor points at — leave every surviving record listed exactly once."""
    emulator = RuddrEmulator(seed=2, seed_opportunities=1000)
    connector = connect(emulator)
    opps = emulator.collections["opportunities"]
    before = set(opps)
    deleted: set[str] = set()
    listed: list[str] = []
    for index, page in enumerate(connector.scan()):
        listed += [r.external_id for r in page]
        connector.update(page[0].external_id, {"description": f"edited during page {index}"})
        remaining = sorted(set(opps) - set(listed))
        if remaining:  # edit a record not listed yet through the API
            connector.update(remaining[0], {"nextSteps": "call back"})
        if index in (2, 5):  # delete the record the next request's cursor names
            cursor = page[-1].external_id
            del opps[cursor]
            deleted.add(cursor)
        if index == 3:  # and the one before it as well: the scan falls back further
            for raw in page[-3:]:
                opps.pop(raw.external_id, None)
                deleted.add(raw.external_id)
    survivors = before - deleted
    assert len(listed) == len(set(listed))
    assert survivors <= set(listed)
    assert emulator.request_counts()["by_status"]["400"] >= 3  # the cursor really was lost


def test_scan_completes_with_ten_percent_injected_5xx() -> None:
    """With 10 % of requests answered 500/502/503 the scan still lists every record."""
    emulator = RuddrEmulator(seed=3, seed_opportunities=1000)
    connector = connect(emulator)
    control(emulator, "faults", {"error_rate": 0.1})
    listed = [r.external_id for page in connector.scan() for r in page]
    assert sorted(listed) == sorted(emulator.collections["opportunities"])
    assert (
        emulator.request_counts()["by_status"].get("500", 0)
        + emulator.request_counts()["by_status"].get("502", 0)
        + emulator.request_counts()["by_status"].get("503", 0)
        > 0
    )


def test_list_changed_is_not_supported(ruddr: RuddrConnector) -> None:
    """Ruddr has no modified-since filter: the connector says so instead of faking one."""
    assert ruddr.capture == "scan"
    with pytest.raises(NotImplementedError):
        next(iter(ruddr.list_changed(dt.datetime.now(dt.UTC))))


# -- round trips -----------------------------------------------------------------------------
def test_create_get_update_delete_round_trip(ruddr: RuddrConnector) -> None:
    """A created opportunity can be read, patched field by field, and deleted (then 404)."""
    created = ruddr.create(
        {
            "name": "Round trip",
            "companyId": company_id(ruddr),
            "opportunityStageId": stage_id(ruddr),
            "amount": 1200.5,
        },
        idempotency_key="k1",
    )
    assert created.data["name"] == "Round trip"
    assert ruddr.get(created.external_id).data["amount"] == 1200.5
    updated = ruddr.update(created.external_id, {"probability": 0.35})
    assert updated.data["probability"] == 0.35
    assert updated.data["amount"] == 1200.5  # untouched: only the given field was written
    assert updated.modified > created.modified
    ruddr.delete(created.external_id)
    with pytest.raises(NotFound):
        ruddr.get(created.external_id)


def test_find_candidates_finds_recent_records_by_name(ruddr: RuddrConnector) -> None:
    """Only records with the exact name created at or after the instant are candidates."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    made = ruddr.create({"name": "Needle", "companyId": company_id(ruddr)}, idempotency_key="k")
    ruddr.create({"name": "Needle 2", "companyId": company_id(ruddr)}, idempotency_key="k2")
    found = ruddr.find_candidates("Needle", since)
    assert [r.external_id for r in found] == [made.external_id]
    assert ruddr.find_candidates("Needle", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) == []


def test_find_candidates_of_any_name_holds_what_keep_accepts(ruddr: RuddrConnector) -> None:
    """A listing of any name returns only the records ``keep`` accepts, each asked once."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    made = [
        ruddr.create({"name": f"Kept {n}", "companyId": company_id(ruddr)}, idempotency_key=n)
        for n in "ab"
    ]
    asked: list[str] = []

    def keep(record: VendorRecord) -> bool:
        asked.append(record.external_id)
        return record.external_id == made[0].external_id

    found = ruddr.find_candidates(None, since, keep)
    assert [r.external_id for r in found] == [made[0].external_id]
    assert sorted(asked) == sorted(r.external_id for r in made)


# -- references ------------------------------------------------------------------------------
def test_references_list_companies_members_and_stages(ruddr: RuddrConnector) -> None:
    """Companies are keyed by name, members by e-mail, stages by name with status/probability."""
    assert {r.key for r in ruddr.references("company")} == set(reference.COMPANIES)
    assert {r.key for r in ruddr.references("owner")} == {e for _, e in reference.USERS}
    stages = {r.key: r.extra for r in ruddr.references("stage")}
    assert stages["Closed Won"]["status"] == "won"
    assert stages["Proposal"]["probability"] == 0.5


def test_references_are_cached_for_the_run(ruddr: RuddrConnector, emulator: RuddrEmulator) -> None:
    """A second lookup of the same kind sends no request."""
    ruddr.references("owner")
    count = len(emulator.requests)
    ruddr.references("owner")
    assert len(emulator.requests) == count


def test_create_reference_makes_a_company_usable_at_once(ruddr: RuddrConnector) -> None:
    """An auto-created company is returned, cached, and accepted as an opportunity's company."""
    ruddr.references("company")
    made = ruddr.create_reference("company", "Brand New Co")
    assert made.key == "Brand New Co"
    assert made in ruddr.references("company")
    ruddr.create({"name": "First deal", "companyId": made.id}, idempotency_key="k")


# -- the error table -------------------------------------------------------------------------
def test_wrong_token_is_auth_failed_with_ruddrs_message(emulator: RuddrEmulator) -> None:
    """A 401 becomes AuthFailed carrying Ruddr's own words."""
    connector = connect(emulator, token="nope")
    with pytest.raises(AuthFailed, match="bearer token is missing or invalid"):
        next(iter(connector.scan()))


def test_unknown_id_is_not_found(ruddr: RuddrConnector) -> None:
    """A 404 on get, update or delete becomes NotFound naming the record."""
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (
        lambda: ruddr.get(missing),
        lambda: ruddr.update(missing, {"name": "x"}),
        lambda: ruddr.delete(missing),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.record == missing


def test_validation_error_is_rejected_with_message_and_field_errors(
    ruddr: RuddrConnector,
) -> None:
    """A 400 becomes Rejected with Ruddr's message and one field error per field."""
    with pytest.raises(Rejected) as caught:
        ruddr.create({"name": "No company", "probability": 7}, idempotency_key="k")
    error = caught.value
    assert error.status == 400
    assert "The request body is invalid." in error.message
    assert set(error.field_errors) == {"companyId", "probability"}
    assert error.field_errors["companyId"] == "'companyId' is required"
    assert error.record == "No company"


def test_exhausted_429_is_rate_limited(emulator: RuddrEmulator) -> None:
    """Under a limit the retries cannot outwait, the 429 surfaces as RateLimited (no signal)."""
    connector = connect(emulator, retry=RetryPolicy(attempts=2, wait_initial=0.001, wait_jitter=0))
    control(emulator, "rate_limit", {"enabled": True, "rate": 0.01, "burst": 1})
    connector.get(next(iter(emulator.collections["opportunities"])))
    with pytest.raises(RateLimited) as caught:
        connector.references("owner")
    assert caught.value.retry_after is None  # Ruddr sends no wait signal
    assert emulator.request_counts()["by_status"]["429"] == 2


def test_429_is_retried_until_the_limit_lets_it_through(emulator: RuddrEmulator) -> None:
    """A short 429 spell is absorbed by the retries: the caller just gets its answer."""
    connector = connect(
        emulator, retry=RetryPolicy(attempts=10, wait_initial=0.02, wait_max=0.1, wait_jitter=0)
    )
    control(emulator, "rate_limit", {"enabled": True, "rate": 20, "burst": 1})
    for _ in range(5):
        connector.references("owner")
        connector.forget_references()
    assert emulator.request_counts()["by_status"].get("429", 0) >= 1


def test_persistent_5xx_is_retryable_after_bounded_attempts(
    ruddr: RuddrConnector, emulator: RuddrEmulator
) -> None:
    """A GET failing every time raises Retryable after exactly the policy's attempts."""
    control(emulator, "faults", {"error_rate": 1.0, "statuses": [503]})
    with pytest.raises(Retryable) as caught:
        ruddr.get("any")
    assert caught.value.status == 503
    assert len(emulator.requests) == FAST_RETRY.attempts


def test_timeouts_are_retryable_on_reads_and_outcome_unknown_on_writes(
    ruddr: RuddrConnector, emulator: RuddrEmulator
) -> None:
    """A read that never gets an answer is Retryable; a create is OutcomeUnknown, sent once."""
    control(emulator, "faults", {"timeout_rate": 1.0})
    with pytest.raises(Retryable) as read:
        ruddr.get("any")
    assert not isinstance(read.value, OutcomeUnknown)
    sent = len(emulator.requests)
    with pytest.raises(OutcomeUnknown):
        ruddr.create({"name": "x", "companyId": "y"}, idempotency_key="k")
    assert len(emulator.requests) == sent + 1


def test_fail_after_commit_create_is_outcome_unknown_and_recoverable(
    ruddr: RuddrConnector, emulator: RuddrEmulator
) -> None:
    """A create applied but answered 502/dropped raises OutcomeUnknown, is sent once, and the
    record is then found by find_candidates — the engine adopts it instead of duplicating."""
    acme = company_id(ruddr)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    control(emulator, "faults", {"fail_after_commit_rate": 1.0})
    for attempt in range(4):  # both halves (502 and dropped connection) come up
        with pytest.raises(OutcomeUnknown):
            ruddr.create({"name": f"Lost answer {attempt}", "companyId": acme}, idempotency_key="k")
    control(emulator, "faults", {})
    posts = [r for r in emulator.requests if r["method"] == "POST"]
    assert len(posts) == 4
    for attempt in range(4):
        assert len(ruddr.find_candidates(f"Lost answer {attempt}", since)) == 1


# -- the factory -----------------------------------------------------------------------------
def test_factory_sizes_a_token_bucket_from_the_config(emulator: RuddrEmulator) -> None:
    """``rate_limit: {rate: 50, burst: 1}`` makes eleven requests take at least 0.2 s."""
    cfg = ruddr_config(rate_limit={"rate": 50, "burst": 1})
    connector = build_connector("ruddr", cfg, transport=emulator.transport(), retry=FAST_RETRY)
    started = time.monotonic()
    for _ in range(11):
        connector.references("owner")
        connector.forget_references()
    assert time.monotonic() - started >= 0.2 - 0.01
    connector.close()


def test_factory_refuses_unknown_types_and_missing_credentials(emulator: RuddrEmulator) -> None:
    """An unregistered system type and a Ruddr system without a token fail when built."""
    with pytest.raises(ConnectorError, match="no connector"):
        connector_class("sugarcrm")
    cfg = SystemConfig(type="ruddr", base_url="http://ruddr.test/api/workspace")
    with pytest.raises(AuthFailed, match=r"credentials\.token"):
        build_connector("ruddr", cfg, transport=emulator.transport())
