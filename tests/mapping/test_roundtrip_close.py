"""Close opportunities (spec `Opportunity` shape, flat custom fields) map to canonical and back."""

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
    assert_lossy_write_settles,
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

SYSTEM = "close"
MAPPER = shipped_mapper()
CF_NAME, CF_ID, CF_TAGS = (f"custom.{cf_id}" for cf_id, _, _ in reference.CLOSE_CUSTOM_FIELDS)
STATUSES = {
    f"stat_{i:022d}": (label, kind) for i, (label, kind) in enumerate(reference.CLOSE_STATUSES)
}

#: An opportunity as Close answers it (tests/specs/close-openapi.yml `Opportunity`, seeds 002/004).
SEED: dict[str, Any] = {
    "id": "oppo_8eB77gAdf8FMy6GsNHEy84f7uoeEWv55slvUjKQZpJt",
    "organization_id": "orga_bwwWG475zqWiQGur0thQshwVXo8rIYecQHDWFanqhen",
    "lead_id": "close-company-0",
    "lead_name": "Acme Corp",
    "contact_id": None,
    "contact_name": None,
    "user_id": "close-user-0",
    "user_name": "John Davis",
    "status_id": "stat_0000000000000000000002",
    "status_label": "Proposal",
    "status_type": "active",
    "status_display_name": "Proposal",
    "pipeline_id": "pipe_0iYJ3sNdWfVGbXx6zNvYOv",
    "pipeline_name": "Sales",
    "value": 300000,
    "value_period": "one_time",
    "value_formatted": "$3,000",
    "value_currency": "USD",
    "expected_value": 225000,
    "annualized_value": 300000,
    "annualized_expected_value": 225000,
    "confidence": 75,
    "note": "Proposal for a new mobile application.",
    "date_won": "2025-06-30",
    "date_lost": None,
    "date_created": "2025-01-15T20:47:03.284000+00:00",
    "date_updated": "2025-01-16T08:00:00.000001+00:00",
    "created_by": "close-user-0",
    "created_by_name": "John Davis",
    "updated_by": "close-user-0",
    "updated_by_name": "John Davis",
    "attachments": [],
    "is_stalled": False,
    "integration_links": [],
    CF_NAME: "Acme Corp - Mobile App",
    CF_TAGS: ["Enterprise", "Renewal"],  # a multi-value text field
    CF_ID: "rec_01HX",
}
READ_ONLY = (
    "id",
    "organization_id",
    "value_currency",
    "value_period",
    "date_created",
    "date_updated",
    "pipeline_id",
    "pipeline_name",
    "attachments",
    "is_stalled",
    CF_ID,
)
BLANK = {key: SEED[key] for key in READ_ONLY}

#: `CreateOpportunity` properties (additionalProperties false, patternProperties ^custom\.).
CREATE_BODY = {
    "attachments",
    "confidence",
    "contact_id",
    "created_by",
    "custom_fields",
    "date_created",
    "date_won",
    "lead_id",
    "note",
    "pipeline_id",
    "status_id",
    "user_id",
    "value",
    "value_period",
}


def make_refs() -> FakeRefs:
    refs = reference_refs(SYSTEM, "close-")
    for status_id, (label, _) in STATUSES.items():
        refs.add(SYSTEM, "stage", status_id, label)
    return refs


