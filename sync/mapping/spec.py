"""Typed model of the ``mapping:`` section of config.yaml (owned by the mapping layer).

``mapping`` is keyed by system name, then by canonical field (see ``sync.model``)::

    mapping:
      ruddr:
        name: name                          # shorthand: the vendor path, both directions
        stage: {read: opportunityStage.id, write: opportunityStageId, ref: stage,
                values: {Prospecting: prospecting, "Closed Won": won}}
        status: {read: opportunityStage.statusId, direction: inbound,
                 values: {open: open, won: won, lost: lost}}
        external_ids:                       # dict fields map per key
          salesforce: {path: salesforceId, direction: inbound}
        filter:                             # which records take part (all rules must hold)
          - {path: isActive, in: [true]}
      close:
        amount: {path: value, transform: cents}
        name: {path: custom.cf_OppName…}    # a flat Close key: write_flat is on by default
        record_id: custom.cf_CrmsyncId…     # where our record id lives (identity, create recovery)

One field, in the order the mapper applies it when reading (writing runs it backwards):

1. ``read`` (alias ``path``) — the vendor path (``sync.mapping.paths``: literal key, then nesting);
2. ``ref`` — the value is a vendor id of a company / owner / stage, turned into the canonical key
   by the reference map (writes turn the key back into that system's id);
3. ``transform`` — a unit conversion by name (``sync.mapping.transforms``); fields without one get
   their kind's default (``number`` for money and probability, ``date`` for dates);
4. ``values`` — vendor value → canonical value; ``"*"`` is the default for any other vendor value
   on read. On write the FIRST vendor value mapping to a canonical value is written, unless
   ``write_values`` (canonical → vendor) says otherwise. Vendor values are matched as text
   (``true``/``false`` for booleans), so a YAML key is never a trap.

``write`` is one path or a list (written to all), ``write_flat`` makes a dotted write path one
literal key (default: on for ``custom.`` paths of a ``close`` system, off elsewhere).
``default`` is a canonical value used on create when the record has none. ``direction``:
``both`` (default), ``inbound`` (read only) or ``outbound`` (write only). ``status`` is always
inbound: it is derived from the vendor's stage or status type, never written.

Every check here raises a pydantic error at the exact key (``mapping.close.stage.values``), which
the config loader turns into ``config.yaml:LINE key.path: …``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sync.mapping.paths import get_path
from sync.mapping.transforms import TRANSFORMS
from sync.model import CANONICAL_FIELDS, CanonicalValueError, normalize

Direction = Literal["both", "inbound", "outbound"]
RefKind = Literal["company", "owner", "stage"]

#: The fields of :class:`SystemMapping` that are canonical fields mapped whole.
SCALAR_FIELDS: tuple[str, ...] = tuple(
    name for name, kind in CANONICAL_FIELDS.items() if kind != "dict"
)
#: Canonical dict fields, mapped key by key (``external_ids: {salesforce: …}``).
DICT_FIELDS: tuple[str, ...] = tuple(
    name for name, kind in CANONICAL_FIELDS.items() if kind == "dict"
)


_RELATIVE_DATE = re.compile(r"^today(?:([+-])(\d+)d)?$")


def relative_date(value: object, today: dt.date | None = None) -> str | None:
    """A date default relative to the day of the create: ``today``, ``today+30d``, ``today-1d``
    (Salesforce requires a CloseDate; a fixed date would be wrong the next month)."""
    match = _RELATIVE_DATE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    days = int(match.group(2) or 0) * (-1 if match.group(1) == "-" else 1)
    return ((today or dt.date.today()) + dt.timedelta(days=days)).isoformat()


def check_path(path: str) -> str:
    """A vendor path is dot-separated non-empty keys: ``amount..x``, ``.amount`` or
    ``amount.`` would read nothing and write a key nobody asked for."""
    if any(part.strip() == "" for part in path.split(".")):
        raise PydanticCustomError(
            "path", 'a vendor path of non-empty keys joined by dots (like "stage.id")'
        )
    return path


def _check_paths(value: str | list[str] | None) -> str | list[str] | None:
    if isinstance(value, list):
        for path in value:
            check_path(path)
    elif value is not None:
        check_path(value)
    return value


def vendor_text(value: object) -> str:
    """A vendor value as text for ``values`` look-ups (JSON spelling for booleans and null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


class FieldSpec(BaseModel):
    """How one canonical field maps onto one system."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    read: str = Field(alias="path", min_length=1, description="vendor path (dots for nesting)")
    write: str | list[str] | None = Field(
        default=None, description="vendor path(s) to write; defaults to read"
    )
    write_flat: bool | None = None
    direction: Direction = "both"
    transform: str | None = None
    ref: RefKind | None = None
    values: dict[str, str] | None = None
    write_values: dict[str, str] | None = None
    default: Any = None

    @field_validator("read", "write")
    @classmethod
    def _well_formed_paths(cls, value: str | list[str] | None) -> str | list[str] | None:
        return _check_paths(value)

    @field_validator("transform")
    @classmethod
    def _known_transform(cls, name: str | None) -> str | None:
        if name is not None and name not in TRANSFORMS:
            raise PydanticCustomError(
                "transform", "one of {known}", {"known": ", ".join(TRANSFORMS)}
            )
        return name

    @field_validator("values", "write_values")
    @classmethod
    def _non_empty_values(cls, values: dict[str, str] | None) -> dict[str, str] | None:
        if values is not None and not values:
            raise PydanticCustomError("values", "at least one value (or leave it out)")
        return values

    @model_validator(mode="after")
    def _coherent(self) -> FieldSpec:
        if self.direction == "inbound" and (self.write is not None or self.write_values):
            raise PydanticCustomError(
                "direction", "no write/write_values on an inbound (read-only) field"
            )
        return self

    @property
    def reads(self) -> bool:
        return self.direction in ("both", "inbound")

    @property
    def writes(self) -> bool:
        return self.direction in ("both", "outbound")

    @property
    def write_paths(self) -> list[str]:
        if self.write is None:
            return [self.read]
        return [self.write] if isinstance(self.write, str) else list(self.write)


def _shorthand(value: Any) -> Any:
    """``name: name`` is ``name: {path: name}``."""
    return {"path": value} if isinstance(value, str) else value


FieldOrPath = Annotated[FieldSpec, BeforeValidator(_shorthand)]


class FilterRule(BaseModel):
    """One condition on a vendor record: the value at ``path`` is ``in`` / ``not_in`` a list.

    Values are compared as text (:func:`vendor_text`), so ``in: [true]`` matches a JSON ``true``
    and ``in: [null]`` matches a missing value.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    path: str = Field(min_length=1)
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None

    @field_validator("path")
    @classmethod
    def _well_formed_path(cls, value: str) -> str:
        return check_path(value)

    @model_validator(mode="after")
    def _one_operator(self) -> FilterRule:
        if (self.in_ is None) == (self.not_in is None):
            raise PydanticCustomError("filter", "exactly one of in: [...] or not_in: [...]")
        return self

    def matches(self, data: Mapping[str, Any]) -> bool:
        """Whether the record satisfies this rule."""
        value = vendor_text(get_path(data, self.path))
        if self.in_ is not None:
            return value in {vendor_text(v) for v in self.in_}
        return value not in {vendor_text(v) for v in self.not_in or ()}


def _canonical(field: str, value: object, what: str) -> None:
    try:
        normalized = normalize(field, value)
    except CanonicalValueError as exc:
        raise PydanticCustomError(
            "canonical",
            "canonical {field} values in {what} ({error})",
            {"what": what, "field": field, "error": str(exc)},
        ) from exc
    if normalized != value and not isinstance(value, int | float):
        raise PydanticCustomError(
            "canonical",
            "{what}: {value} is not in canonical form (did you mean {normal}?)",
            {"what": what, "value": repr(value), "normal": repr(normalized)},
        )


class SystemMapping(BaseModel):
    """How every canonical field maps onto one system, plus which records take part."""

    model_config = ConfigDict(extra="forbid")

    name: FieldOrPath | None = None
    description: FieldOrPath | None = None
    amount: FieldOrPath | None = None
    currency: FieldOrPath | None = None
    probability: FieldOrPath | None = None
    stage: FieldOrPath | None = None
    status: FieldOrPath | None = None
    close_date: FieldOrPath | None = None
    owner: FieldOrPath | None = None
    company: FieldOrPath | None = None
    priority: FieldOrPath | None = None
    next_steps: FieldOrPath | None = None
    lead_source: FieldOrPath | None = None
    tags: FieldOrPath | None = None
    custom: dict[str, FieldOrPath] = Field(default_factory=dict)
    external_ids: dict[str, FieldOrPath] = Field(default_factory=dict)
    filter: list[FilterRule] = Field(default_factory=list)
    record_id: FieldOrPath | None = Field(
        default=None, description="vendor path holding crmsync's record id (identity, recovery)"
    )

    @field_validator(*SCALAR_FIELDS)
    @classmethod
    def _canonical_values(cls, spec: FieldSpec | None, info: ValidationInfo) -> FieldSpec | None:
        field = str(info.field_name)
        if spec is None:
            return None
        if field == "status" and spec.direction != "inbound":
            raise PydanticCustomError(
                "direction",
                "status is derived from the vendor's stage/status type: direction: inbound",
            )
        for canonical in (spec.values or {}).values():
            _canonical(field, canonical, "values")
        for canonical in spec.write_values or {}:
            _canonical(field, canonical, "write_values keys")
        if spec.default is not None and not relative_date(spec.default):
            _canonical(field, spec.default, "default")
        return spec

    @model_validator(mode="after")
    def _one_writer_per_path(self) -> SystemMapping:
        writers: dict[str, str] = {}
        for field, spec in self.entries():
            if not spec.writes:
                continue
            for path in spec.write_paths:
                if path in writers:
                    raise PydanticCustomError(
                        "mapping",
                        "{a} and {b} both write {path}",
                        {"a": writers[path], "b": field, "path": path},
                    )
                writers[path] = field
        return self

    def entries(self) -> Iterator[tuple[str, FieldSpec]]:
        """Every mapped field as (``field`` or ``field.key`` for dict fields, spec)."""
        for field in SCALAR_FIELDS:
            spec = getattr(self, field)
            if spec is not None:
                yield field, spec
        for field in DICT_FIELDS:
            for key, spec in getattr(self, field).items():
                yield f"{field}.{key}", spec


MappingSpec = dict[str, SystemMapping]


# --------------------------------------------------------------------------- stage vocabulary

StageProblem = tuple[tuple[str | int, ...], str, str]


def _stage_names(spec: FieldSpec) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every canonical stage a stage mapping names, with the key path where it is written."""
    for vendor, canonical in (spec.values or {}).items():
        yield ("values", vendor), canonical
    for canonical in spec.write_values or {}:
        yield ("write_values", canonical), canonical
    if isinstance(spec.default, str):
        yield ("default",), spec.default


def stage_vocabulary_problems(mapping: Mapping[str, SystemMapping]) -> Iterator[StageProblem]:
    """Canonical stages that some system writing stages cannot write.

    There is no list of canonical stages to check against: the vocabulary is what the systems'
    ``values`` maps agree on. A deal can only be in a stage every system that writes stages
    from a closed ``values`` map can write (otherwise its pushes there dead-letter with "no
    vendor value maps to it"), so each canonical stage named anywhere — ``values``,
    ``write_values`` keys, ``default`` — must be writable by every other such system. A system
    mapping stages without ``values`` writes whatever name the vendor's stage list holds, so it
    constrains nothing. When a name is missing from a system that has a rarer near-miss of it
    (``prospectin`` beside ``prospecting``), the near-miss is the typo and is reported there.
    """
    specs = {name: m.stage for name, m in mapping.items() if m.stage is not None}
    named = {name: {c for _, c in _stage_names(spec)} for name, spec in specs.items()}
    writers = {
        name: set((spec.values or {}).values()) | set(spec.write_values or {})
        for name, spec in specs.items()
        if spec.writes and (spec.values or spec.write_values)
    }
    counts: dict[str, int] = {}
    for names in named.values():
        for canonical in names:
            counts[canonical] = counts.get(canonical, 0) + 1
    vocabulary = sorted(counts)
    for system, spec in specs.items():
        for where, canonical in _stage_names(spec):
            missing = [
                other
                for other, writable in writers.items()
                if other != system
                and canonical not in writable
                and not _has_typo_of(canonical, writable, counts)
            ]
            if missing:
                yield (
                    ("mapping", system, "stage", *where),
                    _stage_expected(canonical, vocabulary),
                    f'"{canonical}", which {", ".join(missing)} cannot write',
                )


def _has_typo_of(canonical: str, writable: set[str], counts: Mapping[str, int]) -> bool:
    rivals = [c for c in writable if c != canonical and counts.get(c, 0) < counts[canonical]]
    return bool(difflib.get_close_matches(canonical, rivals, n=1))


def _stage_expected(canonical: str, vocabulary: list[str]) -> str:
    others = [c for c in vocabulary if c != canonical]
    close = difflib.get_close_matches(canonical, others, n=1)
    listed = ", ".join(others)
    hint = f'"{close[0]}" (canonical stages: {listed})' if close else f"one of {listed}"
    return f"a canonical stage every system writing stages maps: {hint}"
