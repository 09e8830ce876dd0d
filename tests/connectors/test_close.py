"""The Close connector: its re-windowing paginator, its error parsing, and its contract with the
Close emulator (listing, round trips, references, the delete feed and the error table)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sync.connectors import build_connector
from sync.connectors.base import VendorRecord
from sync.connectors.close import CloseConnector, WindowPaginator, event_paginator
from sync.connectors.errors import (
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Retryable,
)
from sync.connectors.http import RetryPolicy
from sync.connectors.pagination import PaginationLoop
from sync.emulators import reference
from sync.emulators.close import CloseEmulator
from sync.timefmt import format_close

from .conftest import CLOSE_BASE, CLOSE_NAME_FIELD, FAST_RETRY, close_config, control

T0 = "2025-01-01T00:00:00.000000+00:00"


def stamp(second: int) -> str:
    return f"2025-01-01T00:00:{second:02d}.000000+00:00"


def page(*records: tuple[str, int], has_more: bool = True) -> dict[str, Any]:
    return {"data": [{"id": i, "date_updated": stamp(s)} for i, s in records], "has_more": has_more}


# -- the re-windowing paginator (pure state machine) -----------------------------------------


def test_window_moves_to_last_stamp_without_skip() -> None:
    """After a page the next request starts at the page's last stamp, with no _skip."""
    paginator = WindowPaginator(window=T0, limit=2)
    assert paginator.next_request_params() == {
        "date_updated__gte": T0,
        "_order_by": "date_updated",
        "_limit": 2,
    }
    paginator.update(page(("a", 1), ("b", 2)))
    assert paginator.next_request_params() == {
        "date_updated__gte": stamp(2),
        "_order_by": "date_updated",
        "_limit": 2,
    }


def test_window_drops_ids_already_yielded_at_the_boundary() -> None:
    """Records re-read at the window stamp are not yielded twice; newer ones are."""
    paginator = WindowPaginator(window=T0, limit=2)
    paginator.update(page(("a", 1), ("b", 2)))
    fresh = paginator.update(page(("b", 2), ("c", 2)))
    assert [r["id"] for r in fresh] == ["c"]


def test_a_record_edited_past_the_window_is_yielded_again() -> None:
    """An id seen before but now carrying a newer stamp is a new version, not a repeat."""
    paginator = WindowPaginator(window=T0, limit=2)
    paginator.update(page(("a", 1), ("b", 2)))
    fresh = paginator.update(page(("b", 2), ("a", 3), has_more=False))
    assert [r["id"] for r in fresh] == ["a"]
    assert not paginator.has_next


def test_full_page_of_identical_stamps_falls_back_to_skip_within_the_stamp() -> None:
    """When a whole page shares the window stamp, _skip grows inside that stamp only."""
    paginator = WindowPaginator(window=stamp(5), limit=2)
    paginator.update(page(("a", 5), ("b", 5)))
    params = paginator.next_request_params()
    assert (params["date_updated__gte"], params["_skip"]) == (stamp(5), 2)
    fresh = paginator.update(page(("c", 5), ("d", 6)))
    assert [r["id"] for r in fresh] == ["c", "d"]
    assert "_skip" not in paginator.next_request_params()


def test_window_stops_on_empty_page() -> None:
    """An empty page ends the listing even if has_more claims otherwise."""
    paginator = WindowPaginator(window=T0)
    assert paginator.update({"data": [], "has_more": True}) == []
    assert not paginator.has_next


def test_window_raises_when_the_vendor_does_not_move_it_forward() -> None:
    """A page whose records lie before the window (a filter ignored) cannot loop forever."""
    paginator = WindowPaginator(window=stamp(9), limit=1)
    paginator.update(page(("a", 9)))  # skip 1 within stamp 9
    paginator.skip = 0  # a vendor handing us back to where we were
    with pytest.raises(PaginationLoop):
        paginator.update(page(("z", 1)))
        paginator.update(page(("z", 1)))


def test_event_paginator_follows_cursor_next_and_raises_on_a_repeat() -> None:
    """The event-log paginator asks for _cursor=cursor_next and refuses a repeated cursor."""
    paginator = event_paginator()
    paginator.update({"data": [{"id": "ev1"}], "cursor_next": "c1"})
    assert paginator.next_request_params() == {"_cursor": "c1"}
    with pytest.raises(PaginationLoop):
        paginator.update({"data": [{"id": "ev2"}], "cursor_next": "c1"})
    done = event_paginator()
    done.update({"data": [{"id": "ev1"}], "cursor_next": None})
    assert not done.has_next


