"""Typed model of the ``mapping:`` section of config.yaml (owned by the mapping layer).

``mapping`` is keyed by system name, then by canonical field (see ``sync.model``)::

    mapping:
      ruddr:
        name: name                          # shorthand: the vendor path, both directions
        stage: {read: opportunityStage.id, write: opportunityStageId, ref: stage,
                values: {Prospecting: prospecting, "Closed Won": won}}
        status: {read: opportunityStage.statusId, direction: inbound,
                 values: {open: open, won: won, lost: lost}}
      close:
        amount: {path: value, transform: cents}

This file is a first cut: the mapping layer may add fields (keep the names above).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["both", "inbound", "outbound"]
RefKind = Literal["company", "owner", "stage"]


class FieldSpec(BaseModel):
    """How one canonical field maps onto one system."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    read: str = Field(alias="path", description="vendor path to read (dots for nesting)")
    write: str | None = Field(default=None, description="vendor path to write; defaults to read")
    direction: Direction = "both"
    transform: str | None = None
    ref: RefKind | None = None
    values: dict[str, str] | None = None
    default: Any = None


SystemMapping = dict[str, FieldSpec]
MappingSpec = dict[str, SystemMapping]
