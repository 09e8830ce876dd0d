"""The HubSpot load benchmark at a small size: batches of 100, the ideal met, a quiet cycle."""

from __future__ import annotations

import pytest

from bench.hubspot_load import run

pytestmark = pytest.mark.slow


def test_a_load_into_hubspot_writes_a_batch_per_100_deals() -> None:
    """250 Ruddr deals reach HubSpot in ⌈252 ÷ 100⌉ batch creates, within 1.10 × the ideal,
    and the next cycle writes nothing."""
    result = run(250)
    assert result["created"] == 252  # the 5 shared fixture deals, 3 already in HubSpot
    assert result["by_route"]["POST /crm/v3/objects/deals/batch/create"] == 3
    assert result["requests"] <= 1.10 * result["ideal"]
    assert result["noop_writes"] == 0