# -- vendor signals a stub can isolate (each documented 429 signal on its own) ---------------


def canned(status: int, body: object, headers: dict[str, str] | None = None) -> CloseConnector:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=json.dumps(body).encode(), headers=headers or {})

    client = httpx.Client(base_url=CLOSE_BASE, transport=httpx.MockTransport(handler))
    return CloseConnector("close", client, {})


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({"error": {"rate_reset": 2.5, "message": "API call count exceeded"}}, {}, 2.5),
        ({"error": "slow down"}, {"ratelimit": "limit=20, remaining=0, reset=7"}, 7.0),
        ({"error": "slow down"}, {"retry-after": "3"}, 3.0),
    ],
    ids=["body-rate_reset", "ratelimit-header", "retry-after"],
)
def test_each_close_rate_limit_signal_is_read(
    body: object, headers: dict[str, str], expected: float
) -> None:
    """A 429's wait comes from error.rate_reset, else the ratelimit header, else Retry-After."""
    with pytest.raises(RateLimited) as caught:
        canned(429, body, headers).get("oppo_1")
    assert caught.value.retry_after == expected


# -- against the emulator --------------------------------------------------------------------


def connect(
    emulator: CloseEmulator, api_key: str = "close-test-key", retry: RetryPolicy = FAST_RETRY
) -> CloseConnector:
    connector = build_connector(
        "close", close_config(api_key), transport=emulator.transport(), retry=retry
    )
    assert isinstance(connector, CloseConnector)
    return connector


@pytest.fixture
def emulator() -> CloseEmulator:
    return CloseEmulator(seed=5, seed_opportunities=30)


@pytest.fixture
def close(emulator: CloseEmulator) -> Iterator[CloseConnector]:
    connector = connect(emulator)
    yield connector
    connector.close()


def ref_id(connector: CloseConnector, kind: str, key: str) -> str:
    return next(r.id for r in connector.references(kind) if r.key == key)


def new_payload(connector: CloseConnector, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "lead_id": ref_id(connector, "company", "Acme Corp"),
        "user_id": ref_id(connector, "owner", "wei.chen@example.com"),
        "status_id": ref_id(connector, "stage", "Proposal"),
        "value": 1_250_000,
        "confidence": 40,
        CLOSE_NAME_FIELD: name,
        **fields,
    }


def opportunity_queries(emulator: CloseEmulator) -> list[str]:
    return [r["query"] for r in emulator.requests if r["path"] == "/api/v1/opportunity/"]


def test_scan_lists_every_record_once_without_deep_skips(closing: list[Any]) -> None:
    """A scan over 1,050 records yields each once, in pages of ≤ 100, never sending _skip."""
    emulator = CloseEmulator(seed=1, seed_opportunities=1050)
    connector = connect(emulator)
    closing.append(connector)
    pages = list(connector.scan())
    listed = [r.external_id for p in pages for r in p]
    assert len(listed) == len(set(listed)) == len(emulator.collections["opportunity"]) == 1050
    assert max(len(p) for p in pages) == 100
    assert not any("_skip" in q for q in opportunity_queries(emulator))
    record = pages[0][0]
    assert record.modified == dt.datetime.fromisoformat(record.data["date_updated"])


def test_incremental_listing_while_records_are_edited_misses_and_repeats_nothing(
    closing: list[Any],
) -> None:
    """Editing records (ahead of and behind the window) during a 1,000-record incremental
    listing: every record is listed, no version twice, and a catch-up poll from the last stamp
    brings every record's final version."""
    emulator = CloseEmulator(seed=2, seed_opportunities=1000)
    connector, editor = connect(emulator), connect(emulator)
    closing += [connector, editor]
    rng = random.Random(4)
    ids = sorted(emulator.collections["opportunity"])
    since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    versions: list[tuple[str, str]] = []
    edited: set[str] = set()
    for page_ in connector.list_changed(since):
        versions += [(r.external_id, r.data["date_updated"]) for r in page_]
        for target in rng.sample(ids, 5):
            editor.update(target, {"confidence": rng.randrange(0, 101)})
            edited.add(target)
    assert len(versions) == len(set(versions)), "a version was yielded twice"
    assert {i for i, _ in versions} == set(ids), "a record was missed"
    once = [i for i, _ in versions if i not in edited]
    assert len(once) == len(set(once)) == len(ids) - len(edited)
    last = max(dt.datetime.fromisoformat(s) for _, s in versions)
    versions += [
        (r.external_id, r.data["date_updated"]) for p in connector.list_changed(last) for r in p
    ]
    finals = {(i, editor.get(i).data["date_updated"]) for i in edited}
    assert finals <= set(versions)


