"""The values connectors hand the engine: records, references, deletions, derived fields,
setup findings, and the vendor's clock (``sync.connectors.base`` re-exports them all)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx


@dataclass(frozen=True, slots=True)
class ListingClock:
    """The vendor's clock against ours, read from the first answer of a listing.

    ``vendor`` is that answer's ``Date`` (None when the vendor sent none); ``local`` is our
    clock when the answer arrived. ``vendor - local`` is the skew, erring on the early side
    (``Date`` is truncated to the second and stamped before the answer travelled back), which
    is the safe side for a watermark.
    """

    vendor: dt.datetime | None
    local: dt.datetime

    def to_vendor(self, moment: dt.datetime) -> dt.datetime | None:
        """``moment`` of our clock in the vendor's clock; None without a ``Date``."""
        if self.vendor is None:
            return None
        return moment + (self.vendor - self.local)


@dataclass(frozen=True, slots=True)
class VendorRecord:
    """One opportunity as the vendor returned it."""

    external_id: str
    modified: dt.datetime  # timezone-aware UTC, parsed from the vendor's stamp
    data: dict[str, Any]
    #: the listing returned a summary (ParsaLink): ``get()`` the record before mapping it
    partial: bool = False
    #: when the vendor says the deal was made (None: it does not say). Identity uses it: a
    #: deal whose name differs from what our create sent must have been edited since it was
    #: made, or it is somebody else's deal (``engine.intents``).
    created: dt.datetime | None = None
    #: a create's answer naming the deal that already held crmsync's id (HubSpot's 409 on its
    #: unique property): an earlier attempt whose answer was lost made it. The engine adopts
    #: it (its fields may have been edited there since) rather than taking it as created.
    existing: bool = False


@dataclass(frozen=True, slots=True)
class SetupFinding:
    """One result of a connector's own setup checks (``crmsync doctor``): ``level`` ok, warn or
    problem; ``check`` the doctor's heading; ``fix`` what to do about it, in the vendor's UI."""

    level: Literal["ok", "warn", "problem"]
    check: str
    what: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Deletion:
    """A delete seen in a vendor's delete feed."""

    external_id: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Reference:
    """A referenced object: a company/lead/account, an owner (user/member) or a stage/status.

    ``key`` is what references are matched on across systems (company name, user e-mail,
    stage name); ``extra`` carries what the mapping needs besides (e.g. a stage's status type
    ``open|won|lost``, a Close status's ``pipeline_id``).
    """

    kind: Literal["company", "owner", "stage"]
    id: str
    key: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DerivedField:
    """A field the vendor recomputes when another changes (DESIGN.md §2.11): Salesforce resets
    ``Probability`` to the stage's default when ``StageName`` changes without it; HubSpot's
    ``hs_deal_stage_probability`` follows ``dealstage``; ``IsClosed``/``IsWon`` follow the stage.

    ``path`` and ``source`` are vendor paths as the mapping reads them (a source may name an
    object, ``stage``, for every path under it): the mapping layer turns them into canonical
    fields. ``accepts_value``: a write may carry the derived field with its source and the vendor
    keeps it (Salesforce's ``Probability``); when False the vendor alone decides it, so what it
    shows after a stage change is that change's consequence, never an edit. ``why`` is said in
    the journal. ``default``: where the source's reference (``Reference.extra`` of the stage)
    says the value the vendor sets, e.g. Salesforce's ``remote_data.DefaultProbability``: a
    value that moved with the stage to anything else was set by a person, and is an edit."""

    path: str
    source: str
    accepts_value: bool
    why: str
    default: str | None = None


def error_body(response: httpx.Response) -> dict[str, Any] | str:
    """An error answer's JSON object, or the text to show for it when it has none: a body that
    is not JSON (its first 500 characters, else the reason phrase), or JSON but no object."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    return body if isinstance(body, dict) else str(body)
