"""The mapping config models accept the documented forms and reject mistakes at the exact key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from sync.config import ConfigError, parse_config
from sync.mapping.spec import FieldSpec, FilterRule, MappingSpec, SystemMapping
from sync.model import CANONICAL_FIELDS

SPEC: TypeAdapter[dict[str, SystemMapping]] = TypeAdapter(MappingSpec)


def error_of(data: Any) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as caught:
        SPEC.validate_python(data)
    first = caught.value.errors(include_url=False)[0]
    return tuple(first["loc"]), str(first["msg"])


def test_system_mapping_has_a_key_for_every_canonical_field() -> None:
    """Every canonical field of sync.model can be mapped (and nothing else but filter/record_id)."""
    keys = set(SystemMapping.model_fields) - {"filter", "record_id"}
    assert keys == set(CANONICAL_FIELDS)


def test_shorthand_string_is_a_path_both_ways() -> None:
    """`name: name` is a field read and written at `name`."""
    spec = SPEC.validate_python({"ruddr": {"name": "name"}})["ruddr"].name
    assert spec == FieldSpec.model_validate({"path": "name"})
    assert spec is not None and spec.reads and spec.writes and spec.write_paths == ["name"]


def test_write_may_list_several_paths() -> None:
    """`write: [stage.id, stage.name]` writes both paths."""
    spec = FieldSpec.model_validate({"read": "stage.name", "write": ["stage.id", "stage.name"]})
    assert spec.write_paths == ["stage.id", "stage.name"]


def test_dict_fields_map_per_key() -> None:
    """`external_ids: {salesforce: …}` maps one key of the canonical dict."""
    mapping = SPEC.validate_python({"ruddr": {"external_ids": {"salesforce": "salesforceId"}}})
    assert [label for label, _ in mapping["ruddr"].entries()] == ["external_ids.salesforce"]


@pytest.mark.parametrize(
    ("data", "loc", "message"),
    [
        ({"x": {"nme": "name"}}, ("x", "nme"), "Extra inputs"),
        (
            {"x": {"amount": {"path": "value", "transform": "cent"}}},
            ("x", "amount", "transform"),
            "cents",
        ),
        ({"x": {"stage": {"path": "s", "ref": "pipeline"}}}, ("x", "stage", "ref"), "company"),
        (
            {"x": {"status": {"path": "s", "values": {"active": "Open"}, "direction": "inbound"}}},
            ("x", "status"),
            "open, won, lost",
        ),
        ({"x": {"status": {"path": "s"}}}, ("x", "status"), "direction: inbound"),
        ({"x": {"priority": {"path": "p", "default": "High"}}}, ("x", "priority"), "'high'"),
        (
            {"x": {"name": {"path": "n", "direction": "inbound", "write": "m"}}},
            ("x", "name"),
            "inbound",
        ),
        ({"x": {"stage": {"path": "s", "values": {}}}}, ("x", "stage", "values"), "at least one"),
        ({"x": {"name": "n", "description": {"read": "d", "write": "n"}}}, ("x",), "both write n"),
        ({"x": {"filter": [{"path": "isActive"}]}}, ("x", "filter", 0), "exactly one"),
        (
            {"x": {"filter": [{"path": "a", "in": [1], "not_in": [2]}]}},
            ("x", "filter", 0),
            "exactly one",
        ),
    ],
)
def test_mistakes_are_reported_at_their_key(
    data: Any, loc: tuple[str | int, ...], message: str
) -> None:
    """Each configuration mistake is a pydantic error at the key the loader points at."""
    error_loc, error_msg = error_of(data)
    assert error_loc == loc
    assert message in error_msg


def test_inbound_fields_may_share_a_read_path() -> None:
    """stage and status may both read ParsaLink's `stage`, since status never writes."""
    mapping = SPEC.validate_python(
        {
            "p": {
                "stage": {"path": "stage", "values": {"closed_won": "won"}},
                "status": {
                    "read": "stage",
                    "direction": "inbound",
                    "values": {"closed_won": "won", "*": "open"},
                },
            }
        }
    )
    assert mapping["p"].status is not None


@pytest.mark.parametrize(
    ("rule", "data", "expected"),
    [
        ({"path": "isActive", "in": [True]}, {"isActive": True}, True),
        ({"path": "isActive", "in": [True]}, {"isActive": False}, False),
        ({"path": "isActive", "in": [True]}, {}, False),
        ({"path": "pipeline_name", "in": ["Sales", "Renewals"]}, {"pipeline_name": "Sales"}, True),
        ({"path": "stage", "not_in": ["closed_lost"]}, {"stage": "closed_lost"}, False),
        ({"path": "stage", "not_in": ["closed_lost"]}, {"stage": "proposal"}, True),
        ({"path": "owner.id", "in": [None]}, {"owner": None}, True),
        ({"path": "custom.cf_x", "in": ["yes"]}, {"custom.cf_x": "yes"}, True),
    ],
)
def test_filter_rules(rule: dict[str, Any], data: dict[str, Any], expected: bool) -> None:
    """A rule compares the value at its path as text against `in` / `not_in`."""
    assert FilterRule.model_validate(rule).matches(data) is expected