def apply(opportunity: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Apply a POST/PUT body as Close does (PUT acts as PATCH) and answer the opportunity."""
    unknown = {k for k in payload if not k.startswith("custom.")} - CREATE_BODY
    assert not unknown, unknown
    for key, value in payload.items():
        if key.startswith("custom."):
            if value is None:
                opportunity.pop(key, None)  # Close leaves unset custom fields off the object
            else:
                assert isinstance(value, list) == (key == CF_TAGS)  # multi-value takes a list
                opportunity[key] = value
        elif key == "status_id":
            label, kind = STATUSES[value]
            opportunity.update(status_id=value, status_label=label, status_type=kind)
        elif key == "date_won":
            opportunity["date_won"] = None if value is None else value[:10]  # answered as a date
        else:
            opportunity[key] = value
    return opportunity


def test_seed_reads_as_expected() -> None:
    """Close's cents, percent, status label/type and flat custom fields read as canonical."""
    assert MAPPER.to_canonical(SYSTEM, SEED, make_refs()) == {
        "name": "Acme Corp - Mobile App",
        "description": "Proposal for a new mobile application.",
        "amount": "3000.00",
        "currency": "USD",
        "probability": "0.7500",
        "close_date": "2025-06-30",
        "stage": "proposal",
        "status": "open",
        "owner": "john.davis@example.com",
        "company": "Acme Corp",
        "tags": ["Enterprise", "Renewal"],
    }
    assert MAPPER.record_id_of(SYSTEM, SEED) == "rec_01HX"


def test_seed_round_trips() -> None:
    """Seed → canonical → Close payload → applied by Close → the same canonical record."""
    _, payload = seed_round_trip(MAPPER, SYSTEM, SEED, BLANK, apply, make_refs())
    assert payload[CF_NAME] == "Acme Corp - Mobile App"  # a flat key, as Close requires
    assert payload["value"] == 300000 and payload["confidence"] == 75
    assert payload["lead_id"] == "close-company-0"
    assert payload["date_won"] == "2025-06-30T00:00:00Z"


def test_won_and_lost_come_from_status_type() -> None:
    """Status is Close's status_type (active → open), whatever the status label says."""
    refs = FakeRefs({(SYSTEM, "stage"): {"stat_x": "Won"}})
    record = {"status_id": "stat_x", "status_type": "lost"}
    assert MAPPER.to_canonical(SYSTEM, record, refs)["status"] == "lost"


def test_create_carries_our_record_id() -> None:
    """A create writes crmsync's record id into the crmsync ID custom field, flat."""
    payload = MAPPER.to_vendor(SYSTEM, {}, make_refs(), for_create=True, record_id="rec_9")
    assert payload == {CF_ID: "rec_9"}


@settings(max_examples=150, deadline=None)
@given(
    canonical_records(
        name=texts(),
        description=texts(),
        amount=amounts(),
        probability=probabilities(2),
        close_date=dates(),
        stage=st.sampled_from(CANONICAL_STAGES),  # every Close opportunity has a status
        owner=st.sampled_from([email for _, email in reference.USERS]),
        company=st.sampled_from(reference.COMPANIES),
        tags=tag_lists()
        | st.lists(st.sampled_from(["a,b", "x y", "Ünïcode"]), unique=True).map(sorted),
    )
)
def test_any_canonical_record_round_trips(record: dict[str, Any]) -> None:
    """Any canonical record Close can hold (whole percents) reads back identical."""
    assert_canonical_round_trip(MAPPER, SYSTEM, record, BLANK, apply, make_refs())


def test_units_settle_on_a_round_trip() -> None:
    """Cents, whole percent, a date (sent as a date-time, answered as the date) and the
    organization's currency: read, written and read again, nothing moves."""
    vendor = {"value": 123457, "confidence": 75, "date_won": "2026-12-31", "value_currency": "USD"}
    expected = {
        "amount": "1234.57",
        "probability": "0.7500",
        "close_date": "2026-12-31",
        "currency": "USD",
    }
    assert_units_settle(MAPPER, SYSTEM, vendor, SEED, apply, make_refs(), expected)
    # an amount finer than cents cannot reach Close: canonical money already has 2 places
    assert MAPPER.to_vendor(SYSTEM, {"amount": "1234.57"}, make_refs(), for_create=False) == {
        "value": 123457
    }
    assert_lossy_write_settles(
        MAPPER,
        SYSTEM,
        {"probability": "0.7512", "close_date": "2026-12-31"},
        SEED,
        apply,
        make_refs(),
        {"probability": "0.7500", "close_date": "2026-12-31"},
    )
