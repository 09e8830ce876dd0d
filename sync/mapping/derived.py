"""Fields a vendor derives from another (DESIGN.md §2.11), in canonical terms: a connector
declares them in vendor paths (``connectors.base.DerivedField``), ``Mapper.derived`` matches
those paths against the system's mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DerivedDeclaration(Protocol):
    """What a connector declares of a field its vendor derives (``connectors.base.DerivedField``),
    in vendor paths."""

    @property
    def path(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def accepts_value(self) -> bool: ...
    @property
    def why(self) -> str: ...
    @property
    def default(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Derived:
    """A declared derived field in canonical terms: ``field`` follows ``sources`` in one system
    (DESIGN.md §2.11)."""

    field: str
    sources: frozenset[str]
    accepts_value: bool
    why: str
    #: the declaration's vendor path of the source, and of its default in the source's
    #: reference (``DerivedField.default``)
    source_path: str = ""
    default: str | None = None


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")