def test_model_dumps_with_aliases_for_config_check() -> None:
    """The spec dumps back to the YAML spelling (`path`, `in`), as `crmsync config check` shows."""
    mapping = SPEC.validate_python(
        {"r": {"name": "name", "filter": [{"path": "isActive", "in": [True]}]}}
    )
    dumped = mapping["r"].model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert dumped == {"name": {"path": "name"}, "filter": [{"path": "isActive", "in": [True]}]}


def test_loader_points_at_the_line_of_a_mapping_mistake() -> None:
    """A bad transform in config.yaml is reported with its file line and key path."""
    text = (
        "systems:\n"
        "  close: {type: close, base_url: 'http://127.0.0.1:8712/api/v1'}\n"
        "mapping:\n"
        "  close:\n"
        "    name: custom.cf_x\n"
        "    amount: {path: value, transform: cent}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    assert str(caught.value.problems[0]).startswith(
        "config.yaml:6 mapping.close.amount.transform: expected one of identity, number, cents"
    )


def test_relative_date_defaults_resolve_against_today() -> None:
    """`today+30d` / `today-1d` / `today` are date defaults relative to the day of a create."""
    import datetime as dt

    from sync.mapping.spec import relative_date

    day = dt.date(2026, 1, 31)
    assert relative_date("today+30d", day) == "2026-03-02"
    assert relative_date("today-1d", day) == "2026-01-30"
    assert relative_date("today", day) == "2026-01-31"
    assert relative_date("2026-01-01", day) is None


# --------------------------------------------------------------------------- stage vocabulary


def stage_problems(stages: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str, str]]:
    from sync.mapping.spec import stage_vocabulary_problems

    mapping = SPEC.validate_python({name: {"stage": spec} for name, spec in stages.items()})
    return list(stage_vocabulary_problems(mapping))


def test_agreeing_stage_maps_have_no_problem() -> None:
    """Two systems whose `values` name the same canonical stages are consistent."""
    values = {"Open": "prospecting", "Won": "won"}
    assert (
        stage_problems({"a": {"path": "s", "values": values}, "b": {"path": "s", "values": values}})
        == []
    )


def test_a_stage_a_writer_cannot_write_is_reported_where_it_is_named() -> None:
    """`discovery`, read by a, has no vendor value in b (which writes stages): one problem at
    a's value, naming b."""
    found = stage_problems(
        {
            "a": {"path": "s", "values": {"Disc": "discovery", "Won": "won"}},
            "b": {"path": "s", "values": {"Won": "won"}},
        }
    )
    assert found == [
        (
            ("mapping", "a", "stage", "values", "Disc"),
            found[0][1],
            '"discovery", which b cannot write',
        )
    ]


def test_write_values_make_a_stage_writable_and_their_keys_are_checked() -> None:
    """A `write_values` entry lets b write a stage its `values` lack; a typo in a
    `write_values` key is a stage nobody else can write, reported at that key."""
    a = {"path": "s", "values": {"Disc": "discovery", "Won": "won"}}
    assert (
        stage_problems(
            {
                "a": a,
                "b": {"path": "s", "values": {"Won": "won"}, "write_values": {"discovery": "Won"}},
            }
        )
        == []
    )
    found = stage_problems(
        {
            "a": a,
            "b": {
                "path": "s",
                "values": {"Won": "won"},
                "write_values": {"discovery": "Won", "wno": "Won"},
            },
        }
    )
    assert [path for path, _, _ in found] == [("mapping", "b", "stage", "write_values", "wno")]
    assert '"won"' in found[0][1]


def test_open_and_read_only_stage_maps_constrain_nothing() -> None:
    """A system mapping stage without `values` writes the vendor's own names, and an inbound
    one writes nothing: `discovery`, which neither maps, is no problem."""
    found = stage_problems(
        {
            "a": {"path": "s", "values": {"Disc": "discovery", "Won": "won"}},
            "b": {"path": "s", "ref": "stage"},
            "c": {"path": "s", "direction": "inbound", "values": {"Won": "won"}},
        }
    )
    assert found == []


@pytest.mark.parametrize("path", ["amount..x", ".amount", "amount.", "a. .b", "."])
def test_paths_with_an_empty_key_are_rejected_in_read_write_and_filter(path: str) -> None:
    """A vendor path is non-empty keys joined by dots, in `read`, each `write` and a filter's
    `path` (`amount..x` used to be accepted and dead-letter every create at run time)."""
    for data, where in (
        ({"ruddr": {"amount": path}}, ("ruddr", "amount")),
        (
            {"ruddr": {"amount": {"read": "amount", "write": ["ok", path]}}},
            ("ruddr", "amount", "write"),
        ),
        ({"ruddr": {"filter": [{"path": path, "in": [1]}]}}, ("ruddr", "filter", 0, "path")),
    ):
        loc, message = error_of(data)
        assert loc[: len(where)] == where
        assert "non-empty keys joined by dots" in message
