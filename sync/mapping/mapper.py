"""The mapper: a vendor's raw JSON ⇄ a partial canonical record, for every configured system.

Pure: no I/O. References (company, owner, stage) go through a :class:`RefResolver` the engine
supplies over its reference map; the mapper only asks it questions.

Reading (:meth:`Mapper.to_canonical`) takes every ``inbound``/``both`` field of the system:
vendor path → reference key → transform → ``values`` → ``sync.model.normalize``. Writing
(:meth:`Mapper.to_vendor`) runs the same steps backwards for the ``both``/``outbound`` fields
present in ``fields``. Decisions worth knowing:

- ``status`` comes from the vendor's stage/status *type* through ``values`` (Ruddr
  ``opportunityStage.statusId``, Close ``status_type``, ParsaLink's ``closed_won`` /
  ``closed_lost`` enum values, Salesforce's closed stage names behind Truto), never written.
- A vendor value missing from ``values`` (and no ``"*"``) is a :class:`MappingError`: an
  unknown stage goes to the dead letters with its name rather than being guessed.
- An unknown vendor id on read and an unknown key on write both raise
  :class:`UnresolvedReference`, so the engine parks the record until the reference map knows it.
- Canonical dict fields (``external_ids``, ``custom``) are mapped key by key and always read
  as a whole dict (keys whose value is ``None`` dropped, as ``normalize`` does).
- Close opportunities have no name: the shipped config maps ``name`` to a Close custom field.
  Close's ``lead_id`` (the ``company`` reference) must be on every create; that is the
  engine's required-on-create check, not the mapper's.
- ``default`` (a canonical value) fills a field on create when the record has none.
- A record with an amount and no currency read from a system whose currency model is
  ``fixed`` or ``multi`` (``systems.NAME.currency``) gets that system's currency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sync.mapping.derived import Derived, DerivedDeclaration, under
from sync.mapping.entry import Entry, Reader, flat_default
from sync.mapping.errors import UnresolvedReference
from sync.mapping.paths import get_path, getter, set_path
from sync.mapping.spec import FieldSpec, SystemMapping, relative_date, vendor_text
from sync.mapping.transforms import (
    TransformError,
    default_for_kind,
    get_transform,
)
from sync.model import CANONICAL_FIELDS, CanonicalValueError, Fields, normalize, normalizer
from sync.money_config import resolve

if TYPE_CHECKING:
    from sync.config import Config

JSON = Any
DirectionQuery = Literal["inbound", "outbound", "both"]

_ANY = "*"


class RefResolver(Protocol):
    """The engine's reference map, as the mapper sees it."""

    def key_for(self, system: str, kind: str, vendor_id: str) -> str | None:
        """Canonical key (company name, owner e-mail, stage name) of a vendor id, if known."""
        ...

    def id_for(self, system: str, kind: str, key: str) -> str | None:
        """The vendor id in ``system`` of a canonical key, if known."""
        ...


