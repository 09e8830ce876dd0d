"""``verify`` on a summary listing (ParsaLink) need not read every deal in full (issue 25): it
trusts stamps a full read confirmed, or samples them, says which it did — and still catches
an edit the summary shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.engine.capture import capture
from sync.engine.verify import verify
from tests.e2e.conftest import World, single_system

DEALS = 12


@pytest.fixture
def confirmed(tmp_path: Path) -> Iterator[World]:
    """ParsaLink alone, loaded, every deal's stamp confirmed by a full read (rechecks)."""
    world = single_system(tmp_path, "parsalink", seed_opportunities=DEALS)
    capture(world.engine, "parsalink")  # the load
    world.emulators["parsalink"].clock.advance(5)
    capture(world.engine, "parsalink")  # the rechecks confirm every stamp
    yield world
    world.engine.close()


def gets(world: World) -> int:
    prefix = world.emulators["parsalink"].prefix
    return sum(
        1
        for r in world.emulators["parsalink"].requests
        if r["method"] == "GET" and str(r["path"]).removeprefix(prefix).count("/") == 3
    )


def test_full_reads_every_deal_and_says_so(confirmed: World) -> None:
    confirmed.reset_calls()
    check = verify(confirmed.engine, ["parsalink"]).systems["parsalink"]
    assert check.clean
    assert (check.summaries, check.read_in_full, check.trusted) == ("full", check.linked, 0)
    assert gets(confirmed) == check.linked


def test_trust_compares_confirmed_deals_without_reading_them(confirmed: World) -> None:
    confirmed.reset_calls()
    check = verify(confirmed.engine, ["parsalink"], "trust").systems["parsalink"]
    assert check.clean
    assert (check.summaries, check.read_in_full, check.trusted) == ("trust", 0, check.linked)
    assert gets(confirmed) == 0


def test_trust_still_catches_an_edit_the_summary_shows(confirmed: World) -> None:
    """A deal edited there since our last read has another stamp: read in full, and drifting."""
    deal = str(confirmed.users["parsalink"].all()[0]["id"])
    confirmed.users["parsalink"].edit(deal, value=98765.0)
    check = verify(confirmed.engine, ["parsalink"], "trust").systems["parsalink"]
    assert check.read_in_full == 1 and check.trusted == check.linked - 1
    assert [(d.external_id, d.field) for d in check.drift] == [(deal, "amount")]


def test_a_sample_reads_some_trusted_deals_in_full(confirmed: World) -> None:
    check = verify(confirmed.engine, ["parsalink"], DEALS * 100).systems["parsalink"]
    assert check.summaries == f"sample of {DEALS * 100}"
    assert check.read_in_full == check.linked, "a sample larger than the system reads them all"
    check = verify(confirmed.engine, ["parsalink"], 0).systems["parsalink"]
    assert check.read_in_full == 0 and check.clean
