"""sync.metrics beyond the counters: a scrape survives a store that cannot answer, vendor
budgets come from each vendor's own rate-limit headers, latency and propagation are observed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sync import metrics
from sync.connectors.http.stats import Budget, RequestStats, budget_from_headers, sforce_usage


def test_a_store_that_cannot_answer_leaves_the_rest_of_the_scrape_standing() -> None:
    """The store gauges' question fails: the scrape still renders, with crmsync_store_up 0."""

    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("relation cursors does not exist")

    registry = CollectorRegistry()
    registry.register(metrics.StoreCollector(broken))
    assert registry.get_sample_value("crmsync_store_up") == 0.0
    healthy = CollectorRegistry()
    row = {"system": "close", "health": "stale", "pending": 2, "conflicts": 0, "dead_letters": 1}
    healthy.register(metrics.StoreCollector(lambda: [row]))
    text = generate_latest(healthy).decode()
    assert "crmsync_store_up 1.0" in text
    assert 'crmsync_system_health{health="stale",system="close"} 1.0' in text


@pytest.mark.parametrize(
    ("headers", "budget"),
    [
        ({"ratelimit": "limit=160, remaining=40, reset=8"}, Budget(40, 160, 8)),  # Close
        (  # Truto: the reset is a delay in seconds
            {"RateLimit-Limit": "10", "RateLimit-Remaining": "1", "RateLimit-Reset": "3"},
            Budget(1, 10, 3),
        ),
        ({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99"}, Budget(99, 100)),
        ({"Sforce-Limit-Info": "api-usage=18/15000"}, Budget(14982, 15000, window="day")),
        (  # Salesforce with a connected app's own limit after the org's: the org's counts
            {"Sforce-Limit-Info": "per-app-api-usage=17/250(appName=x); api-usage=25/5000"},
            Budget(4975, 5000, window="day"),
        ),
        (  # HubSpot: the burst window when sent
            {
                "X-HubSpot-RateLimit-Max": "190",
                "X-HubSpot-RateLimit-Remaining": "189",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
            Budget(189, 190, window="10 s"),
        ),
        (
            {"X-HubSpot-RateLimit-Daily": "650000", "X-HubSpot-RateLimit-Daily-Remaining": "5"},
            Budget(5, 650000, window="day"),
        ),
        ({"X-RateLimit-Limit": "0", "X-RateLimit-Remaining": "0"}, None),
        ({"content-type": "application/json"}, None),
    ],
)
def test_the_budget_comes_from_the_vendors_own_headers(
    headers: dict[str, str], budget: Budget | None
) -> None:
    assert budget_from_headers(headers) == budget


def test_sforce_limit_info_names_the_orgs_api_usage_not_a_connected_apps() -> None:
    """The one parser of Sforce-Limit-Info (the budget's and the Salesforce connector's
    reserve): the org's api-usage wherever it stands, never a per-app figure."""
    assert sforce_usage("api-usage=25/5000; per-app-api-usage=17/250(appName=x)") == (25, 5000)
    assert sforce_usage("per-app-api-usage=17/250(appName=x)") is None


def test_a_unix_reset_becomes_the_seconds_left_and_the_latest_budget_is_kept() -> None:
    """ParsaLink's ``X-RateLimit-Reset`` is a Unix second: it is read as the time left; the
    stats keep each system's latest budget for the store (the admin is another process)."""
    soon = str(int(time.time()) + 30)
    headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": soon}
    stats = RequestStats()
    stats.record("pl", "get", 200, 0.1, headers)
    stats.record("pl", "get", 200, 0.1, {"content-type": "application/json"})
    seen = stats.latest_budget("pl")
    assert seen is not None and (seen.budget.remaining, seen.budget.limit) == (7, 100)
    assert seen.budget.reset_in is not None and 0 < seen.budget.reset_in <= 31
    assert stats.latest_budget("other") is None


def test_each_attempt_feeds_the_latency_histogram_and_the_budget_gauge() -> None:
    """An attempt recorded with its duration and headers lands in the histogram (by system and
    method) and sets the budget ratio; a change's push lands in the propagation histogram."""
    stats = RequestStats()
    stats.observers.append(metrics._observe_request)
    name = "crmsync_vendor_request_duration_seconds_count"
    before = metrics.REGISTRY.get_sample_value(name, {"system": "t1", "method": "GET"}) or 0
    stats.record("t1", "get", 200, 0.3, {"ratelimit": "limit=100, remaining=25, reset=1"})
    assert metrics.REGISTRY.get_sample_value(name, {"system": "t1", "method": "GET"}) == before + 1
    assert (
        metrics.REGISTRY.get_sample_value("crmsync_vendor_budget_ratio", {"system": "t1"}) == 0.25
    )
    lag = "crmsync_propagation_lag_seconds_bucket"
    was = metrics.REGISTRY.get_sample_value(lag, {"system": "t1", "le": "15.0"}) or 0
    metrics.observe_propagation("t1", 12.0)
    assert metrics.REGISTRY.get_sample_value(lag, {"system": "t1", "le": "15.0"}) == was + 1
