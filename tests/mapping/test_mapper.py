"""The Mapper reads, writes, resolves references, applies defaults and filters as configured."""

from __future__ import annotations

import pytest

from sync.mapping.errors import MappingError, UnresolvedReference
from sync.mapping.mapper import Mapper

from .support import FakeRefs, config_with_mapping

CF_NAME = "custom.cf_name"
MAPPING = f"""
crm:
  name: {CF_NAME}
  amount: {{path: value, transform: cents}}
  probability: {{path: confidence, transform: percent}}
  stage:
    path: status_id
    ref: stage
    values: {{Prospecting: prospecting, Qualification: qualification, Won: won}}
  status: {{read: status_type, direction: inbound, values: {{active: open, won: won}}}}
  owner: {{path: user_id, ref: owner}}
  company: {{path: lead_id, ref: company}}
  currency: {{path: value_currency, direction: inbound}}
  next_steps: {{path: next, direction: outbound}}
  priority: {{path: prio, default: medium}}
  external_ids:
    salesforce: {{path: sfid, direction: inbound}}
    hubspot: {{path: hsid, direction: inbound}}
  record_id: custom.cf_ours
  filter:
    - {{path: pipeline_name, in: [Sales]}}
psa:
  name: name
  stage:
    path: stage
    values: {{needs_analysis: qualification, qualification: qualification, closed_won: won}}
    write_values: {{won: closed_won}}
  tags: {{path: custom.tags, transform: tags_csv}}
  description: {{read: details.text, write: detailsText, write_flat: false}}
"""


@pytest.fixture
def mapper() -> Mapper:
    return Mapper(config_with_mapping({"crm": "close", "psa": "parsalink"}, MAPPING))


@pytest.fixture
def refs() -> FakeRefs:
    return FakeRefs(
        {
            ("crm", "stage"): {"stat_1": "Prospecting", "stat_2": "Qualification", "stat_9": "Won"},
            ("crm", "owner"): {"user_1": "john.davis@example.com"},
            ("crm", "company"): {"lead_1": "Acme Corp"},
        }
    )


CRM_RECORD = {
    "id": "oppo_1",
    CF_NAME: "Mobile App",
    "value": 5000000,
    "confidence": 75,
    "status_id": "stat_2",
    "status_type": "active",
    "user_id": "user_1",
    "lead_id": "lead_1",
    "value_currency": "usd",
    "next": "ignored: outbound only",
    "prio": "HIGH",
    "sfid": "006ABC",
    "hsid": None,
    "custom.cf_ours": "rec_42",
    "pipeline_name": "Sales",
}


def test_to_canonical_reads_inbound_and_both_fields(mapper: Mapper, refs: FakeRefs) -> None:
    """Vendor JSON becomes canonical values: units converted, references and stages resolved."""
    assert mapper.to_canonical("crm", CRM_RECORD, refs) == {
        "name": "Mobile App",
        "amount": "50000.00",
        "probability": "0.7500",
        "stage": "qualification",
        "status": "open",
        "owner": "john.davis@example.com",
        "company": "Acme Corp",
        "currency": "USD",
        "priority": "high",
        "external_ids": {"salesforce": "006ABC"},
    }


def test_missing_values_read_as_none(mapper: Mapper, refs: FakeRefs) -> None:
    """Absent keys read as None (not skipped), and an empty dict field is {}."""
    record = mapper.to_canonical("crm", {"id": "oppo_2"}, refs)
    assert record["name"] is None and record["stage"] is None and record["amount"] is None
    assert record["external_ids"] == {}


def test_stage_value_missing_from_values_is_a_mapping_error(mapper: Mapper) -> None:
    """A stage the values map does not know is a MappingError naming system, field, path, value."""
    refs = FakeRefs({("crm", "stage"): {"stat_7": "Discovery"}})
    with pytest.raises(MappingError) as caught:
        mapper.to_canonical("crm", {"status_id": "stat_7"}, refs)
    error = caught.value
    assert (error.system, error.field, error.path, error.value) == (
        "crm",
        "stage",
        "status_id",
        "Discovery",
    )
    assert "Prospecting" in str(error)


def test_unconvertible_vendor_value_is_a_mapping_error(mapper: Mapper, refs: FakeRefs) -> None:
    """A value outside the transform's domain names system, field, path and value."""
    with pytest.raises(MappingError) as caught:
        mapper.to_canonical("crm", {"confidence": 140}, refs)
    assert (caught.value.field, caught.value.path, caught.value.value) == (
        "probability",
        "confidence",
        140,
    )


def test_unknown_vendor_id_on_read_is_unresolved(mapper: Mapper) -> None:
    """An owner id the reference map does not know parks the record instead of clearing it."""
    with pytest.raises(UnresolvedReference) as caught:
        mapper.to_canonical("crm", {"user_id": "user_404"}, FakeRefs())
    error = caught.value
    assert (error.system, error.field, error.kind, error.key, error.direction) == (
        "crm",
        "owner",
        "owner",
        "user_404",
        "inbound",
    )


def test_to_vendor_writes_only_present_writable_fields(mapper: Mapper, refs: FakeRefs) -> None:
    """Only fields given are written; inbound-only fields never are; refs become vendor ids."""
    payload = mapper.to_vendor(
        "crm",
        {
            "amount": "1234.56",
            "owner": "john.davis@example.com",
            "status": "won",
            "currency": "EUR",
            "external_ids": {"salesforce": "006X"},
        },
        refs,
        for_create=False,
    )
    assert payload == {"value": 123456, "user_id": "user_1"}


