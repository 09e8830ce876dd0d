"""A deal that bridges two records: its keys match one record by one id and another by
another. Known bug (found in issue 25's work, not fixed yet): identity follows the first key
that hits, so which deals end up together depends on the order the systems are first read.

The emulators' fixtures hold such deals: Truto's Salesforce deal S and HubSpot's deal H are
captured as two records when they are read first (neither carries the other's id); Ruddr's
deal carries both S (``salesforceId``) and H (``hubspotId``). Read Ruddr first (config order,
what ``run --once`` does) and one record gathers all three; read Truto and HubSpot first (the
order a distributed first load may take) and Ruddr's deal joins H's record while S's record
stays apart, so both are created everywhere: three duplicate deals in every system. The fix
this asks for: a bridging deal folds the two records into one (``records.absorb``) when that
cannot merge two real deals — no system holds both, and nothing of the folded one was sent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sync.engine.cycle import poll
from tests.e2e.conftest import make_world

pytestmark = pytest.mark.slow


def names_held_twice(deals: list[dict[str, object]]) -> list[object]:
    names = Counter(deal.get("name") for deal in deals)
    return [name for name, count in names.items() if count > 1]


@pytest.mark.xfail(strict=True, reason="identity is order-dependent for bridging deals")
def test_a_first_load_read_in_any_order_holds_each_deal_once(tmp_path: Path) -> None:
    """Truto and HubSpot read before Ruddr: every system still holds each deal once."""
    world = make_world(tmp_path)
    try:
        for system in ("truto_salesforce", "hubspot", "close", "parsalink", "salesforce"):
            poll(world.engine, system)
        world.converge(cycles=2)
        assert not names_held_twice(world.users["ruddr"].all())
        assert not names_held_twice(world.users["parsalink"].all())
    finally:
        world.close()