class Mapper:
    """Maps every configured system's records to canonical fields and back."""

    def __init__(self, config: Config) -> None:
        unknown = sorted(set(config.mapping) - set(config.systems))
        if unknown:
            raise ValueError(f"mapping names systems not configured: {', '.join(unknown)}")
        self._mappings: dict[str, SystemMapping] = dict(config.mapping)
        self._entries: dict[str, list[Entry]] = {
            system: list(self._resolve(system, mapping, config.systems[system].type))
            for system, mapping in config.mapping.items()
        }
        # the entries a vendor record is read through, filtered once: to_canonical runs for
        # every deal of every capture, and ``spec.reads`` is a property call per entry
        self._reading: dict[str, tuple[Reader, ...]] = {
            system: tuple(
                (entry.field, entry.key, self._reader(entry))
                for entry in entries
                if entry.spec.reads
            )
            for system, entries in self._entries.items()
        }
        self._record_ids: dict[str, Entry] = {
            system: self._entry(
                system, "record_id", None, mapping.record_id, config.systems[system].type
            )
            for system, mapping in config.mapping.items()
            if mapping.record_id is not None
        }
        self._derived: dict[tuple[str, tuple[Any, ...]], tuple[Derived, ...]] = {}
        # A figure read from a system that holds one currency is in that currency (Close's
        # value_currency says so itself; ParsaLink documents no currency field at all).
        self._account_currency: dict[str, str] = {}
        for system in config.mapping:
            model = resolve(config.systems[system].type, config.systems[system].currency)
            if model.mode != "per_deal" and model.code is not None:
                self._account_currency[system] = model.code

    # -- construction ------------------------------------------------------------------------
    @staticmethod
    def _entry(
        system: str, field: str, key: str | None, spec: FieldSpec, system_type: str
    ) -> Entry:
        kind = CANONICAL_FIELDS.get(field, "text")
        transform = get_transform(spec.transform) if spec.transform else default_for_kind(kind)
        flat = (
            spec.write_flat
            if spec.write_flat is not None
            else all(flat_default(system_type, path) for path in spec.write_paths)
        )
        convert = None if transform.name == "identity" else transform.to_canonical
        done = key is not None or (transform.gives == kind and spec.values is None)
        norm = None if done else normalizer(field)
        return Entry(system, field, key, spec, transform, flat, convert, norm)

    def _resolve(self, system: str, mapping: SystemMapping, system_type: str) -> Iterator[Entry]:
        for label, spec in mapping.entries():
            field, _, key = label.partition(".")
            yield self._entry(system, field, key or None, spec, system_type)

    def _system(self, system: str) -> list[Entry]:
        try:
            return self._entries[system]
        except KeyError:
            known = ", ".join(self._entries) or "(none)"
            raise KeyError(f"no mapping for system {system!r}; mapped: {known}") from None

    # -- queries -------------------------------------------------------------------------------
    @property
    def systems(self) -> list[str]:
        """The systems that have a mapping."""
        return list(self._entries)

    def spec_of(self, system: str, field: str) -> FieldSpec | None:
        """The mapping of one canonical field in one system (None when unmapped)."""
        for entry in self._system(system):
            if entry.field == field and entry.key is None:
                return entry.spec
        return None

    def fields_for(self, system: str, direction: DirectionQuery) -> set[str]:
        """Canonical fields read from (``inbound``), written to (``outbound``) or both ways."""
        entries = self._system(system)
        if direction == "inbound":
            return {e.field for e in entries if e.spec.reads}
        if direction == "outbound":
            return {e.field for e in entries if e.spec.writes}
        return {e.field for e in entries if e.spec.reads and e.spec.writes}

    def derived(self, system: str, declared: Iterable[DerivedDeclaration]) -> tuple[Derived, ...]:
        """The connector's derived fields that this system's mapping reads, as canonical fields
        (a declaration whose path no mapped field reads is left out)."""
        key = (system, tuple(declared))
        found = self._derived.get(key)
        if found is None:
            found = tuple(self._derive(system, key[1]))
            self._derived[key] = found
        return found

    def _derive(self, system: str, declared: Iterable[DerivedDeclaration]) -> Iterator[Derived]:
        reading = [e for e in self._system(system) if e.spec.reads and e.key is None]
        for decl in declared:
            for entry in reading:
                if entry.spec.read != decl.path:
                    continue
                sources = frozenset(
                    e.field
                    for e in reading
                    if under(e.spec.read, decl.source) and e.field != entry.field
                )
                if sources:
                    yield Derived(
                        entry.field,
                        sources,
                        decl.accepts_value,
                        decl.why,
                        decl.source,
                        decl.default,
                    )

    def read_value(self, system: str, field: str, raw: JSON, refs: RefResolver) -> JSON:
        """A vendor value of ``field`` (as found at its read path) in canonical form."""
        for entry in self._system(system):
            if entry.field == field and entry.key is None and entry.spec.reads:
                return self._read(entry, raw, refs)
        raise KeyError(f"{system} does not read {field}")

    def accepts(self, system: str, data: Mapping[str, Any]) -> bool:
        """Whether a vendor record takes part in the sync (every ``filter`` rule holds)."""
        self._system(system)
        return all(rule.matches(data) for rule in self._mappings[system].filter)

    def holds_record_id(self, system: str) -> bool:
        """Whether the system's deals carry crmsync's record id (a mapped ``record_id`` slot)."""
        return system in self._record_ids

    def record_id_paths(self, system: str) -> tuple[str, ...]:
        """Where a create to the system writes crmsync's record id (none: no slot)."""
        entry = self._record_ids.get(system)
        return tuple(entry.spec.write_paths) if entry is not None else ()

    def record_id_of(self, system: str, data: Mapping[str, Any]) -> str | None:
        """crmsync's record id stored in the vendor record, where the system has a slot for it."""
        entry = self._record_ids.get(system)
        if entry is None:
            return None
        value = get_path(data, entry.spec.read)
        return None if value in (None, "") else str(value)

    # -- vendor → canonical ----------------------------------------------------------------------
    def to_canonical(self, system: str, data: Mapping[str, Any], refs: RefResolver) -> Fields:
        """The partial canonical record of one vendor object (inbound and both fields only)."""
        record: Fields = {}
        dicts: dict[str, dict[str, JSON]] = {}
        self._system(system)  # an unmapped system's error
        for field, key, read in self._reading[system]:
            value = read(data, refs)
            if key is None:
                record[field] = value
            else:
                dicts.setdefault(field, {})[key] = value
        for field, items in dicts.items():
            record[field] = normalize(field, items)
        code = self._account_currency.get(system)
        if code and record.get("amount") is not None and record.get("currency") is None:
            record["currency"] = code
        return record

    def _reader(self, entry: Entry) -> Callable[[Mapping[str, Any], RefResolver], JSON]:
        """How one field is read from a vendor record: ``_read`` of the value at its path,
        down to a look-up and a normaliser for a plain field (no reference, transform or
        values: most of them)."""
        get = getter(entry.spec.read)
        spec, norm = entry.spec, entry.norm
        if spec.ref or spec.values is not None or entry.convert or entry.transform.accepts_none:
            return lambda data, refs: self._read(entry, get(data), refs)
        if norm is None:
            return lambda data, refs: get(data)

        def plain(data: Mapping[str, Any], refs: RefResolver) -> JSON:
            raw = get(data)
            if raw is None:
                return None
            try:
                return norm(raw)
            except CanonicalValueError as exc:
                raise entry.error(raw, str(exc)) from exc

        return plain

    def _read(self, entry: Entry, raw: JSON, refs: RefResolver) -> JSON:
        if raw is None and not entry.transform.accepts_none:
            return None
        value = raw
        if entry.spec.ref is not None:
            value = self._key_for(entry, raw, refs)
        if entry.convert is not None:
            try:
                value = entry.convert(value)
            except TransformError as exc:
                raise entry.error(raw, str(exc)) from exc
        if entry.spec.values is not None and value is not None:
            value = self._canonical_value(entry, value)
        if entry.norm is None:
            return value
        try:
            return entry.norm(value)
        except CanonicalValueError as exc:
            raise entry.error(raw, str(exc)) from exc

    @staticmethod
    def _key_for(entry: Entry, raw: JSON, refs: RefResolver) -> str:
        kind = str(entry.spec.ref)
        key = refs.key_for(entry.system, kind, str(raw))
        if key is None:
            raise UnresolvedReference(
                entry.system, entry.label, kind, str(raw), direction="inbound"
            )
        return key

    @staticmethod
    def _canonical_value(entry: Entry, value: JSON) -> JSON:
        values = entry.spec.values or {}
        text = vendor_text(value)
        if text in values:
            return values[text]
        if _ANY in values:
            return values[_ANY]
        known = ", ".join(v for v in values if v != _ANY)
        raise entry.error(value, f"not in the values map ({known})")

    # -- canonical → vendor ------------------------------------------------------------------------
    def to_vendor(
        self,
        system: str,
        fields: Mapping[str, JSON],
        refs: RefResolver,
        *,
        for_create: bool,
        record_id: str | None = None,
    ) -> dict[str, JSON]:
        """The write payload for the ``both``/``outbound`` fields present in ``fields``.

        On create, ``default``s fill fields the record lacks, and ``record_id`` (crmsync's id)
        is written where the system has a ``record_id`` slot.
        """
        payload: dict[str, JSON] = {}
        for entry in self._system(system):
            if not entry.spec.writes:
                continue
            present, value = self._value_of(entry, fields)
            if value is None and for_create and entry.spec.default is not None:
                present, value = True, self._default(entry)
            if present:
                self._write(entry, payload, self._vendor_value(entry, value, refs))
        slot = self._record_ids.get(system)
        if for_create and slot is not None and record_id is not None:
            self._write(slot, payload, record_id)
        return payload

    @staticmethod
    def _default(entry: Entry) -> JSON:
        default = entry.spec.default
        if entry.key is not None:
            return default
        return normalize(entry.field, relative_date(default) or default)

    @staticmethod
    def _value_of(entry: Entry, fields: Mapping[str, JSON]) -> tuple[bool, JSON]:
        if entry.field not in fields:
            return False, None
        value = fields[entry.field]
        if entry.key is None:
            return True, value
        return True, (value or {}).get(entry.key)

    @staticmethod
    def _write(entry: Entry, payload: dict[str, JSON], value: JSON) -> None:
        for path in entry.spec.write_paths:
            try:
                set_path(payload, path, value, flat=entry.flat)
            except ValueError as exc:
                raise entry.error(value, str(exc), path=path) from exc

    def _vendor_value(self, entry: Entry, value: JSON, refs: RefResolver) -> JSON:
        if value is None:
            return None
        path = entry.spec.write_paths[0]
        vendor = value
        if entry.spec.values is not None or entry.spec.write_values is not None:
            vendor = self._vendor_choice(entry, value, path)
        try:
            vendor = entry.transform.to_vendor(vendor)
        except TransformError as exc:
            raise entry.error(value, str(exc), path=path) from exc
        if entry.spec.ref is not None:
            vendor = self._id_for(entry, vendor, refs)
        return vendor

    @staticmethod
    def _vendor_choice(entry: Entry, value: JSON, path: str) -> JSON:
        """``write_values`` first, else the first vendor value that reads as ``value``."""
        if entry.spec.write_values and value in entry.spec.write_values:
            return entry.spec.write_values[value]
        for vendor, canonical in (entry.spec.values or {}).items():
            if vendor != _ANY and canonical == value:
                return vendor
        raise entry.error(value, "no vendor value maps to it (add it to values)", path=path)

    @staticmethod
    def _id_for(entry: Entry, key: JSON, refs: RefResolver) -> str:
        kind = str(entry.spec.ref)
        vendor_id = refs.id_for(entry.system, kind, str(key))
        if vendor_id is None:
            raise UnresolvedReference(entry.system, entry.label, kind, str(key))
        return vendor_id
