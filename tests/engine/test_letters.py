"""Dead letters lead with the vendor's reason and close themselves once the deal syncs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from sync.store.models import DeadLetter, Journal, Link
from tests.e2e.conftest import World, make_world
from tests.e2e.users import CLOSE_NAME

pytestmark = pytest.mark.slow


@pytest.fixture
def four(tmp_path: Path) -> Iterator[World]:
    """The four emulators, the shipped config and a fresh store."""
    built = make_world(tmp_path)
    yield built
    built.engine.close()


def _letters(world: World) -> list[DeadLetter]:
    with world.engine.session() as session:
        return list(session.exec(select(DeadLetter).order_by(DeadLetter.id)).all())  # type: ignore[arg-type]


def _resolutions(world: World) -> list[Journal]:
    with world.engine.session() as session:
        query = select(Journal).where(Journal.action == "dead_letter_resolved")
        return list(session.exec(query).all())


def test_a_refused_create_leads_with_the_reason_and_closes_once_the_deal_is_fixed(
    four: World,
) -> None:
    """A 10,000-character name refused by Ruddr and ParsaLink is stored with each vendor's
    reason first and the name after it, shortened; renaming the deal in Close makes the creates
    go through, and every letter then closes itself with a journal entry on the deal."""
    long_name = "x" * 10_000
    deal = four.users["close"].create(long_name)
    four.converge(cycles=2)
    letters = _letters(four)
    assert {letter.system for letter in letters} >= {"ruddr", "parsalink"}
    by_system = {letter.system: letter.error for letter in letters}
    assert by_system["ruddr"].startswith("ruddr: ")
    assert "must be at most 255 characters" in by_system["ruddr"][:100]
    assert by_system["parsalink"].startswith("parsalink: ")
    assert "no more than 255 characters" in by_system["parsalink"][:100]
    for error in by_system.values():
        assert "x" * 100 not in error and "(10000 characters)" in error
        assert len(error) < 500
    assert all(letter.status == "open" for letter in letters)

    four.users["close"].edit(deal, **{f"custom.{CLOSE_NAME}": "Fixed deal"})
    report = four.converge(cycles=2)
    assert report.clean, report
    letters = _letters(four)
    assert [letter.status for letter in letters] == ["resolved"] * len(letters)
    notes = _resolutions(four)
    assert sorted(note.system or "" for note in notes) == sorted(
        letter.system for letter in letters
    )
    assert all(note.record_id == letters[0].record_id for note in notes)
    assert all("resolved: a later push succeeded" in note.reason for note in notes)


def parsalink_without_negotiation(tmp_path: Path) -> World:
    """ParsaLink synced alone, by a mapping that lacks its "negotiation" stage (a deal there
    cannot be read)."""
    probe = make_world(tmp_path / "probe").config
    spec = probe.mapping["parsalink"]
    stage = spec.stage
    assert stage is not None and not isinstance(stage, str) and stage.values
    values = {k: v for k, v in stage.values.items() if k != "negotiation"}
    mapping = {
        "parsalink": spec.model_copy(update={"stage": stage.model_copy(update={"values": values})})
    }
    overrides = {"systems": {"parsalink": probe.systems["parsalink"]}, "mapping": mapping}
    return make_world(tmp_path, overrides=overrides)


def test_an_unreadable_deal_closes_its_letter_once_it_is_read_fine(tmp_path: Path) -> None:
    """A ParsaLink deal whose stage the mapping does not know is dead-lettered on read (no
    record yet); once its stage is changed to a known one it is captured, and the letter
    closes with a journal entry on the record the read created."""
    world = parsalink_without_negotiation(tmp_path)
    try:
        deal = world.users["parsalink"].create("Odd stage deal", stage="negotiation")
        world.cycle()
        (letter,) = _letters(world)
        assert (letter.direction, letter.external_id, letter.status) == ("inbound", deal, "open")
        assert letter.error.startswith("parsalink.stage: not in the values map")

        world.users["parsalink"].edit(deal, stage="proposal")
        world.cycle()
        (letter,) = _letters(world)
        with world.engine.session() as session:
            link = session.exec(select(Link).where(Link.external_id == deal)).one()
        assert letter.status == "resolved" and letter.record_id == link.record_id
        (note,) = _resolutions(world)
        assert note.record_id == link.record_id and note.system == "parsalink"
        assert "a later read mapped it" in note.reason
    finally:
        world.engine.close()


def test_verify_and_plan_name_a_refused_deal_with_the_vendors_reason(four: World) -> None:
    """Issue 24 finding 5: a deal Ruddr refused (a 300-character name) is counted absent in
    Ruddr and named there with the refusal; ``plan`` lists it as not planned, with why."""
    from sync.engine.plan import plan
    from sync.engine.verify import verify

    four.users["close"].create("y" * 300)
    four.converge(cycles=2)
    ruddr = verify(four.engine, ["ruddr"]).systems["ruddr"]
    assert len(ruddr.absent) == 1
    why = ruddr.why[ruddr.absent[0]]
    assert why.startswith("create refused (dead letter ") and "at most 255 characters" in why
    assert ruddr.names[ruddr.absent[0]] == "y" * 300
    report = plan(four.engine)
    refused = [item for item in report.not_planned if item.system == "ruddr"]
    assert [item.what for item in refused] == ["create refused"]
    assert "must be at most 255 characters" in refused[0].why


def test_a_dead_letter_quotes_the_vendors_message_once(four: World) -> None:
    """A refusal whose field errors the vendor also puts in its message is stored with each
    of the vendor's words once (ParsaLink refusing a negative amount: it says why in its
    message and again as a field error)."""
    four.users["ruddr"].create("Negative deal", amount=-100.0)
    four.converge(cycles=2)
    letters = [letter for letter in _letters(four) if letter.system == "parsalink"]
    assert letters
    for letter in letters:
        assert letter.error.count("greater than or equal to 0") == 1, letter.error


def test_an_update_that_lands_on_a_deal_in_an_unmapped_stage_leaves_no_dead_letter(
    tmp_path: Path,
) -> None:
    """Issue 24 finding 7: a Close deal moved to "Renewal Due" (a status the mapping lacks)
    has its read in dead letters; an amount edited in Ruddr still lands in Close, and the write
    leaves no letter of its own (only the read's, naming the stage, stays open)."""
    world = make_world(tmp_path, seed_opportunities=2)
    try:
        world.converge(cycles=2)
        close = world.users["close"]
        statuses = close.client.get("/status/opportunity/").json()["data"]
        renewal = next(s["id"] for s in statuses if s["label"] == "Renewal Due")
        deal = close.client.get("/opportunity/").json()["data"][0]
        close.client.put(f"/opportunity/{deal['id']}/", json={"status_id": renewal})
        world.cycle()
        with world.engine.session() as session:
            link = session.exec(select(Link).where(Link.external_id == deal["id"])).one()
            ruddr = session.exec(
                select(Link).where(Link.record_id == link.record_id, Link.system == "ruddr")
            ).one()
        world.users["ruddr"].edit(ruddr.external_id, amount=4242.0)
        world.cycle()
        world.cycle()
        assert close.client.get(f"/opportunity/{deal['id']}/").json()["value"] == 424200
        open_letters = [
            (letter.system, letter.direction, letter.op)
            for letter in _letters(world)
            if letter.status == "open"
        ]
        assert open_letters == [("close", "inbound", "read")]
    finally:
        world.engine.close()


def test_an_unreadable_deal_deleted_before_it_was_read_closes_its_letter(tmp_path: Path) -> None:
    """A ParsaLink deal whose stage the mapping does not know is dead-lettered on read (no
    record holds it); deleted in ParsaLink, the next complete scan misses it and the letter
    closes (ParsaLink has no delete feed: the scan is what sees deletes)."""
    world = parsalink_without_negotiation(tmp_path)
    try:
        kept = world.users["parsalink"].create("Odd but kept", stage="negotiation")
        gone = world.users["parsalink"].create("Odd and deleted", stage="negotiation")
        world.cycle()
        assert {(letter.external_id, letter.status) for letter in _letters(world)} == {
            (kept, "open"),
            (gone, "open"),
        }
        world.users["parsalink"].delete(gone)
        world.cycle()
        assert {(letter.external_id, letter.status) for letter in _letters(world)} == {
            (kept, "open"),
            (gone, "resolved"),
        }
    finally:
        world.engine.close()
