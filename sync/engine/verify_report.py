"""What ``crmsync verify`` reports: per system the drift, the known differences and every deal
it counts with why; across systems the twin records and renamed companies (``engine.verify``
fills it; ``engine.reports`` and the CLI render it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Drift:
    system: str
    record_id: str
    external_id: str
    field: str
    ours: Any
    theirs: Any


@dataclass(frozen=True)
class Known:
    """A difference crmsync knows the reason for (an open conflict, a filter, a hold)."""

    system: str
    record_id: str | None
    external_id: str | None
    field: str | None
    reason: str


@dataclass
class SystemCheck:
    vendor_records: int = 0
    linked: int = 0
    unlinked: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    #: live deals that should be in this system and are not (e.g. a create in dead letters)
    absent: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    #: differences with a known reason (see the module)
    known: list[Known] = field(default_factory=list)
    #: vendor deals the system's filter leaves out (linked ones are also in ``known``)
    filtered: list[str] = field(default_factory=list)
    #: open manual conflicts on deals linked here
    conflicts: int = 0
    #: why the system is held (it was not read), else None
    held: str | None = None
    #: why each deal counted in unlinked, missing, absent or unreadable is there, by the id it
    #: is listed with (a vendor id; a record id for absent): every count is named with a reason
    why: dict[str, str] = field(default_factory=dict)
    #: the deal's name by the same ids, where it is known
    names: dict[str, str] = field(default_factory=dict)
    #: a summary listing: how it was read ("full", "trust", "sample of N"); None: no summaries
    summaries: str | None = None
    read_in_full: int = 0  # summaries read in full (a GET each)
    #: summaries compared from their shadow, by why (``engine.summaries``): confirmed, written
    trusted_by: Counter[str] = field(default_factory=Counter)

    @property
    def trusted(self) -> int:
        return sum(self.trusted_by.values())

    @property
    def clean(self) -> bool:
        return not self.known and self.agrees_but_known

    @property
    def agrees_but_known(self) -> bool:
        """Clean once the known differences are accepted."""
        return not (
            self.unlinked
            or self.missing
            or self.duplicates
            or self.drift
            or self.unreadable
            or self.absent
        )


@dataclass
class VerifyReport:
    systems: dict[str, SystemCheck] = field(default_factory=dict)
    #: groups of live canonical records that look like one real deal (same name and company)
    twins: list[list[str]] = field(default_factory=list)
    #: linked companies named differently across systems (a rename kept where it was made:
    #: compared through the link, so not drift): company -> {system: name there}
    company_names: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """Every system agrees: no drift, no twin records, and no difference even for a
        known reason."""
        return not self.twins and all(check.clean for check in self.systems.values())

    def agrees(self, *, accept_known: bool = False) -> bool:
        if not accept_known:
            return self.clean
        return not self.twins and all(check.agrees_but_known for check in self.systems.values())
