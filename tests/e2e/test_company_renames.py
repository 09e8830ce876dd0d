"""Company renames carried or kept (issue 24, ``sync.companies.renames``): with ``propagate`` a
company renamed in one vendor is renamed in every other vendor through its API, journaled,
without ping-pong and without moving a deal; with ``keep`` (the default) nothing is renamed
elsewhere. Everything is read back through the vendors' own APIs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from sync.config import load_config
from sync.config.models import CompaniesConfig
from sync.engine.renames import KEPT, RENAMED, company_record_id
from sync.store.models import Journal
from tests.e2e.conftest import ROOT, World, make_world
from tests.e2e.test_company_identity import deal_at, external_of, parked, set_amount
from tests.e2e.test_scenarios import SYSTEMS, amount_in

pytestmark = pytest.mark.slow

RENAME_PATHS = ("/companies/", "/lead/", "/accounts/", "/sobjects/Account/")


def world_with(tmp_path: Path, renames: str) -> World:
    base = load_config(ROOT / "config.yaml", env={}).sync
    sync = base.model_copy(update={"companies": CompaniesConfig(renames=renames)})  # type: ignore[arg-type]
    return make_world(tmp_path, overrides={"sync": sync})


@pytest.fixture
def propagating(tmp_path: Path) -> Iterator[World]:
    built = world_with(tmp_path, "propagate")
    yield built
    built.engine.close()


@pytest.fixture
def keeping(tmp_path: Path) -> Iterator[World]:
    built = world_with(tmp_path, "keep")
    yield built
    built.engine.close()


def company_names(world: World, system: str) -> set[str]:
    """The company names ``system`` lists now, read through its API."""
    user = world.users[system]
    if system == "hubspot":  # properties, not top-level fields: its own listing
        rows = user._ok(user.client.get("/crm/v3/objects/companies", params={"limit": 100}))
        return {str(r["properties"]["name"]) for r in rows["results"]}
    listing, key, _item, _verb = user.companies
    user._cache.pop(listing, None)
    return set(user._lookup(listing, key))


def company_writes(world: World, system: str) -> int:
    """Renames sent to ``system``'s companies since the last ``reset_calls``."""
    return sum(
        1
        for r in world.emulators[system].requests
        if r["method"] in ("PUT", "PATCH") and any(p in str(r["path"]) for p in RENAME_PATHS)
    )


def renames_journaled(world: World, company: str) -> list[Journal]:
    with world.engine.session() as session:
        rows = session.exec(
            select(Journal).where(Journal.record_id == company_record_id(company))
        ).all()
    return [row for row in rows if row.action in (RENAMED, KEPT)]


def test_propagate_carries_a_ruddr_rename_everywhere_once(propagating: World) -> None:
    """Initech → Initech Global in Ruddr shows Initech Global in Close, ParsaLink and Truto;
    the journal names the company, both names and Ruddr as the source; two more cycles send
    no rename at all (our own renames read back are echoes); verify is clean; no deal moved."""
    world = propagating
    assert world.converge().clean
    record_id, _ = deal_at(world, "Initech", "ruddr")
    world.users["ruddr"].rename_company("Initech", "Initech Global")
    world.cycle()
    for system in SYSTEMS:
        names = company_names(world, system)
        assert "Initech Global" in names and "Initech" not in names, (system, names)

    entries = renames_journaled(world, "Initech")
    assert {e.system for e in entries} == set(SYSTEMS)
    assert all(
        e.action == RENAMED and (e.old, e.new) == ("Initech", "Initech Global") for e in entries
    )
    assert all("renamed in ruddr" in e.reason for e in entries)

    world.reset_calls()
    world.cycle()
    world.cycle()
    assert all(company_writes(world, system) == 0 for system in SYSTEMS)
    assert len(renames_journaled(world, "Initech")) == len(SYSTEMS)

    report = world.converge(cycles=1)
    assert report.clean, report
    assert not report.company_names, report.company_names
    assert not parked(world)
    assert deal_at(world, "Initech", "close")[0] == record_id


def test_propagate_then_a_deal_edit_arrives_and_a_second_rename_is_carried(
    propagating: World,
) -> None:
    """After a carried rename, an amount edit made in Close reaches every system; a second
    rename made in ParsaLink (Initech Global → Initech Worldwide) is carried back everywhere,
    Ruddr included."""
    world = propagating
    world.converge()
    world.users["ruddr"].rename_company("Initech", "Initech Global")
    world.converge(cycles=2)
    record_id, close_id = deal_at(world, "Initech", "close")
    set_amount(world, "close", close_id, 7654.0)
    world.users["parsalink"].rename_company("Initech Global", "Initech Worldwide")
    report = world.converge(cycles=2)
    assert report.clean, report
    for system in SYSTEMS:
        assert "Initech Worldwide" in company_names(world, system), system
        assert amount_in(world, system, external_of(world, record_id, system)) == 7654.0
    assert not parked(world)


def test_keep_renames_nothing_elsewhere(keeping: World) -> None:
    """With ``keep`` (the default), Ruddr's rename stays Ruddr's: no other vendor's company is
    renamed, nothing is journaled as a rename, and verify lists the names, clean."""
    world = keeping
    world.converge()
    world.reset_calls()
    world.users["ruddr"].rename_company("Initech", "Initech Global")
    report = world.converge(cycles=2)
    assert report.clean, report
    for system in SYSTEMS[1:]:
        assert "Initech" in company_names(world, system)
        assert "Initech Global" not in company_names(world, system)
        assert company_writes(world, system) == 0
    assert not renames_journaled(world, "Initech")
    assert any(names.get("ruddr") == "Initech Global" for names in report.company_names.values())
