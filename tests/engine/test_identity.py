"""The identity rules (sync.engine.identity): which keys a deal has, and how the journal names
the key a deal was matched by."""

from __future__ import annotations

from sync.engine.identity import describe_key, keys_of


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
