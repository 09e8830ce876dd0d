"""Company identity (issue 24, finding 3): a company renamed in one system is a rename, not a
move. Its deals stay with it everywhere, nothing parks, a later edit of one of its deals arrives
everywhere and ``verify`` compares companies through their link, not their names.

No vendor documents whether renaming a company moves the modified stamp of the deals under it,
so every rename is tried both ways (``rename_touches_deals`` on the emulator)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from sync.store.models import Link, Outbox, Record
from tests.e2e.conftest import World
from tests.e2e.test_scenarios import SYSTEMS, amount_in

pytestmark = pytest.mark.slow


def deal_at(world: World, company: str, system: str) -> tuple[str, str]:
    """(record id, external id in ``system``) of a deal of ``company``."""
    with world.engine.session() as session:
        records = session.exec(select(Record)).all()
        record = next(r for r in records if r.fields.get("company") == company)
    return record.id, external_of(world, record.id, system)


def external_of(world: World, record_id: str, system: str) -> str:
    with world.engine.session() as session:
        link = session.exec(
            select(Link).where(Link.record_id == record_id, Link.system == system)
        ).one()
    return link.external_id


def set_amount(world: World, system: str, external_id: str, amount: float) -> None:
    field = {"close": "value", "parsalink": "value"}.get(system, "amount")
    value = int(amount * 100) if system == "close" else amount
    world.users[system].edit(external_id, **{field: value})


def parked(world: World) -> list[Outbox]:
    with world.engine.session() as session:
        return list(session.exec(select(Outbox).where(Outbox.status == "parked")).all())


@pytest.mark.parametrize("touches", [False, True], ids=["stamps-kept", "stamps-moved"])
@pytest.mark.parametrize("renamed_in", SYSTEMS)
def test_a_company_renamed_anywhere_keeps_its_deals_and_their_edits_arrive(
    world: World, renamed_in: str, touches: bool
) -> None:
    """Initech renamed to Initech Global in one vendor: no deal moves or parks, verify stays
    clean (the rename is named, not drift), and a later amount edit of an Initech deal made in
    that vendor reaches every other system."""
    assert world.converge().clean
    world.emulators[renamed_in].rename_touches_deals = touches
    world.users[renamed_in].rename_company("Initech", "Initech Global")
    world.cycle()
    world.cycle()
    report = world.converge(cycles=1)
    assert report.clean, report
    assert not parked(world)
    assert any(
        names.get(renamed_in) == "Initech Global" for names in report.company_names.values()
    ), report.company_names

    record_id, external_id = deal_at(world, "Initech", renamed_in)
    set_amount(world, renamed_in, external_id, 43210.0)
    report = world.converge(cycles=2)
    assert report.clean, report
    assert not parked(world)
    for system in SYSTEMS:
        assert amount_in(world, system, external_of(world, record_id, system)) == 43210.0
    assert deal_at(world, "Initech", renamed_in)[0] == record_id


def test_a_rename_back_leaves_nothing_behind(world: World) -> None:
    """Renamed and renamed back in Ruddr: nothing differs, nothing is listed as renamed."""
    world.converge()
    world.users["ruddr"].rename_company("Initech", "Initech Global")
    world.converge(cycles=2)
    world.users["ruddr"].rename_company("Initech Global", "Initech")
    report = world.converge(cycles=2)
    assert report.clean, report
    assert not report.company_names
    assert not parked(world)


def test_a_deal_moved_to_another_company_still_moves(world: World) -> None:
    """Identity does not freeze a deal's company: a Ruddr deal moved from Initech to Globex
    (an existing company everywhere) is at Globex in every system."""
    world.converge()
    record_id, external_id = deal_at(world, "Initech", "ruddr")
    globex = world.users["ruddr"]._lookup("/companies", "name")["Globex"]
    world.users["ruddr"].edit(external_id, companyId=globex)
    report = world.converge(cycles=2)
    assert report.clean, report
    with world.engine.session() as session:
        record = session.get(Record, record_id)
        assert record is not None and record.fields["company"] == "Globex"
    close_id = external_of(world, record_id, "close")
    assert world.users["close"].get(close_id)["lead_name"] == "Globex"
