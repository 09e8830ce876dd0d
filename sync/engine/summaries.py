"""How ``verify`` reads a summary listing (ParsaLink: a GET per deal to read one in full).

``full`` reads every deal; ``trust`` compares a deal from its link's shadow, without reading
it, when the summary's stamp is the shadow's and the summary's own fields agree with the
shadow, and that stamp is either

- ``confirmed``: a full read after the stamp's second closed saw the deal as the shadow holds
  it (``Link.confirmed_at``, as capture trusts it), or
- ``written``: the stamp the answer to our own last write carried (``Link.written_stamp``):
  that answer was the whole deal as the shadow holds it, at that stamp.

A number ``n`` trusts likewise but reads a random sample of about ``n`` of the trusted deals
in full. Any other deal is read in full.

The risk ``written`` takes (and ``confirmed`` does not): ParsaLink stamps whole seconds, so a
person's edit in the same second as our write, after it, leaves the stamp as our answer had
it. An edit of a field the summary shows is still caught (the summary then differs from the
shadow: read in full); an edit of a field the summary lacks (description, contacts, loss
reason, close date, owner name) is not seen by such a ``verify``. The trust is bounded: the
capture's recheck reads every unconfirmed stamp in full once its second has closed
(``capture.page._rechecks``, within ``recheck_share``), takes that edit, and the deal is
``confirmed`` (or read in full, its stamp unchanged but its shadow moved) from then on.
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
#: why a summary was trusted (see the module)
Trust = Literal["confirmed", "written"]


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
) -> tuple[Trust, dict[str, Any]] | None:
    """Why the deal may be compared from its link's shadow, and that shadow: when the summary's
    stamp is the shadow's and is confirmed or our own write's, and the summary's fields agree
    with the shadow; else None (read it in full)."""
    if link is None or link.deleted_at is not None or link.filtered_at is not None:
        return None
    why = _trust(link, summary)
    if why is None:
        return None
    try:
        fields = engine.mapper.to_canonical(system, summary.data, engine.refs)
    except (MappingError, UnresolvedReference):
        return None
    shadow = dict(link.shadow or {})
    # a person's edit since (even in the stamp's own second) of a field the summary shows
    if any(value is not None and value != shadow.get(name) for name, value in fields.items()):
        return None
    return why, shadow


def _trust(link: Link, summary: VendorRecord) -> Trust | None:
    stamp = maybe_utc(summary.modified)
    if stamp is None or maybe_utc(link.vendor_modified) != stamp:
        return None
    confirmed = maybe_utc(link.confirmed_at)
    if confirmed is not None and confirmed >= stamp + SETTLE:
        return "confirmed"
    if maybe_utc(link.written_stamp) == stamp:
        return "written"  # the module says what this risks, and what bounds it
    return None
