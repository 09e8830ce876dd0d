"""A ParsaLink edit made in the very second of our own write there (ParsaLink stamps whole
seconds, and its list shows neither the description nor a finer stamp) still reaches every
other system — through the vendors' own APIs, with the shipped config.yaml."""

from __future__ import annotations

import datetime as dt

import pytest

from sync.emulators.base import Clock
from sync.timefmt import parse_timestamp
from tests.e2e.conftest import World
from tests.e2e.test_scenarios import link_of, record_of

pytestmark = pytest.mark.slow


def _start_of_a_second(clock: Clock) -> None:
    fraction = clock.peek().microsecond / 1e6
    clock.advance(1.0 - fraction + 0.005)


def _our_write_then_their_edit_in_its_second(world: World, deal: str, record_id: str) -> str:
    """A Ruddr edit pushed to ParsaLink, then a person's description edit there, until both
    land in one ParsaLink second (a cycle usually takes well under a second; retried if not)."""
    parsalink = world.users["parsalink"]
    for attempt in range(5):
        _start_of_a_second(world.emulators["parsalink"].clock)
        world.users["ruddr"].edit(deal, amount=10_000 + attempt)
        world.cycle()
        ours = link_of(world, "parsalink", record_id)
        theirs = parsalink.edit(ours.external_id, description=f"Written in ParsaLink {attempt}")
        assert ours.vendor_modified is not None
        if parse_timestamp(theirs["updatedAt"]) == ours.vendor_modified.replace(tzinfo=dt.UTC):
            return str(theirs["description"])
    pytest.fail("could not place a ParsaLink edit in the second of our write in 5 tries")


def test_an_edit_in_the_second_of_our_write_is_not_lost(world: World) -> None:
    deal = world.users["ruddr"].create("Same second")
    assert world.converge(cycles=2).clean
    record_id = record_of(world, "ruddr", deal)
    written = _our_write_then_their_edit_in_its_second(world, deal, record_id)
    world.emulators["parsalink"].clock.advance(5)  # the second closes; the next scan rechecks
    assert world.converge(cycles=2).clean
    assert world.users["ruddr"].get(deal)["description"] == written
    close_id = link_of(world, "close", record_id).external_id
    assert world.users["close"].get(close_id)["note"] == written  # Close calls it note
