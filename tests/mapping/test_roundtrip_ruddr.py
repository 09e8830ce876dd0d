"""Ruddr opportunities (seed 000 shape) map to canonical and back without losing a field."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.emulators import reference

from .support import (
    CANONICAL_STAGES,
    FakeRefs,
    amounts,
    assert_canonical_round_trip,
    assert_units_settle,
    canonical_records,
    dates,
    pick,
    probabilities,
    reference_refs,
    seed_round_trip,
    shipped_mapper,
    texts,
)

SYSTEM = "ruddr"
MAPPER = shipped_mapper()

#: The response of seed 000 (docs.ruddr.io "Create an opportunity"), verbatim.
SEED: dict[str, Any] = {
    "id": "7bcf2403-c6ea-4f9a-a9fa-bfa53a0d43b8",
    "name": "Acme Corp - Mobile App",
    "description": "Proposal for a new mobile application.",
    "nextSteps": "Follow up with client on proposal.",
    "amount": 50000,
    "isActive": True,
    "probability": 0.75,
    "priorityId": "high",
    "createdAt": "2025-01-15T20:47:03.284Z",
    "openDate": "2025-01-15",
    "closeDate": "2025-06-30",
    "modifiedAt": "2025-01-15T20:47:03.284Z",
    "currency": "USD",
    "cloudFolderUrl": "https://drive.google.com/drive/folders/abc123",
    "owner": {"id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890", "name": "John Davis"},
    "opportunityType": {"id": "b2c3d4e5-f6a7-8901-bcde-f12345678901", "name": "New Business"},
    "opportunityLeadSource": {"id": "c3d4e5f6-a7b8-9012-cdef-123456789012", "name": "Referral"},
    "company": {
        "id": "d4e5f6a7-b8c9-0123-4567-89abcdef0123",
        "name": "Acme Corp",
        "client": {
            "id": "e5f6a7b8-c9d0-1234-5678-9abcdef01234",
            "key": "acme-corp",
            "name": "Acme Corp",
        },
    },
    "practice": {"id": "f6a7b8c9-d0e1-2345-6789-abcdef012345", "name": "Consulting"},
    "tags": [{"id": "1a2b3c4d-5e6f-7890-abcd-ef1234567890", "name": "Enterprise"}],
    "opportunityStage": {
        "id": "2b3c4d5e-6f7a-8901-bcde-f12345678901",
        "name": "Proposal",
        "statusId": "open",
    },
    "projects": [
        {
            "id": "3c4d5e6f-7a8b-9012-cdef-123456789012",
            "name": "Mobile App Development",
            "amount": 50000,
        }
    ],
    "weightedAmount": 37500,
    "timeSpent": 0,
    "salesforceId": "0060b00000BkFxAAAV",
    "hubspotId": "12345678",
}

#: What Ruddr keeps that our writes never touch (read-only or unmapped on write).
READ_ONLY = (
    "id",
    "createdAt",
    "modifiedAt",
    "openDate",
    "isActive",
    "salesforceId",
    "hubspotId",
    "tags",
    "opportunityLeadSource",
    "opportunityType",
    "practice",
    "projects",
)
BLANK = {key: SEED[key] for key in READ_ONLY}

#: Ruddr's create body (seed 000): a payload key outside it is rejected by Ruddr.
CREATE_BODY = {
    "name",
    "companyId",
    "opportunityStageId",
    "description",
    "nextSteps",
    "amount",
    "isActive",
    "probability",
    "closeDate",
    "priorityId",
    "currency",
    "ownerId",
    "opportunityLeadSourceId",
    "opportunityTypeId",
    "tagIds",
    "practiceId",
    "projects",
    "cloudFolderUrl",
}

#: Stage ids: the seed's Proposal id, generated ids for the other reference stages.
STAGES = {
    ("2b3c4d5e-6f7a-8901-bcde-f12345678901" if name == "Proposal" else f"stage-{i}"): (name, status)
    for i, (name, _, status) in enumerate(reference.RUDDR_STAGES)
}


def make_refs() -> FakeRefs:
    refs = reference_refs(SYSTEM, "ruddr-")
    refs.add(SYSTEM, "company", SEED["company"]["id"], "Acme Corp")
    refs.add(SYSTEM, "owner", SEED["owner"]["id"], "john.davis@example.com")
    for stage_id, (name, _) in STAGES.items():
        refs.add(SYSTEM, "stage", stage_id, name)
    return refs


def apply(opportunity: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Apply a create/PATCH body the way Ruddr does and answer the full object."""
    assert set(payload) <= CREATE_BODY, set(payload) - CREATE_BODY
    refs = make_refs()
    for key, sent in payload.items():
        value: Any = None if sent == "" else sent  # Ruddr: empty strings become null
        if key == "opportunityStageId":
            name, status = STAGES[value]
            opportunity["opportunityStage"] = {"id": value, "name": name, "statusId": status}
        elif key == "companyId":
            opportunity["company"] = {"id": value, "name": refs.key_for(SYSTEM, "company", value)}
        elif key == "ownerId":
            opportunity["owner"] = None if value is None else {"id": value, "name": "Someone"}
        else:
            opportunity[key] = value
    return opportunity


