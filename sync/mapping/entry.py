"""One mapped field of one system as the mapper resolves it from config (``Entry``), and
how a field is read (``Reader``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sync.mapping.errors import MappingError
from sync.mapping.spec import FieldSpec
from sync.mapping.transforms import Transform

if TYPE_CHECKING:
    from sync.mapping.mapper import RefResolver

JSON = Any


@dataclass(frozen=True, slots=True)
class Entry:
    """One mapped field of one system, resolved once from config — down to what reading a
    value runs, since every field of every captured deal is read through it."""

    system: str
    field: str  # canonical field
    key: str | None  # sub-key of a dict field (external_ids.salesforce)
    spec: FieldSpec
    transform: Transform
    flat: bool  # write paths are literal keys
    #: reading: the transform's ``to_canonical``, None for ``identity`` (nothing to call)
    convert: Callable[[JSON], JSON] | None = None
    #: reading: ``normalize`` of the field, None when nothing is left to do (a dict field's
    #: key, normalised with its whole dict; a transform that already gives the normal form)
    norm: Callable[[JSON], JSON] | None = None

    @property
    def label(self) -> str:
        return self.field if self.key is None else f"{self.field}.{self.key}"

    def error(self, value: object, reason: str, *, path: str | None = None) -> MappingError:
        return MappingError(self.system, self.label, path or self.spec.read, value, reason)


#: a field the mapper reads: canonical field, key of a dict field, how its value is read
Reader = tuple[str, str | None, Callable[[Mapping[str, Any], "RefResolver"], JSON]]


def flat_default(system_type: str, path: str) -> bool:
    # Close custom fields are flat keys with a dot (https://developer.close.com/api/resources/custom-fields)
    return system_type == "close" and path.startswith("custom.")
