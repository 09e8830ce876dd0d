"""Fields a vendor derives (DESIGN.md §2.11), as declared by the connectors and applied by the
engine: which fields follow which, what a push carries along, what a capture or an answer
takes as the vendor's consequence rather than an edit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from sync.connectors.base import DerivedField, VendorRecord
from sync.engine import derived
from sync.engine.push.applier import _apply_answer
from sync.mapping.derived import Derived
from sync.store.models import Link
from tests.e2e.conftest import World, make_world

SF = "truto_salesforce"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = make_world(tmp_path)
    yield built
    built.engine.close()


def test_salesforce_probability_follows_the_stage_and_others_derive_nothing(world: World) -> None:
    """Behind Truto, Salesforce's Probability (read at remote_data.Probability) follows the
    stage and accepts a value; IsClosed/IsWon are declared but no mapped field reads them;
    Ruddr, Close and ParsaLink declare nothing."""
    found = derived.of(world.engine, SF)
    assert [(d.field, d.sources, d.accepts_value) for d in found] == [
        ("probability", frozenset({"stage", "status"}), True)
    ]
    assert all(derived.of(world.engine, s) == () for s in ("ruddr", "close", "parsalink"))
    assert derived.unwritable(world.engine, SF) == set()


def test_a_stage_write_carries_the_probability_and_nothing_else_does(world: World) -> None:
    wanted = {"stage": "negotiation", "probability": Decimal("0.15"), "amount": Decimal(5)}
    diff: dict[str, object] = {"stage": "negotiation"}
    added = derived.ride_along(world.engine, SF, diff, wanted)
    assert diff == {"stage": "negotiation", "probability": Decimal("0.15")}
    assert "probability sent with stage" in derived.sent_with(added, diff)
    amount_only: dict[str, object] = {"amount": Decimal(5)}
    assert derived.ride_along(world.engine, SF, amount_only, wanted) == {}
    assert amount_only == {"amount": Decimal(5)}


def test_a_probability_that_moved_with_its_stage_is_a_consequence(world: World) -> None:
    base = {"stage": "prospecting", "status": "open", "probability": Decimal("0.15")}
    moved = {"stage": "negotiation", "status": "open", "probability": Decimal("0.9")}
    assert set(derived.consequences(world.engine, SF, base, moved)) == {"probability"}
    edited = {**base, "probability": Decimal("0.4")}  # a person's edit: the stage stayed
    assert derived.consequences(world.engine, SF, base, edited) == {}
    assert derived.consequences(world.engine, "close", base, moved) == {}


def test_a_value_only_the_vendor_decides_is_taken_from_its_answer_not_left_to_merge() -> None:
    """Where the vendor takes no value (HubSpot's stage probability), the answer to our stage
    write moves the shadow of the follower too, and the answer's stamp is kept: the next
    capture sees no change to merge."""
    link = Link(
        record_id="r",
        system="hubspot",
        external_id="1",
        shadow={"stage": "prospecting", "probability": Decimal("0.1"), "amount": Decimal(5)},
    )
    after = {"stage": "negotiation", "probability": Decimal("0.8"), "amount": Decimal(5)}
    stamp = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    answer = VendorRecord("1", stamp, {})
    _apply_answer(link, answer, after, {"stage": "negotiation"}, {"probability"})
    assert link.shadow == after
    assert link.vendor_modified == stamp


def test_a_declaration_in_vendor_paths_becomes_canonical_fields(world: World) -> None:
    """The mapper matches a declared path to the field that reads it, and a source naming an
    object to every field read under it; a declaration no mapped field reads is left out."""
    declared = (
        DerivedField("remote_data.Probability", "stage", False, "only the stage decides"),
        DerivedField("remote_data.Nothing", "stage", True, "unmapped"),
    )
    assert world.engine.mapper.derived(SF, declared) == (
        Derived(
            "probability", frozenset({"stage", "status"}), False, "only the stage decides", "stage"
        ),
    )