def test_identical_stamps_across_pages_fall_back_to_skip_and_yield_each_once(
    emulator: CloseEmulator, close: CloseConnector
) -> None:
    """250 records sharing one µs stamp are each listed once, _skip staying inside the stamp."""
    emulator.add_opportunities(250, seed=9)
    shared = "2026-01-01T00:00:00.000000+00:00"
    tied = sorted(emulator.collections["opportunity"])[:250]
    for ident in tied:
        emulator.set_fields("opportunity", ident, {"date_updated": shared})
    listed = [r.external_id for p in close.scan() for r in p]
    assert len(listed) == len(set(listed)) == len(emulator.collections["opportunity"])
    skips = [q for q in opportunity_queries(emulator) if "_skip" in q]
    assert skips and all("date_updated__gte=2026-01-01T00%3A00%3A00" in q for q in skips)


def test_list_changed_returns_only_records_updated_since(
    emulator: CloseEmulator, close: CloseConnector
) -> None:
    """list_changed(since) yields exactly the records whose date_updated is ≥ since."""
    since = dt.datetime.now(dt.UTC)
    target = sorted(emulator.collections["opportunity"])[3]
    close.update(target, {"confidence": 77})
    listed = [r.external_id for p in close.list_changed(since) for r in p]
    assert listed == [target]


def test_scan_completes_with_ten_percent_injected_5xx(closing: list[Any]) -> None:
    """With 10 % of requests answered 500/502/503 the scan still lists every record."""
    emulator = CloseEmulator(seed=3, seed_opportunities=1000)
    connector = connect(emulator)
    closing.append(connector)
    control(emulator, "faults", {"error_rate": 0.1})
    listed = [r.external_id for p in connector.scan() for r in p]
    assert sorted(listed) == sorted(emulator.collections["opportunity"])
    by_status = emulator.request_counts()["by_status"]
    assert sum(by_status.get(s, 0) for s in ("500", "502", "503")) > 0


# -- round trips -----------------------------------------------------------------------------


def test_create_get_update_delete_round_trip(close: CloseConnector) -> None:
    """A created record reads back as written; an update changes only the fields sent; a
    delete answers and the record is gone (404 → NotFound)."""
    created = close.create(new_payload(close, "Round trip"), idempotency_key="k1")
    assert created.data[CLOSE_NAME_FIELD] == "Round trip"
    fetched = close.get(created.external_id)
    assert fetched.data == created.data
    updated = close.update(created.external_id, {"value": 990_000})
    assert updated.data["value"] == 990_000
    assert updated.data["confidence"] == 40
    assert updated.data[CLOSE_NAME_FIELD] == "Round trip"
    assert updated.modified > created.modified
    close.delete(created.external_id)
    with pytest.raises(NotFound, match="does not exist"):
        close.get(created.external_id)


def test_update_sends_only_the_given_fields(emulator: CloseEmulator, close: CloseConnector) -> None:
    """The PUT body holds exactly the fields passed (Close's PUT merges like a PATCH)."""
    sent: list[bytes] = []
    target = sorted(emulator.collections["opportunity"])[0]
    close.client.event_hooks["request"].append(lambda request: sent.append(request.read()))
    close.update(target, {"note": "only this"})
    assert [json.loads(body) for body in sent] == [{"note": "only this"}]


def test_create_without_lead_id_is_refused_before_sending(
    emulator: CloseEmulator, close: CloseConnector
) -> None:
    """A create without lead_id raises Rejected and sends nothing: Close would invent a lead."""
    payload = new_payload(close, "Orphan")
    del payload["lead_id"]
    leads_before = len(emulator.collections["lead"])
    with pytest.raises(Rejected) as caught:
        close.create(payload, idempotency_key="k2")
    assert "lead_id" in caught.value.field_errors
    assert not [r for r in emulator.requests if r["method"] == "POST"]
    assert len(emulator.collections["lead"]) == leads_before


