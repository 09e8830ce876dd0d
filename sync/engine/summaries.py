"""How ``verify`` reads a summary listing (ParsaLink: a GET per deal to read one in full).

``full`` reads every deal; ``trust`` compares a deal whose summary stamp equals its link's,
confirmed by a full read after its second closed (``Link.confirmed_at``, as capture trusts
it), from that read (the shadow), provided the summary's own fields agree with it; a number
``n`` trusts likewise but reads a random sample of about ``n`` of those deals in full.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from sync.connectors.base import VendorRecord
from sync.engine.capture.page import SETTLE
from sync.engine.context import Engine
from sync.mapping.errors import MappingError, UnresolvedReference
from sync.store.models import Link
from sync.timefmt import maybe_utc

Summaries = Literal["full", "trust"] | int


class Sample:
    """Which trusted summaries to read in full anyway (``summaries`` a number)."""

    def __init__(self, summaries: Summaries, linked: int) -> None:
        self.summaries = summaries
        self.share = summaries / max(1, linked) if isinstance(summaries, int) else 0.0
        self.rng = random.Random()

    @property
    def trusts(self) -> bool:
        return self.summaries != "full"

    @property
    def label(self) -> str:
        return self.summaries if isinstance(self.summaries, str) else f"sample of {self.summaries}"

    def drawn(self) -> bool:
        return self.share > 0 and self.rng.random() < self.share


def trusted(
    engine: Engine, system: str, link: Link | None, summary: VendorRecord
) -> dict[str, Any] | None:
    """The deal as its link's shadow holds it, when the summary's stamp is the shadow's and a
    full read after its second closed confirmed it, and the summary's fields agree; else None
    (read it in full)."""
    if link is None or link.deleted_at is not None or link.filtered_at is not None:
        return None
    stamp, confirmed = maybe_utc(summary.modified), maybe_utc(link.confirmed_at)
    if stamp is None or maybe_utc(link.vendor_modified) != stamp:
        return None
    if confirmed is None or confirmed < stamp + SETTLE:
        return None
    try:
        fields = engine.mapper.to_canonical(system, summary.data, engine.refs)
    except (MappingError, UnresolvedReference):
        return None
    shadow = dict(link.shadow or {})
    if any(value is not None and value != shadow.get(name) for name, value in fields.items()):
        return None
    return shadow
