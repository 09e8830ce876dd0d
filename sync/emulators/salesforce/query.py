"""Running a parsed SOQL query over the emulator's tables: field checks, filter, order, render.

Field names are case-insensitive as in SOQL; string comparisons are too. Every filter value
must have its field's type (an unquoted datetime for a datetime field, a quoted string for a
text field, ...), else ``INVALID_FIELD`` with Salesforce's wording.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from sync.emulators.salesforce.common import (
    RELATIONSHIPS,
    Field,
    SalesforceError,
    invalid_field,
    normalise_id,
    stamp,
)
from sync.emulators.salesforce.soql import Compare, Condition, Logical, Query, Token

Schema = dict[str, Field]
Row = dict[str, Any]
#: (object name) -> (schema, rows by id); raises INVALID_TYPE for unknown objects
Lookup = Callable[[str], tuple[Schema, dict[str, Row]]]

_TEXT = {"id", "string", "picklist", "textarea", "reference"}
_NUMBER = {"double", "percent", "currency"}
_TYPE_NAMES = {"datetime": "dateTime", "date": "date", "boolean": "boolean"}


class Resolved:
    """A field path checked against the schema: how to read it from a row."""

    def __init__(self, source: str, lookup: Lookup, path: tuple[str, ...]) -> None:
        schema, _ = lookup(source)
        self._lookup = lookup
        if len(path) == 1:
            self.relation: tuple[str, str, str] | None = None
            self.name = _field_name(schema, path[0], source)
            self.field = schema[self.name]
            return
        relation = next((r for r in RELATIONSHIPS if r.lower() == path[0].lower()), None)
        if source != "Opportunity" or relation is None:
            raise invalid_field(
                f"Didn't understand relationship '{path[0]}' in field path. If you are "
                "attempting to use a custom relationship, be sure to append the '__r'"
            )
        key, target = RELATIONSHIPS[relation]
        target_schema, _ = lookup(target)
        self.relation = (relation, key, target)
        self.name = _field_name(target_schema, path[1], target)
        self.field = target_schema[self.name]

    def read(self, row: Row) -> Any:
        if self.relation is None:
            return row.get(self.name)
        related = self.related(row)
        return None if related is None else related.get(self.name)

    def key(self, row: Row) -> Any:
        """The value to compare and sort by: text case-insensitively, ids exactly."""
        value = self.read(row)
        if isinstance(value, str) and self.field.type not in {"id", "reference"}:
            return value.casefold()
        return value

    def fold(self, value: Any) -> Any:
        if isinstance(value, str) and self.field.type not in {"id", "reference"}:
            return value.casefold()
        return value

    def related(self, row: Row) -> Row | None:
        assert self.relation is not None
        _, key, target = self.relation
        ref = row.get(key)
        return None if ref is None else self._lookup(target)[1].get(ref)


def _field_name(schema: Schema, name: str, source: str) -> str:
    for candidate in schema:
        if candidate.lower() == name.lower():
            return candidate
    raise invalid_field(
        f"No such column '{name}' on entity '{source}'. If you are attempting to use a custom "
        "field, be sure to append the '__c' after the custom field name. Please reference "
        "your WSDL or the describe call for the appropriate names."
    )


def execute(query: Query, lookup: Lookup, include_deleted: bool, version: str) -> list[Row]:
    """The rendered records the query selects, in its order, after OFFSET and LIMIT."""
    _, table = lookup(query.source)
    selected = [Resolved(query.source, lookup, path) for path in query.fields]
    predicate = _compile(query.where, query.source, lookup)
    rows = [
        row
        for row in table.values()
        if (include_deleted or not row.get("IsDeleted")) and predicate(row)
    ]
    rows.sort(key=lambda row: (row.get("CreatedDate") or dt.datetime.min, row["Id"]))
    for order in reversed(query.order):  # stable sorts, last key first
        resolved = Resolved(query.source, lookup, order.path)
        present = [r for r in rows if resolved.read(r) is not None]
        missing = [r for r in rows if resolved.read(r) is None]
        present.sort(key=resolved.key, reverse=order.descending)
        rows = present + missing if order.nulls_last else missing + present
    rows = rows[query.offset :]
    if query.limit is not None:
        rows = rows[: query.limit]
    return [render(query.source, row, selected, version) for row in rows]


def render(source: str, row: Row, selected: Iterable[Resolved], version: str) -> Row:
    out: Row = {"attributes": attributes(source, row["Id"], version)}
    for resolved in selected:
        if resolved.relation is None:
            out[resolved.name] = to_json(row.get(resolved.name))
            continue
        relation, _, target = resolved.relation
        related = resolved.related(row)
        if related is None:
            out[relation] = None
            continue
        nested = out.get(relation) or {"attributes": attributes(target, related["Id"], version)}
        nested[resolved.name] = to_json(related.get(resolved.name))
        out[relation] = nested
    return out


def attributes(source: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": source, "url": f"/services/data/v{version}/sobjects/{source}/{record_id}"}


def to_json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return stamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# -- WHERE ----------------------------------------------------------------------------------
def _compile(where: Condition | None, source: str, lookup: Lookup) -> Callable[[Row], bool]:
    if where is None:
        return lambda row: True
    if isinstance(where, Logical):
        parts = [_compile(part, source, lookup) for part in where.parts]
        if where.op == "NOT":
            return lambda row: not parts[0](row)
        if where.op == "AND":
            return lambda row: all(part(row) for part in parts)
        return lambda row: any(part(row) for part in parts)
    return _compare(where, Resolved(source, lookup, where.path))


def _compare(node: Compare, resolved: Resolved) -> Callable[[Row], bool]:
    values = [_typed(resolved, token) for token in node.values]
    if node.op in {"IN", "NOT IN"}:
        wanted = {resolved.fold(v) for v in values}
        inside = node.op == "IN"
        return lambda row: (resolved.key(row) in wanted) == inside
    value = resolved.fold(values[0])
    op = node.op
    if value is None and op not in {"=", "!="}:
        raise SalesforceError(400, "MALFORMED_QUERY", f"invalid operator on null: {op}")

    def check(row: Row) -> bool:
        have = resolved.key(row)
        if op == "=":
            return bool(have == value)
        if op == "!=":
            return bool(have != value)
        if have is None or value is None:
            return False
        return bool(
            {"<": have < value, "<=": have <= value, ">": have > value, ">=": have >= value}[op]
        )

    return check


def _typed(resolved: Resolved, token: Token) -> Any:
    """The token's value, if it has the field's type (else Salesforce's INVALID_FIELD)."""
    kind = resolved.field.type
    if token.kind == "keyword" and token.text == "NULL":
        return None
    if kind in _TEXT and token.kind == "string":
        if kind in {"id", "reference"}:
            return normalise_id(token.value) or token.value
        return token.value
    if kind in _NUMBER and token.kind == "number":
        return token.value
    if kind == "boolean" and token.kind == "keyword":
        return token.text == "TRUE"
    if kind == "datetime" and token.kind == "datetime":
        return token.value
    if kind == "date" and token.kind == "date":
        return token.value
    expected = _TYPE_NAMES.get(kind, "string" if kind in _TEXT else "number")
    quoted = "should not be enclosed in quotes" if kind not in _TEXT else "should be quoted"
    raise invalid_field(
        f"value of filter criterion for field '{resolved.name}' must be of type {expected} "
        f"and {quoted}"
    )
