"""`verify` counts duplicates from the vendors' side, not only against the store: a store
that itself holds one real deal twice, or a vendor holding two deals with one crmsync id, is
not "No drift"."""

from __future__ import annotations

import pytest
from sqlmodel import select

from sync.engine.context import new_id
from sync.engine.verify import CAPTURED, twins, verify
from sync.store.models import Journal, Record
from tests.e2e.conftest import World
from tests.e2e.test_scenarios import link_of, record_of

pytestmark = pytest.mark.slow
CLOSE_ID_FIELD = "custom.cf_CrmsyncId00000000000000000000000000000002"


def test_twins_are_live_records_with_one_name_and_company() -> None:
    """Case, spacing and punctuation do not hide a twin; another company or a deleted record
    is not one."""

    def rec(name: str, company: str, deleted: bool = False) -> Record:
        record = Record(id=new_id(), fields={"name": name, "company": company})
        if deleted:
            record.deleted_at = record.created_at
        return record

    a, b = rec("Big Deal", "Acme Corp"), rec("  big   deal ", "acme corp.")
    others = [rec("Big Deal", "Hooli"), rec("Big Deal", "Acme Corp", deleted=True)]
    assert twins([a, b, *others]) == [sorted([a.id, b.id])]


def test_a_deal_the_store_holds_twice_is_reported(world: World) -> None:
    """Two canonical records for one deal — the second captured as new from Ruddr after the
    first had journaled its create there (what a lost answer once caused) — each look fine
    against their own links; verify still finds them. Two deals of one name made
    independently are not reported."""
    world.users["close"].create("Held twice")
    world.users["ruddr"].create("Same name, made twice by people")
    world.users["parsalink"].create("Same name, made twice by people")
    assert world.converge(cycles=2).clean
    with world.engine.session() as session:
        held = [
            r for r in session.exec(select(Record)).all() if r.fields.get("name") == "Held twice"
        ]
        assert len(held) == 1
        copy = Record(id=new_id(), fields=dict(held[0].fields))
        session.add(copy)
        session.add(
            Journal(
                record_id=copy.id, system="ruddr", action="created", reason=f"{CAPTURED}ruddr 0000"
            )
        )
        session.commit()
    report = verify(world.engine)
    assert report.twins == [sorted([held[0].id, copy.id])]
    assert not report.clean


def test_two_vendor_deals_carrying_one_record_id_are_duplicates(world: World) -> None:
    """Someone copies a Close deal including its crmsync ID field: two Close deals claim one
    record. verify names it."""
    deal = world.users["ruddr"].create("Copied in Close")
    assert world.converge(cycles=2).clean
    record_id = record_of(world, "ruddr", deal)
    close_id = link_of(world, "close", record_id).external_id
    original = world.users["close"].get(close_id)
    copy = world.users["close"].create("Copied in Close (copy)")
    world.users["close"].edit(copy, **{CLOSE_ID_FIELD: original[CLOSE_ID_FIELD]})
    report = verify(world.engine)
    assert f"2 deals carry record id {record_id}" in report.systems["close"].duplicates
    assert not report.clean
