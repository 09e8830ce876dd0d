"""The shipped config.yaml loads, names the emulators' reference data and maps every stage."""

from __future__ import annotations

import pytest

from sync.config import PreferPolicy, load_config
from sync.emulators import reference
from sync.model import CANONICAL_FIELDS

from .support import CANONICAL_STAGES, ROOT, FakeRefs, shipped_config, shipped_mapper

MAPPER = shipped_mapper()
CONFIG = shipped_config()

#: Each system's stages in the reference data: (vendor stage value, status type as canonical).
REFERENCE_STAGES: dict[str, list[tuple[str, str]]] = {
    "ruddr": [(name, status) for name, _, status in reference.RUDDR_STAGES],
    "close": [
        (label, {"active": "open"}.get(kind, kind)) for label, kind in reference.CLOSE_STATUSES
    ],
    "parsalink": [
        (value, {"closed_won": "won", "closed_lost": "lost"}.get(value, "open"))
        for value in reference.PARSALINK_STAGES
    ],
    "truto_salesforce": [
        (name, "won" if won else "lost" if closed else "open")
        for name, closed, won in reference.SALESFORCE_STAGES
    ],
    "salesforce": [
        (name, "won" if won else "lost" if closed else "open")
        for name, closed, won in reference.SALESFORCE_STAGES
    ],
}


def stage_record(system: str, value: str, status: str) -> tuple[dict[str, object], FakeRefs]:
    """A vendor record in a stage, plus references that resolve the stage id to its name."""
    refs = FakeRefs({(system, "stage"): {f"id:{value}": value}})
    if system == "ruddr":
        return {"opportunityStage": {"id": f"id:{value}", "statusId": status}}, refs
    if system == "close":
        kind = {"open": "active"}.get(status, status)
        return {"status_id": f"id:{value}", "status_type": kind}, refs
    if system == "parsalink":
        return {"stage": value}, refs
    if system == "salesforce":
        return {"StageName": value}, refs
    return {"stage": {"id": value, "name": value}}, refs


def test_loads_with_emulator_defaults() -> None:
    """With no environment the file points at the local emulators with their test credentials."""
    assert set(CONFIG.systems) == {
        "ruddr", "close", "parsalink", "truto_salesforce", "salesforce", "hubspot",
    }  # fmt: skip
    assert CONFIG.systems["salesforce"].base_url == "http://127.0.0.1:8715"
    assert CONFIG.systems["salesforce"].credentials == {
        "client_id": "crmsync-test-client", "client_secret": "crmsync-test-secret",
    }  # fmt: skip
    assert CONFIG.systems["hubspot"].base_url == "http://127.0.0.1:8716"
    assert CONFIG.systems["hubspot"].credentials == {"token": "hubspot-test-token"}
    assert CONFIG.systems["ruddr"].base_url == "http://127.0.0.1:8711/api/workspace"
    assert CONFIG.systems["close"].base_url == "http://127.0.0.1:8712/api/v1"
    assert CONFIG.systems["parsalink"].base_url == "http://127.0.0.1:8713/api"
    assert CONFIG.systems["truto_salesforce"].base_url == "http://127.0.0.1:8714/unified/crm"
    assert CONFIG.systems["ruddr"].credentials == {"token": "ruddr-test-token"}
    assert CONFIG.systems["close"].credentials == {"api_key": "close-test-key"}
    assert CONFIG.systems["parsalink"].credentials == {"api_key": "pk_test_parsalink"}
    assert CONFIG.systems["truto_salesforce"].credentials == {"token": "truto-test-token"}
    truto = CONFIG.systems["truto_salesforce"]
    assert truto.type == "truto"
    assert truto.options["integrated_account_id"] == reference.TRUTO_ACCOUNTS["salesforce"]


def test_environment_overrides_urls_and_credentials() -> None:
    """`${VAR:-default}` takes the environment's value when set."""
    config = load_config(
        ROOT / "config.yaml",
        env={"CLOSE_BASE_URL": "https://api.close.com/api/v1", "CLOSE_API_KEY": "real"},
    )
    assert config.systems["close"].base_url == "https://api.close.com/api/v1"
    assert config.systems["close"].credentials == {"api_key": "real"}


