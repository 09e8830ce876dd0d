"""The journal records only real changes, each with the system its value came from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from sync.store.models import Journal, Link
from tests.e2e.conftest import World, make_world

pytestmark = pytest.mark.slow


@pytest.fixture
def four(tmp_path: Path) -> Iterator[World]:
    """The four emulators, the shipped config and a fresh store."""
    built = make_world(tmp_path)
    yield built
    built.engine.close()


def _entries_after(world: World, mark: int) -> list[Journal]:
    with world.engine.session() as session:
        query = select(Journal).where(col(Journal.id) > mark).order_by(col(Journal.id))
        return list(session.exec(query).all())


def _last_id(world: World) -> int:
    with world.engine.session() as session:
        ids = session.exec(select(Journal.id).order_by(col(Journal.id).desc())).first()
    return ids or 0


def _external_id(world: World, system: str, record_id: str) -> str:
    with world.engine.session() as session:
        query = select(Link).where(Link.record_id == record_id, Link.system == system)
        return session.exec(query).one().external_id


def _record_of(world: World, system: str, external_id: str) -> str:
    with world.engine.session() as session:
        query = select(Link).where(Link.system == system, Link.external_id == external_id)
        return session.exec(query).one().record_id


@pytest.mark.parametrize("origin", ["parsalink", "ruddr", "close", "truto_salesforce"])
def test_an_amount_only_edit_journals_only_the_amount(four: World, origin: str) -> None:
    """A deal without tags, created anywhere and synced, then edited in Close (amount only):
    the journal gains an amount change and pushes of the amount — no `tags null → []`."""
    deal = four.users[origin].create(f"Tagless deal from {origin}")
    assert four.converge(cycles=2).clean
    record_id = _record_of(four, origin, deal)
    close_id = _external_id(four, "close", record_id)
    mark = _last_id(four)
    four.users["close"].edit(close_id, value=123_400)
    assert four.converge(cycles=2).clean
    entries = [e for e in _entries_after(four, mark) if e.record_id == record_id]
    changed = {e.field for e in entries if e.action == "field_changed"}
    assert changed == {"amount"}, [(e.field, e.old, e.new, e.reason) for e in entries]
    pushed = [e for e in entries if e.action == "pushed"]
    assert {e.system for e in pushed} == {
        "ruddr", "parsalink", "truto_salesforce", "salesforce", "hubspot",
    }  # fmt: skip
    assert all(set(e.new or {}) == {"amount"} for e in pushed), [e.new for e in pushed]


def test_a_push_names_the_system_each_value_came_from(four: World) -> None:
    """Close changes the amount and ParsaLink the description in the same cycle: the push to
    Ruddr says the amount came from Close and the description from ParsaLink, the push to
    ParsaLink credits Close (it used to credit everything to the system read last)."""
    deal = four.users["parsalink"].create("Two sources")
    assert four.converge(cycles=2).clean
    record_id = _record_of(four, "parsalink", deal)
    close_id = _external_id(four, "close", record_id)
    mark = _last_id(four)
    four.users["close"].edit(close_id, value=555_500)
    # a person's edit a moment later: ParsaLink stamps whole seconds and its list lacks the
    # description, so an edit in the very second of the last write is seen only by the recheck
    # of the first scan after that second closed (README, Capture) — not what this test is about
    four.emulators["parsalink"].clock.advance(1)
    four.users["parsalink"].edit(deal, description="Edited in ParsaLink")
    assert four.converge(cycles=2).clean
    entries = [e for e in _entries_after(four, mark) if e.record_id == record_id]
    (to_ruddr,) = [e for e in entries if e.action == "pushed" and e.system == "ruddr"]
    assert set(to_ruddr.new or {}) == {"amount", "description"}
    assert to_ruddr.reason.startswith(
        "changed in close (amount) and parsalink (description): sent amount, description"
    ), to_ruddr.reason
    (to_parsalink,) = [e for e in entries if e.action == "pushed" and e.system == "parsalink"]
    assert to_parsalink.reason == "changed in close (amount): sent amount", to_parsalink.reason
