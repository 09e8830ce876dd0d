"""A lost create's recovery costs a few requests, however many deals the vendor holds
(issue 25): by name where the vendor searches names, by the other fields where it filters on
them, else one listing shared by the drain; summaries are read in full only when they could be
ours. (Correctness of what is adopted: ``test_lost_answers.py``.)"""

from __future__ import annotations

import re

import pytest

from sync.engine.cycle import poll
from sync.engine.push import drain
from tests.e2e.conftest import World
from tests.e2e.test_scenarios import count_named

pytestmark = pytest.mark.slow

CROWD = 120  # deals made there after our intents: all inside the recovery's window


DEALS = re.compile(r"^/opportunit(y|ies)(/[^/]+)?/?$")  # the list, one deal; not /meta/list


def deal_requests(world: World, system: str) -> list[dict[str, object]]:
    """The requests on the deals' own routes (references and other routes left out)."""
    emulator = world.emulators[system]
    return [
        r for r in emulator.requests if DEALS.match(str(r["path"]).removeprefix(emulator.prefix))
    ]


def owe_creates(world: World, target: str, names: list[str], *, sent: bool) -> None:
    """Creates of ``names`` owed to ``target``, whose process died after journaling their
    intents (``sent``: after the vendor made the deals; else before any request left)."""
    origin = "ruddr" if target == "close" else "close"
    world.cycle()
    for name in names:
        world.users[origin].create(name)
    poll(world.engine, origin)
    world.crash_mid_push(target, sent=sent)


def test_parsalink_proves_a_create_absent_without_reading_every_deal(world: World) -> None:
    """Three creates to ParsaLink died before they were sent, and a user then made 120 deals
    there from the same template (every field but the name equal). Each retry asks by name,
    then by account, stage and value (the summaries show none was renamed from ours: no full
    read), then creates: a few requests each — not one GET per deal created since."""
    names = [f"Absent in ParsaLink {n}" for n in range(3)]
    owe_creates(world, "parsalink", names, sent=False)
    for n in range(CROWD):
        world.users["parsalink"].create(f"Template deal {n}")
    world.time_passes()
    world.reset_calls()
    counts = drain(world.engine, "parsalink")
    assert counts["created"] == 3, counts.values
    calls = deal_requests(world, "parsalink")
    gets = [r for r in calls if r["method"] == "GET" and not str(r["path"]).endswith("ies/")]
    assert not gets, "no deal read in full"
    assert len(calls) <= 3 * (1 + 2 + 1), calls  # search, the filtered list's 2 pages, POST
    for name in names:
        assert count_named(world, "parsalink", name) == 1


@pytest.mark.parametrize("target", ["ruddr", "close", "truto_salesforce"])
def test_recoveries_of_one_drain_share_one_listing(world: World, target: str) -> None:
    """Three creates whose process died after the vendor made the deals: the drain's three
    recoveries find them in one listing of the deals created since, and create nothing."""
    names = [f"Shared listing {target} {n}" for n in range(3)]
    owe_creates(world, target, names, sent=True)
    world.time_passes()
    world.reset_calls()
    counts = drain(world.engine, target)
    assert counts["adopted"] == 3, counts.values
    calls = deal_requests(world, target)
    assert [r["method"] for r in calls] == ["GET"], calls
    for name in names:
        assert count_named(world, target, name) == 1