def test_to_vendor_flat_custom_keys_for_close(mapper: Mapper, refs: FakeRefs) -> None:
    """A close system writes `custom.cf_…` as one flat key; other paths nest."""
    payload = mapper.to_vendor("crm", {"name": "Deal"}, refs, for_create=False)
    assert payload == {CF_NAME: "Deal"}
    payload = mapper.to_vendor(
        "psa", {"tags": ["b", "a"], "description": "x"}, FakeRefs(), for_create=False
    )
    assert payload == {"custom": {"tags": "a, b"}, "detailsText": "x"}


def test_to_vendor_writes_first_vendor_value_or_write_values(mapper: Mapper) -> None:
    """qualification is written as the first vendor value mapping to it; won per write_values."""
    refs = FakeRefs()
    assert mapper.to_vendor("psa", {"stage": "qualification"}, refs, for_create=False) == {
        "stage": "needs_analysis"
    }
    assert mapper.to_vendor("psa", {"stage": "won"}, refs, for_create=False) == {
        "stage": "closed_won"
    }


def test_to_vendor_stage_goes_through_values_then_ref(mapper: Mapper, refs: FakeRefs) -> None:
    """Canonical stage → vendor stage name → that system's stage id."""
    assert mapper.to_vendor("crm", {"stage": "won"}, refs, for_create=False) == {
        "status_id": "stat_9"
    }


def test_canonical_value_without_vendor_value_is_a_mapping_error(mapper: Mapper) -> None:
    """A canonical stage no vendor value maps to cannot be written (names the write path)."""
    with pytest.raises(MappingError) as caught:
        mapper.to_vendor("psa", {"stage": "negotiation"}, FakeRefs(), for_create=False)
    assert (caught.value.system, caught.value.field, caught.value.path) == ("psa", "stage", "stage")


def test_unresolvable_reference_on_write(mapper: Mapper, refs: FakeRefs) -> None:
    """A company the target does not know raises UnresolvedReference(system, field, kind, key)."""
    with pytest.raises(UnresolvedReference) as caught:
        mapper.to_vendor("crm", {"company": "Initech"}, refs, for_create=True)
    error = caught.value
    assert (error.system, error.field, error.kind, error.key) == (
        "crm",
        "company",
        "company",
        "Initech",
    )


def test_none_is_written_as_null_to_clear(mapper: Mapper, refs: FakeRefs) -> None:
    """A cleared canonical value is written as null, without asking the reference map."""
    assert mapper.to_vendor(
        "crm", {"owner": None, "amount": None}, FakeRefs(), for_create=False
    ) == {"user_id": None, "value": None}


def test_defaults_apply_on_create_only(mapper: Mapper, refs: FakeRefs) -> None:
    """`default` fills a missing field on create, never on update."""
    assert mapper.to_vendor("crm", {}, refs, for_create=True) == {"prio": "medium"}
    assert mapper.to_vendor("crm", {"priority": None}, refs, for_create=True) == {"prio": "medium"}
    assert mapper.to_vendor("crm", {"priority": "low"}, refs, for_create=True) == {"prio": "low"}
    assert mapper.to_vendor("crm", {}, refs, for_create=False) == {}


def test_record_id_is_written_on_create_and_read_back(mapper: Mapper, refs: FakeRefs) -> None:
    """crmsync's record id goes to the system's record_id slot on create and is found again."""
    payload = mapper.to_vendor("crm", {}, refs, for_create=True, record_id="rec_42")
    assert payload["custom.cf_ours"] == "rec_42"
    assert mapper.record_id_of("crm", CRM_RECORD) == "rec_42"
    assert mapper.record_id_of("psa", {"id": "x"}) is None
    assert "custom.cf_ours" not in mapper.to_vendor(
        "crm", {}, refs, for_create=False, record_id="rec_42"
    )


def test_fields_for_each_direction(mapper: Mapper) -> None:
    """fields_for lists the canonical fields read, written, or mapped both ways."""
    assert mapper.fields_for("crm", "inbound") == {
        "name",
        "amount",
        "probability",
        "stage",
        "status",
        "owner",
        "company",
        "currency",
        "priority",
        "external_ids",
    }
    assert mapper.fields_for("crm", "outbound") == {
        "name",
        "amount",
        "probability",
        "stage",
        "owner",
        "company",
        "next_steps",
        "priority",
    }
    assert mapper.fields_for("crm", "both") == {
        "name",
        "amount",
        "probability",
        "stage",
        "owner",
        "company",
        "priority",
    }


def test_accepts_applies_the_filter(mapper: Mapper) -> None:
    """Only records passing every filter rule take part; a system without a filter takes all."""
    assert mapper.accepts("crm", {"pipeline_name": "Sales"})
    assert not mapper.accepts("crm", {"pipeline_name": "Renewals"})
    assert not mapper.accepts("crm", {})
    assert mapper.accepts("psa", {})


def test_unknown_system_is_a_key_error(mapper: Mapper) -> None:
    """Asking about a system without a mapping names the mapped systems."""
    with pytest.raises(KeyError, match="crm, psa"):
        mapper.to_canonical("nope", {}, FakeRefs())


def test_mapping_for_an_unconfigured_system_is_refused() -> None:
    """A mapping section naming a system absent from `systems` fails at construction."""
    config = config_with_mapping({"crm": "close"}, "ghost: {name: name}")
    with pytest.raises(ValueError, match="ghost"):
        Mapper(config)


def test_mapper_is_pure(mapper: Mapper, refs: FakeRefs) -> None:
    """Mapping never mutates the vendor object or the canonical fields it is given."""
    record = dict(CRM_RECORD)
    fields = {"stage": "won", "external_ids": {"salesforce": "1"}}
    mapper.to_canonical("crm", record, refs)
    mapper.to_vendor("crm", fields, refs, for_create=True)
    assert record == CRM_RECORD
    assert fields == {"stage": "won", "external_ids": {"salesforce": "1"}}
