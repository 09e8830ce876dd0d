"""``POST /crm/v3/objects/deals/search``: filter groups, sorts, paging and the 10,000 cap.

Filter groups are OR-ed, the filters of a group AND-ed. Numbers and date-times compare as
numbers (a date-time filter value is epoch milliseconds or ISO 8601); other values compare
as strings without case. A result set pages with ``after`` (an offset) up to 10,000 results:
a request past that is refused with 400, so a reader must narrow its filter instead.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from sync.emulators.hubspot.common import (
    MAX_FILTER_GROUPS,
    MAX_FILTERS,
    MAX_FILTERS_PER_GROUP,
    SEARCH_CAP,
    SEARCH_LIMIT,
    parse_when,
    validation,
)
from sync.emulators.hubspot.properties import DEFINITIONS

Props = dict[str, str]
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


def matcher(groups: Any) -> Callable[[Props], bool]:
    """A predicate over a deal's properties (as rendered) for ``filterGroups``."""
    if not isinstance(groups, list):
        raise validation("filterGroups must be a list")
    if len(groups) > MAX_FILTER_GROUPS:
        raise validation(f"Too many filter groups: at most {MAX_FILTER_GROUPS} are allowed.")
    compiled: list[list[Callable[[Props], bool]]] = []
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise validation("each filter group needs a list of filters")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise validation(f"Too many filters in a group: at most {MAX_FILTERS_PER_GROUP}.")
        compiled.append([_filter(f) for f in filters])
    if sum(len(g) for g in compiled) > MAX_FILTERS:
        raise validation(f"Too many filters: at most {MAX_FILTERS} in all groups.")
    if not compiled:
        return lambda props: True
    return lambda props: any(all(f(props) for f in group) for group in compiled)


def _filter(spec: Any) -> Callable[[Props], bool]:
    if not isinstance(spec, dict):
        raise validation("a filter must be an object")
    name, operator = spec.get("propertyName"), spec.get("operator")
    if operator not in OPERATORS:
        raise validation(f"Unknown filter operator: {operator}")
    prop = DEFINITIONS.get(str(name))
    if prop is None:
        raise validation(f"There was a problem with the request: {name} is not a valid property.")
    key = _key_function(prop.kind)
    if operator == "HAS_PROPERTY":
        return lambda props: props.get(str(name), "") != ""
    if operator == "NOT_HAS_PROPERTY":
        return lambda props: props.get(str(name), "") == ""
    if operator in ("IN", "NOT_IN"):
        values = spec.get("values")
        if not isinstance(values, list):
            raise validation(f"{operator} needs 'values'")
        wanted = {key(str(v)) for v in values}
        inside = operator == "IN"
        return lambda props: _has(props, str(name)) and (key(props[str(name)]) in wanted) == inside
    if "value" not in spec:
        raise validation(f"{operator} needs 'value'")
    value = key(str(spec["value"]))
    if value is None:
        raise validation(f"{spec['value']} is not a valid value for {name}")
    if operator == "BETWEEN":
        high = key(str(spec.get("highValue", "")))
        if high is None:
            raise validation("BETWEEN needs a valid 'highValue'")
        return _compare(str(name), key, lambda v: value <= v <= high)
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(spec["value"]).lower().strip("*")
        found = operator == "CONTAINS_TOKEN"
        return lambda props: (token in props.get(str(name), "").lower().split()) == found
    tests: dict[str, Callable[[Any], bool]] = {
        "EQ": lambda v: v == value,
        "NEQ": lambda v: v != value,
        "LT": lambda v: v < value,
        "LTE": lambda v: v <= value,
        "GT": lambda v: v > value,
        "GTE": lambda v: v >= value,
    }
    if operator == "NEQ":  # a deal without the property is "not equal" too
        return lambda props: not _has(props, str(name)) or key(props[str(name)]) != value
    return _compare(str(name), key, tests[str(operator)])


def _has(props: Props, name: str) -> bool:
    return props.get(name, "") != ""


def _compare(
    name: str, key: Callable[[str], Any], test: Callable[[Any], bool]
) -> Callable[[Props], bool]:
    def check(props: Props) -> bool:
        if not _has(props, name):
            return False
        value = key(props[name])
        return value is not None and test(value)

    return check


def _key_function(kind: str) -> Callable[[str], Any]:
    if kind == "datetime":
        return parse_when
    if kind == "number":
        return _number
    return lambda text: text.lower()


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def sort_key(sorts: Any) -> tuple[Callable[[Props], Any], bool]:
    """The order of ``sorts`` (one property; ``[{propertyName, direction}]`` or
    ``["name"]`` / ``["-name"]``): key, descending. Ties and the default: by id."""
    if not sorts:
        return (lambda props: int(props["hs_object_id"])), False
    if not isinstance(sorts, list) or len(sorts) > 1:
        raise validation("Only one sort is allowed.")
    first = sorts[0]
    if isinstance(first, str):
        name, descending = first.lstrip("-"), first.startswith("-")
    elif isinstance(first, dict):
        name = str(first.get("propertyName"))
        descending = str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
    else:
        raise validation("invalid sort")
    prop = DEFINITIONS.get(name)
    if prop is None:
        raise validation(f"There was a problem with the request: {name} is not a valid property.")
    key = _key_function(prop.kind)

    def by(props: Props) -> Any:
        value = key(props[name]) if _has(props, name) else None
        # unset values sort last ascending (first descending), ties by id
        return (value is None, value if value is not None else 0, int(props["hs_object_id"]))

    return by, descending


def paging(body: dict[str, Any]) -> tuple[int, int]:
    """``(offset, limit)`` of a search request; 400 past the 10,000 cap or over 200."""
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= SEARCH_LIMIT:
        raise validation(f"limit must be an integer between 1 and {SEARCH_LIMIT}")
    raw = body.get("after") or "0"
    if not str(raw).isdigit():
        raise validation(f"Invalid after: {raw}")
    offset = int(raw)
    if offset >= SEARCH_CAP:
        raise validation(
            f"Cannot page past {SEARCH_CAP} results: narrow the search with a filter instead."
        )
    return offset, limit