def test_conflict_policies_are_automatic() -> None:
    """Default `latest` with 5 s skew, the priority order, and one `prefer` example."""
    conflicts = CONFIG.conflicts
    assert conflicts.default == "latest"
    assert conflicts.skew.total_seconds() == 5
    assert conflicts.priority == ["ruddr", "close", "parsalink", "truto_salesforce", "salesforce"]
    assert any(isinstance(p, PreferPolicy) for p in conflicts.fields.values())
    assert "manual" not in conflicts.fields.values()
    assert "# description: manual" in (ROOT / "config.yaml").read_text(encoding="utf-8")


def test_close_name_lives_in_the_reference_custom_field() -> None:
    """Close's name and record id are the reference data's custom fields, written flat."""
    name_field, id_field, tags_field = (cf for cf, _, _ in reference.CLOSE_CUSTOM_FIELDS)
    payload = MAPPER.to_vendor(
        "close", {"name": "Deal", "tags": ["x"]}, FakeRefs(), for_create=True, record_id="r1"
    )
    assert payload == {
        f"custom.{name_field}": "Deal",
        f"custom.{tags_field}": ["x"],
        f"custom.{id_field}": "r1",
    }


@pytest.mark.parametrize("system", sorted(REFERENCE_STAGES))
def test_every_reference_stage_reads_with_its_status(system: str) -> None:
    """Every stage of the reference data maps to a canonical stage, and status to its type."""
    for value, status in REFERENCE_STAGES[system]:
        record, refs = stage_record(system, value, status)
        canonical = MAPPER.to_canonical(system, record, refs)
        assert canonical["stage"] in CANONICAL_STAGES, (system, value)
        assert canonical["status"] == status, (system, value)
        expected_stage = {"won": "won", "lost": "lost"}.get(status)
        if expected_stage:
            assert canonical["stage"] == expected_stage


@pytest.mark.parametrize("system", sorted(REFERENCE_STAGES))
def test_every_canonical_stage_is_written_to_a_reference_stage(system: str) -> None:
    """Each canonical stage is written as one of the system's own stages."""
    known = {value for value, _ in REFERENCE_STAGES[system]}
    refs = FakeRefs({(system, "stage"): {f"id:{value}": value for value in known}})
    for stage in CANONICAL_STAGES:
        payload = MAPPER.to_vendor(system, {"stage": stage}, refs, for_create=False)
        written = {
            "ruddr": lambda p: p["opportunityStageId"].removeprefix("id:"),
            "close": lambda p: p["status_id"].removeprefix("id:"),
            "parsalink": lambda p: p["stage"],
            "truto_salesforce": lambda p: p["stage"]["name"],
            "salesforce": lambda p: p["StageName"],
        }[system](payload)
        assert written in known, (system, stage, written)


def test_every_canonical_field_is_mapped_somewhere() -> None:
    """Each canonical field but `custom` is read from at least one system."""
    mapped = set().union(*(MAPPER.fields_for(s, "inbound") for s in MAPPER.systems))
    assert set(CANONICAL_FIELDS) - mapped == {"custom"}


def test_ruddrs_salesforce_id_names_the_truto_org_only() -> None:
    """Two Salesforce orgs are shipped: Ruddr's salesforceId is matched against the Truto
    system's opportunity ids only (the direct org declares no `salesforce` external id), and
    the direct one maps StageName with Probability (derived from it), Account and Owner."""
    assert "external_ids" in MAPPER.fields_for("truto_salesforce", "inbound")
    assert "external_ids" not in MAPPER.fields_for("salesforce", "inbound")
    payload = MAPPER.to_vendor(
        "salesforce",
        {"stage": "proposal", "probability": 0.75, "amount": 10.5, "owner": "o", "company": "c"},
        FakeRefs(
            {("salesforce", "owner"): {"005x": "o"}, ("salesforce", "company"): {"001x": "c"}}
        ),
        for_create=False,
    )
    assert payload == {
        "StageName": "Proposal/Price Quote", "Probability": 75, "Amount": 10.5,
        "OwnerId": "005x", "AccountId": "001x",
    }  # fmt: skip


def test_identity_keys_are_inbound_only() -> None:
    """Ruddr's salesforceId / hubspotId and Truto's Salesforce id are read, never written."""
    for system in ("ruddr", "truto_salesforce"):
        assert "external_ids" in MAPPER.fields_for(system, "inbound")
        assert "external_ids" not in MAPPER.fields_for(system, "outbound")
