"""Truto unified opportunities of a Salesforce account (seed 001 shape) map to canonical and back.

The account is reference.TRUTO_ACCOUNTS["salesforce"]; Salesforce-only fields come from remote_data.
"""

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
    assert_units_settle,
    canonical_records,
    dates,
    probabilities,
    reference_refs,
    seed_round_trip,
    shipped_mapper,
    tag_lists,
    texts,
)

SYSTEM = "truto_salesforce"
MAPPER = shipped_mapper()

#: A unified opportunity (seed 001 response body) with the Salesforce record in remote_data.
SEED: dict[str, Any] = {
    "id": "0060b00000BkFxAAAV",
    "name": "Acme Corp - Mobile App",
    "description": "Proposal for a new mobile application.",
    "amount": 50000,
    "currency": None,
    "owner": {"id": "sf-user-0"},
    "account": {"id": "sf-company-0"},
    "contact": [],
    "stage": {"id": "Proposal/Price Quote", "name": "Proposal/Price Quote"},
    "status": None,
    "tags": [],
    "last_activity_at": None,
    "close_date": "2025-06-30T00:00:00.000Z",
    "created_at": "2025-01-15T20:47:03.000Z",
    "updated_at": "2025-01-16T08:00:00.000Z",
    "custom_fields": {"Crmsync_Id__c": "rec_01HX", "Tags__c": "Enterprise, Renewal"},
    "remote_data": {
        "Id": "0060b00000BkFxAAAV",
        "Name": "Acme Corp - Mobile App",
        "StageName": "Proposal/Price Quote",
        "Probability": 75,
        "NextStep": "Follow up with client on proposal.",
        "LeadSource": "Web",
        "IsClosed": False,
        "IsWon": False,
        "Amount": 50000,
        "CloseDate": "2025-06-30",
        "SystemModstamp": "2025-01-16T08:00:00.000+0000",
    },
}
BLANK: dict[str, Any] = {
    "id": SEED["id"],
    "created_at": SEED["created_at"],
    "updated_at": SEED["updated_at"],
    "custom_fields": {"Crmsync_Id__c": "rec_01HX"},
    "remote_data": {"Id": SEED["id"]},
}

#: Create-body fields Truto documents for Salesforce (seed 001), plus remote_data pass-through.
WRITABLE = {
    "account",
    "name",
    "amount",
    "currency",
    "owner",
    "close_date",
    "custom_fields",
    "description",
    "contact",
    "stage",
    "remote_data",
}


def make_refs() -> FakeRefs:
    return reference_refs(SYSTEM, "sf-")


def merge(target: dict[str, Any], payload: dict[str, Any]) -> None:
    for key, value in payload.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def apply(opportunity: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Apply a POST/PATCH body as Truto over Salesforce does (objects merged, stage by name)."""
    assert set(payload) <= WRITABLE, set(payload) - WRITABLE
    if "stage" in payload:
        assert payload["stage"]["id"] == payload["stage"]["name"]  # a stage is its picklist name
    merge(opportunity, payload)
    return opportunity


def test_seed_reads_as_expected() -> None:
    """Unified fields, remote_data Salesforce fields and the stage name map to canonical."""
    assert MAPPER.to_canonical(SYSTEM, SEED, make_refs()) == {
        "name": "Acme Corp - Mobile App",
        "description": "Proposal for a new mobile application.",
        "amount": "50000.00",
        "currency": "USD",  # the account's currency: the record carries none
        "probability": "0.7500",
        "close_date": "2025-06-30",
        "next_steps": "Follow up with client on proposal.",
        "lead_source": "Web",
        "stage": "proposal",
        "status": "open",
        "owner": "john.davis@example.com",
        "company": "Acme Corp",
        "tags": ["Enterprise", "Renewal"],
        "external_ids": {"salesforce": "0060b00000BkFxAAAV"},
    }
    assert MAPPER.record_id_of(SYSTEM, SEED) == "rec_01HX"


def test_seed_round_trips() -> None:
    """Seed → canonical → Truto payload → applied → the same canonical record."""
    _, payload = seed_round_trip(MAPPER, SYSTEM, SEED, BLANK, apply, make_refs())
    assert payload["stage"] == {"id": "Proposal/Price Quote", "name": "Proposal/Price Quote"}
    assert payload["remote_data"] == {
        "Probability": 75,
        "NextStep": "Follow up with client on proposal.",
        "LeadSource": "Web",
    }
    assert payload["custom_fields"] == {"Tags__c": "Enterprise, Renewal"}
    assert payload["close_date"] == "2025-06-30T00:00:00Z"


@pytest.mark.parametrize(
    ("name", "stage", "status"),
    [
        ("Needs Analysis", "qualification", "open"),
        ("Negotiation/Review", "negotiation", "open"),
        ("Closed Won", "won", "won"),
        ("Closed Lost", "lost", "lost"),
    ],
)
def test_stage_names_give_stage_and_status(name: str, stage: str, status: str) -> None:
    """Salesforce picklist names give the canonical stage; the closed ones give won/lost."""
    record = MAPPER.to_canonical(SYSTEM, {"stage": {"id": name, "name": name}}, FakeRefs())
    assert (record["stage"], record["status"]) == (stage, status)


@settings(max_examples=150, deadline=None)
@given(
    canonical_records(
        name=st.text(min_size=1, max_size=120),
        description=texts(),
        amount=amounts(),
        probability=probabilities(2),
        close_date=dates(),
        next_steps=texts(),
        lead_source=texts(20),
        tags=tag_lists(),
        stage=st.sampled_from(CANONICAL_STAGES),
        owner=st.sampled_from([email for _, email in reference.USERS]),
        company=st.sampled_from(reference.COMPANIES),
    )
)
def test_any_canonical_record_round_trips(record: dict[str, Any]) -> None:
    """Any canonical record Salesforce can hold (whole percents) reads back identical."""
    assert_canonical_round_trip(MAPPER, SYSTEM, record, BLANK, apply, make_refs())


def test_units_settle_on_a_round_trip() -> None:
    """Truto's amount with three decimals, Salesforce's percent with a fraction, a close date
    rendered as midnight UTC in New York and the deal's currency: read, written (the date as
    midnight UTC) and read again, the calendar day and the figures stay put."""
    vendor = {
        "amount": 12.345,
        "currency": "EUR",
        "close_date": "2026-12-30T19:00:00-05:00",
        "remote_data": {**SEED["remote_data"], "Probability": 75.5},
    }
    expected = {
        "amount": "12.34",
        "currency": "EUR",
        "close_date": "2026-12-31",
        "probability": "0.7550",
    }
    stored = {**SEED, **vendor}
    first = MAPPER.to_canonical(SYSTEM, stored, make_refs())
    assert {name: first[name] for name in expected} == expected
    payload = MAPPER.to_vendor(SYSTEM, expected, make_refs(), for_create=False)
    assert payload["close_date"] == "2026-12-31T00:00:00Z" and payload["currency"] == "EUR"
    assert payload["remote_data"]["Probability"] == 76  # a whole percent, half-even
    again = MAPPER.to_canonical(SYSTEM, apply(stored, payload), make_refs())
    assert {name: again[name] for name in expected} == {**expected, "probability": "0.7600"}
    assert_units_settle(
        MAPPER, SYSTEM, {**vendor, "remote_data": {**SEED["remote_data"], "Probability": 76}},
        SEED, apply, make_refs(), {**expected, "probability": "0.7600"},
    )  # fmt: skip
