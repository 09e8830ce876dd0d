"""Capture of a summary listing with whole-second stamps (ParsaLink, seed 003): an edit in the
same second as the shadow's stamp is caught by comparing the summary's fields with the shadow,
until a scan has confirmed the stamp after its second closed (``Link.confirmed_at``); from then
on an equal stamp is trusted and the compare is skipped — a no-op scan maps nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from sync.config import load_config
from sync.emulators.base import Clock
from sync.engine.capture import capture
from sync.store.models import Link, Record
from tests.e2e.conftest import ROOT, World, single_system


@pytest.fixture
def parsalink(tmp_path: Path) -> Iterator[World]:
    world = single_system(tmp_path, "parsalink", seed_opportunities=5)
    capture(world.engine, "parsalink")  # the load: every deal linked
    yield world
    world.engine.close()


def start_of_a_second(clock: Clock) -> None:
    """Move the vendor clock to just past a whole second: the test's writes and reads then
    share that second (a capture of a few deals in-process takes well under a second)."""
    fraction = clock.peek().microsecond / 1e6
    clock.advance(1.0 - fraction + 0.005)


def link_of(world: World, external_id: str) -> Link:
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.system == "parsalink", Link.external_id == external_id)
        ).one()
    return link


def amount_of(world: World, external_id: str) -> float:
    with world.engine.session() as session:
        record = session.get(Record, link_of(world, external_id).record_id)
        assert record is not None
        return float(record.fields["amount"])


def set_shadow_amount(world: World, external_id: str, amount: float) -> None:
    """Make the store's shadow disagree with the vendor without touching the vendor's stamp."""
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.system == "parsalink", Link.external_id == external_id)
        ).one()
        link.shadow = {**link.shadow, "amount": amount}
        session.add(link)
        session.commit()


def first_deal(world: World) -> str:
    return str(world.users["parsalink"].client.get("/opportunities/").json()["results"][0]["id"])


def test_an_edit_in_the_same_second_as_the_shadow_is_caught(parsalink: World) -> None:
    """Edit, capture, edit again in the same second: the stamp has not moved, the summary's
    value has, and capture takes it."""
    user, deal = parsalink.users["parsalink"], first_deal(parsalink)
    start_of_a_second(parsalink.emulators["parsalink"].clock)
    first = user.edit(deal, value=111.0)
    capture(parsalink.engine, "parsalink")
    second = user.edit(deal, value=222.0)
    assert first["updatedAt"] == second["updatedAt"], "the test needs both edits in one second"
    counts = capture(parsalink.engine, "parsalink")
    assert counts["changed"] == 1
    assert amount_of(parsalink, deal) == 222.0


def test_a_scan_in_the_stamps_own_second_confirms_nothing(parsalink: World) -> None:
    """A scan that may have run before the stamp's second closed leaves the stamp unconfirmed
    (confirmed before stamp + 2 s): the next scan compares the summary again."""
    user, deal = parsalink.users["parsalink"], first_deal(parsalink)
    start_of_a_second(parsalink.emulators["parsalink"].clock)
    stamp = dt.datetime.fromisoformat(user.edit(deal, value=333.0)["updatedAt"])
    capture(parsalink.engine, "parsalink")
    capture(parsalink.engine, "parsalink")
    confirmed = link_of(parsalink, deal).confirmed_at
    assert confirmed is None or confirmed < stamp + dt.timedelta(seconds=2)


def test_a_settled_stamp_is_confirmed_and_then_trusted(parsalink: World) -> None:
    """Seconds after the last edit, a scan confirms every equal summary; from then on an equal
    stamp is trusted without comparing: a shadow we tamper with behind the vendor's back
    is not noticed (which proves the compare is skipped), while the same tamper on an
    unconfirmed link is."""
    parsalink.emulators["parsalink"].clock.advance(5)
    capture(parsalink.engine, "parsalink")
    deal = first_deal(parsalink)
    link = link_of(parsalink, deal)
    assert link.confirmed_at is not None and link.vendor_modified is not None
    assert link.confirmed_at >= link.vendor_modified + dt.timedelta(seconds=2)

    set_shadow_amount(parsalink, deal, -1.0)
    counts = capture(parsalink.engine, "parsalink")
    assert counts["changed"] == 0 and counts["fetched_full"] == 0

    with parsalink.engine.session() as session:  # forget the confirmation: compared again
        stored = session.get(Link, link.id)
        assert stored is not None
        stored.confirmed_at = None
        session.add(stored)
        session.commit()
    counts = capture(parsalink.engine, "parsalink")
    assert counts["fetched_full"] == 1


def test_a_confirmed_deal_edited_later_is_captured(parsalink: World) -> None:
    """Confirmation never hides a real edit: a later edit carries a later stamp."""
    user, deal = parsalink.users["parsalink"], first_deal(parsalink)
    parsalink.emulators["parsalink"].clock.advance(5)
    capture(parsalink.engine, "parsalink")
    assert link_of(parsalink, deal).confirmed_at is not None
    user.edit(deal, value=444.0)
    counts = capture(parsalink.engine, "parsalink")
    assert counts["changed"] == 1
    assert amount_of(parsalink, deal) == 444.0


def description_of(world: World, external_id: str) -> object:
    with world.engine.session() as session:
        record = session.get(Record, link_of(world, external_id).record_id)
        assert record is not None
        return record.fields.get("description")


def test_an_edit_the_summary_cannot_show_made_in_the_second_of_the_last_read_is_caught(
    parsalink: World,
) -> None:
    """The list lacks the description: an edit of it in the very second of our last read (or
    write) leaves stamp and summary as they were. Once that second has closed, the next scan
    reads the deal in full before it trusts the stamp — the edit is taken, not lost."""
    user, deal = parsalink.users["parsalink"], first_deal(parsalink)
    clock = parsalink.emulators["parsalink"].clock
    start_of_a_second(clock)
    first = user.edit(deal, value=555.0)
    capture(parsalink.engine, "parsalink")  # reads it in full: the shadow holds stamp S
    second = user.edit(deal, description="added in the same second")
    assert first["updatedAt"] == second["updatedAt"], "the test needs both edits in one second"
    clock.advance(5)
    counts = capture(parsalink.engine, "parsalink")
    assert counts["changed"] == 1 and counts["rechecked"] >= 1
    assert description_of(parsalink, deal) == "added in the same second"
    link = link_of(parsalink, deal)
    assert link.confirmed_at is not None and link.vendor_modified is not None
    assert link.confirmed_at >= link.vendor_modified + dt.timedelta(seconds=2)
    again = capture(parsalink.engine, "parsalink")  # confirmed: trusted, nothing read in full
    assert again["fetched_full"] == 0 and again["rechecked"] == 0


def test_a_deal_read_in_full_after_its_second_closed_is_confirmed_by_that_read(
    parsalink: World,
) -> None:
    """A person's edit seconds before our scan: the scan reads the deal in full because its
    stamp moved, and that read — made after the stamp's second closed — already confirms it:
    no second read of it at the next scan."""
    user, deal = parsalink.users["parsalink"], first_deal(parsalink)
    clock = parsalink.emulators["parsalink"].clock
    clock.advance(5)
    capture(parsalink.engine, "parsalink")  # confirms the load
    user.edit(deal, value=777.0)
    clock.advance(5)
    counts = capture(parsalink.engine, "parsalink")
    assert counts["fetched_full"] == 1 and counts["changed"] == 1
    again = capture(parsalink.engine, "parsalink")
    assert again["fetched_full"] == 0


def test_rechecks_are_bounded_per_scan(tmp_path: Path) -> None:
    """Reading every unconfirmed deal in full at once would cost a GET per deal written (a
    load of 2,000 deals: 2,000 GETs at 100 a minute): a scan rechecks at most its budget
    (``engine.budget``: a share of ParsaLink's allowance per poll); the rest wait for the next
    scans, their summaries compared meanwhile."""
    from sync.engine.budget import rechecks_per_scan

    config = load_config(ROOT / "config.yaml", env={})
    per_scan = rechecks_per_scan(config.systems["parsalink"], owed=0)
    assert per_scan == 22  # a quarter of 1.5 requests/s over the 60 s poll
    world = single_system(tmp_path, "parsalink", seed_opportunities=per_scan + 5)
    user, clock = world.users["parsalink"], world.emulators["parsalink"].clock
    try:
        capture(world.engine, "parsalink")  # the load
        start_of_a_second(clock)
        listing = user.client.get("/opportunities/", params={"limit": 100}).json()["results"]
        for deal in listing:  # every deal edited, and read in full, within one second
            user.edit(str(deal["id"]), value=1000.0)
        assert capture(world.engine, "parsalink")["changed"] == per_scan + 5
        clock.advance(5)
        seen = [capture(world.engine, "parsalink")["rechecked"] for _ in range(3)]
    finally:
        world.engine.close()
    assert seen == [per_scan, 5, 0]
