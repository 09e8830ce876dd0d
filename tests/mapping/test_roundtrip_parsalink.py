"""ParsaLink opportunities (seed 003 shape, stage enum) map to canonical and back."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.emulators import reference

from .support import (
    CANONICAL_STAGES,
    FakeRefs,
    amounts,
    assert_canonical_round_trip,
    assert_lossy_write_settles,
    assert_units_settle,
    canonical_records,
    dates,
    probabilities,
    reference_refs,
    seed_round_trip,
    shipped_mapper,
    texts,
)

SYSTEM = "parsalink"
MAPPER = shipped_mapper()

#: `GET /api/opportunities/{id}/` of seed 003, verbatim.
SEED: dict[str, Any] = {
    "id": "opp_01HX...",
    "name": "TechCorp — Professional Services Q2",
    "accountId": "acc_02HX...",
    "accountName": "TechCorp Inc",
    "value": 24000,
    "stage": "qualification",
    "probability": 40,
    "closeDate": "2025-06-30",
    "closedDate": None,
    "lossReason": None,
    "assignedTo": "usr_01HX...",
    "assignedToName": "Alex Johnson",
    "source": "outbound",
    "contactIds": ["cnt_01HX...", "cnt_03HX..."],
    "description": "Professional services engagement for data migration project",
    "createdAt": "2025-03-01T12:00:00Z",
    "updatedAt": "2025-03-01T12:00:00Z",
}
READ_ONLY = ("id", "createdAt", "updatedAt", "contactIds", "closedDate", "lossReason")
BLANK = {key: SEED[key] for key in READ_ONLY}

#: The create body of seed 003 plus the PATCH examples' fields.
WRITABLE = {
    "name",
    "accountId",
    "value",
    "stage",
    "probability",
    "closeDate",
    "assignedTo",
    "source",
    "contactIds",
    "description",
    "closedDate",
    "lossReason",
}


def make_refs() -> FakeRefs:
    refs = reference_refs(SYSTEM, "pl-")
    refs.add(SYSTEM, "company", "acc_02HX...", "TechCorp Inc")
    refs.add(SYSTEM, "owner", "usr_01HX...", "alex.johnson@example.com")
    return refs


def apply(opportunity: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Apply a POST/PATCH body as ParsaLink does, deriving accountName / assignedToName."""
    assert set(payload) <= WRITABLE, set(payload) - WRITABLE
    refs = make_refs()
    opportunity.update(payload)
    if "accountId" in payload:
        opportunity["accountName"] = refs.key_for(SYSTEM, "company", payload["accountId"])
    if "assignedTo" in payload:
        opportunity["assignedToName"] = "Someone"
    return opportunity


def test_seed_reads_as_expected() -> None:
    """The documented ParsaLink example maps to these canonical values."""
    assert MAPPER.to_canonical(SYSTEM, SEED, make_refs()) == {
        "name": "TechCorp — Professional Services Q2",
        "description": "Professional services engagement for data migration project",
        "amount": "24000.00",
        "currency": "USD",  # the account's currency: the record carries none
        "probability": "0.4000",
        "close_date": "2025-06-30",
        "lead_source": "outbound",
        "stage": "qualification",
        "status": "open",
        "owner": "alex.johnson@example.com",
        "company": "TechCorp Inc",
    }


def test_seed_round_trips() -> None:
    """Seed → canonical → ParsaLink payload → applied → the same canonical record."""
    _, payload = seed_round_trip(MAPPER, SYSTEM, SEED, BLANK, apply, make_refs())
    assert payload["probability"] == 40 and payload["value"] == 24000


@pytest.mark.parametrize(
    ("vendor", "stage", "status"),
    [
        ("prospecting", "prospecting", "open"),
        ("needs_analysis", "qualification", "open"),
        ("negotiation", "negotiation", "open"),
        ("closed_won", "won", "won"),
        ("closed_lost", "lost", "lost"),
    ],
)
def test_stage_enum_gives_stage_and_status(vendor: str, stage: str, status: str) -> None:
    """The enum value gives the canonical stage, and closed_won / closed_lost the status."""
    record = MAPPER.to_canonical(SYSTEM, {"stage": vendor}, FakeRefs())
    assert (record["stage"], record["status"]) == (stage, status)


def test_qualification_is_written_as_qualification() -> None:
    """needs_analysis reads as qualification, but qualification is written as qualification."""
    assert MAPPER.to_vendor(SYSTEM, {"stage": "qualification"}, FakeRefs(), for_create=False) == {
        "stage": "qualification"
    }


@settings(max_examples=150, deadline=None)
@given(
    canonical_records(
        name=st.text(min_size=1, max_size=80),
        description=texts(),
        amount=amounts(),
        probability=probabilities(2),
        close_date=dates(),
        lead_source=texts(20),
        stage=st.sampled_from(CANONICAL_STAGES),
        owner=st.sampled_from([email for _, email in reference.USERS]),
        company=st.sampled_from(reference.COMPANIES),
    )
)
def test_any_canonical_record_round_trips(record: dict[str, Any]) -> None:
    """Any canonical record ParsaLink can hold (whole percents) reads back identical."""
    assert_canonical_round_trip(MAPPER, SYSTEM, record, BLANK, apply, make_refs())


def test_units_settle_on_a_round_trip() -> None:
    """A value with more decimals than money keeps, a whole percent and a date read, write and
    read again unchanged; a figure without a currency is in ParsaLink's configured one."""
    vendor = {"value": 99.999, "probability": 75, "closeDate": "2026-12-31"}
    expected = {
        "amount": "100.00",
        "probability": "0.7500",
        "close_date": "2026-12-31",
        "currency": "USD",
    }
    assert_units_settle(MAPPER, SYSTEM, vendor, SEED, apply, make_refs(), expected)
    assert_lossy_write_settles(
        MAPPER,
        SYSTEM,
        {"probability": "0.7512", "amount": "1234.57"},
        BLANK,
        apply,
        make_refs(),
        {"probability": "0.7500", "amount": "1234.57"},
    )