def test_custom_field_keys_are_the_flat_custom_cf_keys(close: CloseConnector) -> None:
    """custom_fields() maps each field name to the flat custom.cf_… key records carry."""
    fields = close.custom_fields()
    assert fields["Opportunity Name"] == CLOSE_NAME_FIELD


def test_find_candidates_matches_the_name_field_after_a_time(close: CloseConnector) -> None:
    """find_candidates finds records by the configured name field created since a moment."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    created = close.create(new_payload(close, "Needle"), idempotency_key="k3")
    close.create(new_payload(close, "Other"), idempotency_key="k4")
    found = close.find_candidates("Needle", before)
    assert [r.external_id for r in found] == [created.external_id]
    assert close.find_candidates("Needle", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) == []


def test_find_candidates_of_any_name_holds_what_keep_accepts(close: CloseConnector) -> None:
    """A listing of any name returns only the records ``keep`` accepts, each asked once."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    made = [close.create(new_payload(close, f"Kept {n}"), idempotency_key=f"kk{n}") for n in "ab"]
    asked: list[str] = []

    def keep(record: VendorRecord) -> bool:
        asked.append(record.external_id)
        return record.external_id == made[1].external_id

    found = close.find_candidates(None, before, keep)
    assert [r.external_id for r in found] == [made[1].external_id]
    assert sorted(asked) == sorted(r.external_id for r in made)


# -- references ------------------------------------------------------------------------------


def test_references_are_leads_users_and_statuses_cached_per_run(
    emulator: CloseEmulator, close: CloseConnector
) -> None:
    """Companies are leads by name, owners users by e-mail, stages statuses by label with
    their type and pipeline; a second look-up sends no request."""
    companies = {r.key for r in close.references("company")}
    assert set(reference.COMPANIES) <= companies
    assert {r.key for r in close.references("owner")} == {e for _, e in reference.USERS}
    stages = {r.key: r for r in close.references("stage")}
    assert stages["Won"].extra["status_type"] == "won"
    assert stages["Proposal"].extra["status_type"] == "active"
    assert stages["Proposal"].extra["pipeline_id"].startswith("pipe_")
    sent = len(emulator.requests)
    close.references("company"), close.references("owner"), close.references("stage")
    assert len(emulator.requests) == sent


def test_create_reference_creates_a_lead(emulator: CloseEmulator, close: CloseConnector) -> None:
    """create_reference('company', name) posts a lead and it joins the cached references."""
    close.references("company")
    created = close.create_reference("company", "Brand New Co")
    assert created.id.startswith("lead_") and created.key == "Brand New Co"
    assert created.id in emulator.collections["lead"]
    assert created in close.references("company")


# -- delete feed -----------------------------------------------------------------------------


def test_deleted_since_reports_each_delete_once_across_event_pages(
    emulator: CloseEmulator, close: CloseConnector
) -> None:
    """60 deletes (more than one 50-event page) come back once each with their ids and times."""
    since = dt.datetime.now(dt.UTC)
    doomed = sorted(emulator.collections["opportunity"])[:25]
    emulator.add_opportunities(40, seed=11)
    doomed += sorted(set(emulator.collections["opportunity"]) - set(doomed))[:35]
    for ident in doomed:
        close.delete(ident)
    deletions = list(close.deleted_since(since))
    assert sorted(d.external_id for d in deletions) == sorted(doomed)
    assert all(d.at >= since for d in deletions)
    cursors = [
        r for r in emulator.requests if r["path"] == "/api/v1/event/" and "_cursor" in r["query"]
    ]
    assert cursors, "the feed was paged with _cursor"
    assert list(close.deleted_since(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))) == []


# -- the error table -------------------------------------------------------------------------


def test_wrong_api_key_is_auth_failed(emulator: CloseEmulator, closing: list[Any]) -> None:
    """A 401 becomes AuthFailed carrying Close's message."""
    connector = connect(emulator, api_key="wrong")
    closing.append(connector)
    with pytest.raises(AuthFailed, match="Invalid API key") as caught:
        connector.references("owner")
    assert caught.value.status == 401


