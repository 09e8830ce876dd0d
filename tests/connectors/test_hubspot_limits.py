"""HubSpot's allowances as its answers announce them (``X-HubSpot-RateLimit-*``): they size
and slow the limiter, and a nearly spent day pauses the system (sync.connectors.hubspot_limits)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sync.config import RateLimitConfig, SystemConfig
from sync.connectors import build_connector
from sync.connectors.errors import RateLimited
from sync.connectors.hubspot import HubSpotConnector
from sync.connectors.ratelimit import TokenBucket
from sync.emulators.hubspot import TOKEN, HubSpotEmulator

from .conftest import FAST_RETRY


@pytest.fixture
def emulator() -> HubSpotEmulator:
    made = HubSpotEmulator(seed=6, seed_opportunities=5, rate_limited=True)
    made.index_lag = 0
    return made


def connect(emulator: HubSpotEmulator, limiter: TokenBucket, **options: object) -> HubSpotConnector:
    cfg = SystemConfig(
        type="hubspot",
        base_url="https://api.hubapi.com",
        credentials={"token": TOKEN},
        rate_limit=RateLimitConfig(rate=19, burst=190),  # the shipped file's Professional
        options=dict(options),
    )
    built = build_connector(
        "hubspot", cfg, transport=emulator.transport(), limiter=limiter, retry=FAST_RETRY
    )
    assert isinstance(built, HubSpotConnector)
    return built


@pytest.fixture
def limiter() -> TokenBucket:
    bucket = TokenBucket()
    bucket.configure("hubspot", 19, 190)
    return bucket


@pytest.fixture
def connector(emulator: HubSpotEmulator, limiter: TokenBucket) -> Iterator[HubSpotConnector]:
    built = connect(emulator, limiter)
    yield built
    built.close()


def control(emulator: HubSpotEmulator, name: str, body: dict[str, object]) -> None:
    with httpx.Client(transport=emulator.transport(), base_url="http://hubspot.test") as client:
        client.post(f"/_emulator/{name}", json=body).raise_for_status()


def test_a_starter_portal_sizes_the_limiter_to_its_window(
    emulator: HubSpotEmulator, connector: HubSpotConnector, limiter: TokenBucket
) -> None:
    """Config says Professional (19/s); the portal answers Max 100 per 10,000 ms (Starter):
    from the first answer on the shared limiter runs at 10/s."""
    control(emulator, "rate_limit", {"enabled": True, "rate": 10, "burst": 100})
    connector.get_json("/crm/v3/pipelines/deals")
    assert limiter.rate("hubspot") == pytest.approx(10.0)


def test_a_window_nearly_spent_holds_every_sender(
    emulator: HubSpotEmulator, connector: HubSpotConnector, limiter: TokenBucket
) -> None:
    """The portal's other apps spend the same window: when ``-Remaining`` falls under a tenth
    of ``-Max``, the limiter holds every sender off until the window has refilled that far —
    no 429 is needed to slow down."""
    control(emulator, "rate_limit", {"enabled": True, "rate": 1, "burst": 20})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(transport=emulator.transport(), base_url="http://hubspot.test") as other:
        for _ in range(18):  # another app of the portal: 2 of 20 left
            other.get("/crm/v3/pipelines/deals", headers=headers).raise_for_status()
    assert limiter.delay("hubspot") == 0
    connector.get_json("/crm/v3/pipelines/deals")  # answers 1 left: under the mark of 2
    assert limiter.delay("hubspot") >= 0.5  # (2 - 1) requests at 20 per 10 s


def test_a_nearly_spent_day_pauses_the_system_until_usage_falls(
    emulator: HubSpotEmulator, limiter: TokenBucket
) -> None:
    """With 85 % of the portal's daily allowance used and 20 % kept for its other tools,
    every call is RateLimited saying so; a probe after the new day resumes it."""
    connector = connect(emulator, limiter, api_reserve=0.2)
    control(emulator, "account", {"dailyLimit": 1000, "dailyUsed": 850})
    connector.get_json("/crm/v3/pipelines/deals")  # learns 851 of 1,000
    assert connector.pacing.daily.usage == (851, 1000)
    with pytest.raises(RateLimited, match="of the portal's 1,000 daily API requests are used"):
        connector.get_json("/crm/v3/pipelines/deals")
    control(emulator, "account", {"dailyUsed": 0})
    connector.options["reserve_probe_seconds"] = 0  # the next call is the probe
    connector.get_json("/crm/v3/pipelines/deals")
    connector.get_json("/crm/v3/pipelines/deals")
    assert connector.pacing.daily.usage == (2, 1000)
