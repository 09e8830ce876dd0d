"""``verify`` on a summary listing (ParsaLink) need not read every deal in full (issue 25): it
trusts stamps a full read confirmed or our own write's answer carried, or samples them, says
which it did — and still catches an edit the summary shows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from sync.engine.capture import capture
from sync.engine.push import drain
from sync.engine.verify import verify
from sync.store.models import Link, Record
from tests.e2e.conftest import World, make_world, single_system
from tests.engine.test_capture_summary import start_of_a_second

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


# -- deals we wrote there: trusted on our own write's stamp ---------------------------------

OURS = 4


@pytest.fixture
def written(tmp_path: Path) -> Iterator[World]:
    """Ruddr and ParsaLink, OURS new Ruddr deals captured and created in ParsaLink by our push
    just now: their stamps are our create answers', none confirmed by a later full read."""
    config = make_world(tmp_path / "probe").config
    pair = ("ruddr", "parsalink")
    world = make_world(
        tmp_path,
        overrides={
            "systems": {name: config.systems[name] for name in pair},
            "mapping": {name: config.mapping[name] for name in pair},
        },
    )
    world.cycle()  # the seeded deals, linked both ways
    for n in range(OURS):
        world.users["ruddr"].create(f"Written deal {n}")
    capture(world.engine, "ruddr")
    start_of_a_second(world.emulators["parsalink"].clock)
    assert drain(world.engine, "parsalink")["created"] == OURS
    yield world
    world.engine.close()


def ours(world: World) -> dict[str, Link]:
    """The ParsaLink links of the deals our push created there (the seeded Ruddr deals the
    first cycle brought, and the OURS made just now), by external id."""
    with world.engine.read_session() as session:
        links = session.exec(select(Link).where(Link.system == "parsalink")).all()
    return {link.external_id: link for link in links if link.written_stamp is not None}


def just_made(world: World) -> dict[str, Link]:
    """Our OURS new deals' links: created in the current second."""
    return {
        ext: link for ext, link in ours(world).items() if link.shadow["name"].startswith("Written")
    }


def test_trust_compares_deals_our_write_answered_without_reading_them(written: World) -> None:
    """Right after our creates no stamp of theirs is confirmed (ParsaLink stamps whole
    seconds), yet each summary carries the stamp our create's answer did, with the fields it
    answered: trusted on our write, counted apart; the rest are read in full."""
    mine = ours(written)
    assert len(just_made(written)) == OURS
    assert all(link.confirmed_at is None for link in mine.values())
    written.reset_calls()
    check = verify(written.engine, ["parsalink"], "trust").systems["parsalink"]
    assert check.clean
    assert check.trusted_by == {"written": len(mine)}
    assert check.read_in_full + check.trusted == check.linked
    assert gets(written) == check.read_in_full
    full = verify(written.engine, ["parsalink"]).systems["parsalink"]
    assert full.clean and full.trusted == 0 and full.read_in_full == full.linked


def test_a_sample_reads_written_deals_too(written: World) -> None:
    """A sample draws among every trusted deal, ours included."""
    check = verify(written.engine, ["parsalink"], 1000).systems["parsalink"]
    assert check.clean and check.trusted == 0 and check.read_in_full == check.linked


def same_second_edit(world: World, **fields: object) -> str:
    """A person edits one of our new deals in the second our create answered."""
    deal, link = next(iter(just_made(world).items()))
    edited = world.users["parsalink"].edit(deal, **fields)
    stamp = dt.datetime.fromisoformat(edited["updatedAt"])
    assert stamp == link.written_stamp, "the test needs the edit in our write's second"
    return deal


def test_a_same_second_edit_of_a_summary_field_is_caught(written: World) -> None:
    """The edit leaves the stamp as our answer had it, but the summary shows the new value:
    not trusted, read in full, and reported as drift."""
    mine = len(ours(written))
    deal = same_second_edit(written, value=4242.0)
    check = verify(written.engine, ["parsalink"], "trust").systems["parsalink"]
    assert check.trusted_by["written"] == mine - 1 and check.read_in_full >= 1
    assert [(d.external_id, d.field) for d in check.drift] == [(deal, "amount")]


def test_a_same_second_edit_the_summary_lacks_is_the_documented_risk(written: World) -> None:
    """The summary lacks the description: an edit of it in our write's second leaves stamp and
    summary as our answer had them, so ``trust`` does not see it (engine.summaries says so) —
    ``full`` does, and capture's recheck takes it once the second has closed: the store then
    holds the edit and the stamp is confirmed."""
    mine = len(ours(written))
    deal = same_second_edit(written, description="typed in our second")
    check = verify(written.engine, ["parsalink"], "trust").systems["parsalink"]
    assert check.clean and check.trusted_by["written"] == mine, "the risk, as documented"
    full = verify(written.engine, ["parsalink"]).systems["parsalink"]
    assert [(d.external_id, d.field) for d in full.drift] == [(deal, "description")]
    written.emulators["parsalink"].clock.advance(5)
    assert capture(written.engine, "parsalink")["rechecked"] >= 1
    with written.engine.read_session() as session:
        link = session.exec(select(Link).where(Link.external_id == deal)).one()
        record = session.get(Record, link.record_id)
    assert record is not None and record.fields["description"] == "typed in our second"
    assert link.confirmed_at is not None
    after = verify(written.engine, ["parsalink"], "trust").systems["parsalink"]
    assert after.clean and after.trusted_by["confirmed"] >= 1


def test_a_later_edit_moves_the_stamp_off_ours(written: World) -> None:
    """A person's edit in a later second, of a field the summary lacks, gives the deal a stamp
    that is not our write's: read in full, and reported — before capture took it, and after
    capture took it the stamp is the read's, not ours, so it is still not trusted as written."""
    deal = next(iter(just_made(written)))
    written.emulators["parsalink"].clock.advance(2)
    written.users["parsalink"].edit(deal, description="typed a second later")
    check = verify(written.engine, ["parsalink"], "trust").systems["parsalink"]
    assert [(d.external_id, d.field) for d in check.drift] == [(deal, "description")]
    assert check.read_in_full == 1
    capture(written.engine, "parsalink")
    link = ours(written)[deal]
    assert link.vendor_modified != link.written_stamp
    again = verify(written.engine, ["parsalink"], "trust").systems["parsalink"]
    assert again.clean and again.read_in_full == 1


def test_our_update_answer_is_trusted_as_written(written: World) -> None:
    """An update we push answers with the deal's new stamp: that stamp is ours too."""
    written.emulators["parsalink"].clock.advance(5)
    capture(written.engine, "parsalink")  # the rechecks confirm the creates
    deal, link = next(iter(just_made(written).items()))
    ruddr = [ext for ext, n in names(written, "ruddr").items() if n == link.shadow["name"]]
    written.users["ruddr"].edit(ruddr[0], amount=31337.0)
    written.cycle()
    updated = ours(written)[deal]
    assert updated.written_stamp is not None and updated.written_stamp == updated.vendor_modified
    assert updated.confirmed_at is None or updated.confirmed_at < updated.written_stamp
    check = verify(written.engine, ["parsalink"], "trust").systems["parsalink"]
    assert check.clean and check.trusted_by["written"] >= 1


def names(world: World, system: str) -> dict[str, str]:
    with world.engine.read_session() as session:
        links = session.exec(select(Link).where(Link.system == system)).all()
        return {
            link.external_id: str(record.fields["name"])
            for link in links
            if (record := session.get(Record, link.record_id)) is not None
        }
