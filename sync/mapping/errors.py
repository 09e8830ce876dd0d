"""The two ways a mapping can fail, kept apart because the engine treats them differently.

- :class:`MappingError` — a value that cannot be converted (bad data): the record goes to the
  dead letters with this message (DESIGN.md §2.8).
- :class:`UnresolvedReference` — a company / owner / stage that the reference map does not know
  yet: the record is parked and retried when the map changes (DESIGN.md §2.6).

They deliberately do not inherit from each other, so ``except MappingError`` never parks and
``except UnresolvedReference`` never dead-letters by accident.
"""

from __future__ import annotations

#: how much of a value an error message quotes
_VALUE_CHARS = 80


class MappingError(ValueError):
    """A value of one field could not be converted; names system, field, vendor path and value."""

    def __init__(self, system: str, field: str, path: str, value: object, reason: str) -> None:
        # the reason first, the value after it and shortened: a 10,000-character value must
        # not push the reason out of a dead letter or a log line
        shown = repr(value)
        if len(shown) > _VALUE_CHARS:
            shown = f"{shown[:_VALUE_CHARS]}… ({len(shown)} characters)"
        super().__init__(f"{system}.{field}: {reason} ({path} = {shown})")
        self.system = system
        self.field = field
        self.path = path
        self.value = value
        self.reason = reason


class UnresolvedReference(LookupError):
    """A reference the resolver does not know.

    Outbound (``direction="outbound"``): no vendor id for the canonical ``key``. Inbound: no
    canonical key for the vendor id, given as ``key`` too (the message says which).
    """

    def __init__(
        self, system: str, field: str, kind: str, key: str, *, direction: str = "outbound"
    ) -> None:
        what = "canonical key" if direction == "outbound" else "vendor id"
        super().__init__(f"{system}.{field}: no {kind} known for {what} {key!r}")
        self.system = system
        self.field = field
        self.kind = kind
        self.key = key
        self.direction = direction
