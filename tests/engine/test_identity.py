"""The identity rules (sync.engine.identity): which keys a deal has, and how the journal names
the key a deal was matched by."""

from __future__ import annotations

from sqlmodel import Session, SQLModel

from sync.engine.identity import describe_key, index_keys_of, keys_of
from sync.store import records
from sync.store.db import make_engine
from sync.store.models import Record, RecordKey


def test_a_deal_has_its_external_ids_then_its_natural_key_ignoring_case() -> None:
    fields = {
        "name": "Acme Renewal",
        "company": "ACME",
        "external_ids": {"salesforce": "006A", "hubspot": ""},
    }
    keys = keys_of(fields, ["name", "company"])
    assert keys[0] == ("salesforce", "006A")  # an empty id is no key
    assert [ns for ns, _ in keys] == ["salesforce", "natural"]
    lower = keys_of({**fields, "name": "acme renewal", "company": "acme"}, ["name", "company"])
    assert lower[-1] == keys[-1]


def test_a_deal_missing_part_of_the_natural_key_has_no_natural_key() -> None:
    assert keys_of({"name": "Acme", "company": ""}, ["name", "company"]) == []


def test_the_journal_names_the_natural_key_by_its_fields_and_an_id_by_its_value() -> None:
    assert describe_key("natural", "ab12…", ["name", "company"]) == "natural key name+company"
    assert describe_key("salesforce", "006A", ["name"]) == "salesforce id 006A"


def test_indexing_several_records_gives_a_key_to_the_first_that_wants_it() -> None:
    """``index_keys_of`` indexes a batch with one look-up: a key already stored stays with
    its record, and of two records in the batch wanting one key, the first keeps it."""
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        stored = [
            Record(id=rid, fields={"external_ids": {"salesforce": sf}})
            for rid, sf in (("old", "006A"), ("a", "006A"), ("b", "006B"), ("c", "006B"))
        ]
        session.add_all(stored)
        session.flush()
        session.add(RecordKey(record_id="old", namespace="salesforce", value="006A"))
        session.flush()
        index_keys_of(session, stored[1:], [])
        keys = records.keys_among(session, ["salesforce"], ["006A", "006B"])
        assert {(k.value, k.record_id) for k in keys} == {("006A", "old"), ("006B", "b")}
    engine.dispose()