def test_missing_api_key_fails_at_build_time() -> None:
    """A Close system without credentials.api_key cannot be built."""
    with pytest.raises(AuthFailed, match="api_key"):
        build_connector("close", close_config(api_key=""))


def test_validation_error_carries_close_message_and_field_errors(close: CloseConnector) -> None:
    """A 400 becomes Rejected with Close's own field-errors."""
    with pytest.raises(Rejected) as caught:
        close.create(new_payload(close, "Bad lead", lead_id="lead_missing"), idempotency_key="k5")
    assert caught.value.status == 400
    assert caught.value.field_errors == {"lead_id": "Object does not exist: 'lead_missing'"}
    assert "lead_id" in caught.value.message


def test_exhausted_429_is_rate_limited_with_close_rate_reset(emulator: CloseEmulator) -> None:
    """Under a limit the retries cannot outwait, the 429 surfaces with Close's rate_reset."""
    retry = RetryPolicy(attempts=2, wait_initial=0.001, wait_jitter=0, max_vendor_wait=0.01)
    connector = connect(emulator, retry=retry)
    control(emulator, "rate_limit", {"enabled": True, "rate": 0.01, "burst": 1})
    connector.references("owner")
    with pytest.raises(RateLimited) as caught:
        connector.references("stage")  # same endpoint group ("other"), bucket empty
    # ~100 s to the next token; the body's rate_reset is fractional while the ratelimit header
    # and Retry-After round it up to 100, so < 100 shows the body signal was the one read.
    assert caught.value.retry_after is not None and 90 < caught.value.retry_after < 100
    connector.close()


def test_persistent_5xx_is_retryable_after_bounded_attempts(
    emulator: CloseEmulator, close: CloseConnector
) -> None:
    """A GET failing every time raises Retryable after exactly the policy's attempts."""
    control(emulator, "faults", {"error_rate": 1.0, "statuses": [503]})
    with pytest.raises(Retryable) as caught:
        close.get("oppo_any")
    assert caught.value.status == 503
    assert len(emulator.requests) == FAST_RETRY.attempts


def test_timeouts_are_retryable_on_reads_and_outcome_unknown_on_creates(
    emulator: CloseEmulator, close: CloseConnector
) -> None:
    """A read that never gets an answer is Retryable; a create is OutcomeUnknown, sent once."""
    payload = new_payload(close, "Timeout")
    control(emulator, "faults", {"timeout_rate": 1.0})
    with pytest.raises(Retryable) as read:
        close.get("oppo_any")
    assert not isinstance(read.value, OutcomeUnknown)
    sent = len(emulator.requests)
    with pytest.raises(OutcomeUnknown):
        close.create(payload, idempotency_key="k6")
    assert len(emulator.requests) == sent + 1


def test_fail_after_commit_create_is_outcome_unknown_and_found_again(
    emulator: CloseEmulator, close: CloseConnector
) -> None:
    """A create applied but answered 502/dropped raises OutcomeUnknown, is sent once, and is
    then found by find_candidates, so the engine adopts it instead of creating a duplicate."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    payloads = [new_payload(close, f"Lost answer {n}") for n in range(4)]
    control(emulator, "faults", {"fail_after_commit_rate": 1.0})
    for n, payload in enumerate(payloads):
        with pytest.raises(OutcomeUnknown):
            close.create(payload, idempotency_key=f"k-{n}")
    control(emulator, "faults", {})
    assert len([r for r in emulator.requests if r["method"] == "POST"]) == 4
    for n in range(4):
        assert len(close.find_candidates(f"Lost answer {n}", since)) == 1


def test_since_is_sent_in_close_format() -> None:
    """Stamps go to Close as µs ``+00:00`` (naive datetimes are taken as UTC)."""
    assert format_close(dt.datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05.000000+00:00"


def test_the_organization_currency_is_read_once_from_the_api(
    close: CloseConnector, emulator: CloseEmulator
) -> None:
    """``account_currency`` follows ``/me/`` to ``/organization/{id}/`` and keeps the answer:
    a second call sends no request."""
    emulator.currency = "EUR"
    assert close.account_currency() == "EUR"
    paths = [r["path"] for r in emulator.requests]
    assert paths[-2:] == ["/api/v1/me/", f"/api/v1/organization/{emulator.organization_id}/"]
    before = len(emulator.requests)
    assert close.account_currency() == "EUR"
    assert len(emulator.requests) == before