def test_seed_reads_as_expected() -> None:
    """The documented Ruddr example maps to these canonical values."""
    assert MAPPER.to_canonical(SYSTEM, SEED, make_refs()) == {
        "name": "Acme Corp - Mobile App",
        "description": "Proposal for a new mobile application.",
        "amount": "50000.00",
        "currency": "USD",
        "probability": "0.7500",
        "close_date": "2025-06-30",
        "priority": "high",
        "next_steps": "Follow up with client on proposal.",
        "stage": "proposal",
        "status": "open",
        "owner": "john.davis@example.com",
        "company": "Acme Corp",
        "lead_source": "Referral",
        "tags": ["Enterprise"],
        "external_ids": {"hubspot": "12345678", "salesforce": "0060b00000BkFxAAAV"},
    }


def test_seed_round_trips() -> None:
    """Seed → canonical → Ruddr payload → applied by Ruddr → the same canonical record."""
    _, payload = seed_round_trip(MAPPER, SYSTEM, SEED, BLANK, apply, make_refs())
    assert payload["opportunityStageId"] == "2b3c4d5e-6f7a-8901-bcde-f12345678901"
    assert payload["companyId"] == SEED["company"]["id"]
    assert payload["amount"] == 50000 and payload["probability"] == 0.75


@settings(max_examples=150, deadline=None)
@given(
    canonical_records(
        name=st.text(min_size=1, max_size=255),
        description=texts(),
        amount=amounts(),
        currency=pick(["USD", "EUR", "GBP"]),
        probability=probabilities(4),
        close_date=dates(),
        priority=pick(["high", "medium", "low"]),
        next_steps=texts(),
        stage=st.sampled_from(CANONICAL_STAGES),  # every Ruddr opportunity has a stage
        owner=pick(email for _, email in reference.USERS),
        company=st.sampled_from(reference.COMPANIES),
    )
)
def test_any_canonical_record_round_trips(record: dict[str, Any]) -> None:
    """Any canonical record written to Ruddr reads back identical, status from the stage type."""
    assert_canonical_round_trip(MAPPER, SYSTEM, record, BLANK, apply, make_refs())


def test_units_settle_on_a_round_trip() -> None:
    """An amount with three decimals, a probability with five, a date and a per-deal currency
    read as canonical (2 and 4 places, half-even), then write and read back unchanged."""
    vendor = {
        "amount": 1234.565,
        "probability": 0.75125,
        "closeDate": "2026-12-31",
        "currency": "EUR",
    }
    expected = {
        "amount": "1234.56",
        "probability": "0.7512",
        "close_date": "2026-12-31",
        "currency": "EUR",
    }
    assert_units_settle(MAPPER, SYSTEM, vendor, SEED, apply, make_refs(), expected)
