"""HubSpot's references: companies (by name), owners (by e-mail) and deal stages (by label,
with their pipeline, probability 0..1 and ``status_type`` open / won / lost from the stage's
``metadata``: ``isClosed`` with probability 1 is won, closed below it lost).

https://developers.hubspot.com/docs/api/crm/pipelines ,
https://developers.hubspot.com/docs/api/crm/owners
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from sync.connectors.base import Reference

LIST_PAGE = 100


class Reader(Protocol):
    """What the listings need of the connector (``sync.connectors.hubspot``)."""

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...


def load(connector: Reader, kind: str) -> Iterator[Reference]:
    """Every reference of ``kind`` (``NotImplementedError`` for a kind HubSpot has not)."""
    if kind == "company":
        for company in _paged(connector, "/crm/v3/objects/companies", {"properties": "name"}):
            name = str(company["properties"].get("name") or "")
            yield Reference("company", str(company["id"]), name)
    elif kind == "owner":
        for owner in _paged(connector, "/crm/v3/owners/", {}):
            yield Reference("owner", str(owner["id"]), str(owner.get("email") or ""))
    elif kind == "stage":
        for pipeline in connector.get_json("/crm/v3/pipelines/deals").get("results") or []:
            for stage in pipeline.get("stages") or []:
                yield _stage(pipeline, stage)
    else:
        raise NotImplementedError(f"hubspot has no {kind} references")


def _stage(pipeline: dict[str, Any], stage: dict[str, Any]) -> Reference:
    metadata = stage.get("metadata") or {}
    probability = float(metadata.get("probability") or 0)
    closed = str(metadata.get("isClosed")).lower() == "true"
    status = "open" if not closed else "won" if probability >= 1 else "lost"
    extra = {"pipeline_id": pipeline["id"], "probability": probability, "status_type": status}
    return Reference("stage", str(stage["id"]), str(stage["label"]), extra)


def _paged(connector: Reader, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``limit`` / ``after`` paging (owners, companies), guarded against a repeated token."""
    query = {**params, "limit": LIST_PAGE}
    while True:
        body = connector.get_json(path, query)
        yield from body.get("results") or []
        following = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not following or following == query.get("after"):
            return
        query["after"] = following
