"""HubSpot's deal creates and batch writes (up to 100 deals a request, one outcome each).

``batch/create`` and ``batch/update`` answer 201/200 when every input succeeded and 207 with
``results`` and ``errors`` when some failed (https://developers.hubspot.com/docs/api/crm/deals,
"Batch"). Each input carries its position as ``objectWriteTraceId``, which HubSpot echoes in its
result and in its error's ``context``, so every deal gets its own outcome: a refused one is a
``Rejected`` with HubSpot's message, the others are written. A create refused because a deal
already holds its crmsync id (``CONFLICT``: an earlier attempt whose answer was lost) is
answered with that deal, marked ``existing`` (the engine adopts it) — never a second one. The
conflicts of one batch are read back together: one ``batch/read`` by the id property, retried
like a GET (it changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from sync.connectors.base import VendorRecord
from sync.connectors.errors import ConnectorError, NotFound, Rejected

DEALS = "/crm/v3/objects/deals"
COMPANY_FIELD = "company_id"
PRIMARY_COMPANY = 5  # deal -> company, primary (HUBSPOT_DEFINED)
Outcome = VendorRecord | ConnectorError


class HubSpotConnector(Protocol):
    """What the batch writes need of the connector (``sync.connectors.hubspot``)."""

    system: str

    @property
    def id_property(self) -> str: ...
    def properties(self) -> list[str]: ...
    def request_json(
        self,
        method: str,
        url: str,
        body: dict[str, Any],
        *,
        read: bool = False,
        record: str | None = None,
    ) -> dict[str, Any]: ...
    def get_json(self, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]: ...
    def to_record(self, item: Mapping[str, Any], company: str | None = None) -> VendorRecord: ...
    def with_companies(self, items: list[dict[str, Any]]) -> list[VendorRecord]: ...
    def move_company(self, deal_id: str, company: str | None) -> None: ...


def split(payload: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    """Mapped fields as HubSpot properties (strings; ``""`` clears) and the company id."""
    properties: dict[str, str] = {}
    for key, value in payload.items():
        if key in (COMPANY_FIELD, "id"):
            continue
        properties[key] = "" if value is None else _text(value)
    company = payload.get(COMPANY_FIELD)
    return properties, (str(company) if company else None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def association(company: str) -> dict[str, Any]:
    """A create's association to its (primary) company."""
    types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": PRIMARY_COMPANY}]
    return {"to": {"id": company}, "types": types}


def create_one(connector: HubSpotConnector, payload: Mapping[str, Any], key: str) -> VendorRecord:
    """A create with its company association; a 409 on crmsync's id (a lost earlier answer)
    answers with the deal that holds it, read back by the id property, ``existing``."""
    properties, company = split(payload)
    body: dict[str, Any] = {"properties": properties}
    if company:
        body["associations"] = [association(company)]
    try:
        made = connector.request_json("POST", DEALS, body, record=key)
    except Rejected as exc:
        own_id = properties.get(connector.id_property)
        if exc.status != 409 or not own_id:
            raise
        params = {
            "idProperty": connector.id_property,
            "properties": ",".join(connector.properties()),
            "associations": "companies",
        }
        held = connector.get_json(f"{DEALS}/{own_id}", params)
        return replace(connector.to_record(held), existing=True)
    return connector.to_record(made, company)


def create_many(
    connector: HubSpotConnector, items: Sequence[tuple[Mapping[str, Any], str]]
) -> list[Outcome]:
    """``batch/create`` with the companies as associations; conflicts on our id adopted."""
    inputs, companies = [], []
    for position, (payload, _key) in enumerate(items):
        properties, company = split(payload)
        item: dict[str, Any] = {"properties": properties, "objectWriteTraceId": str(position)}
        if company:
            item["associations"] = [association(company)]
        inputs.append(item)
        companies.append(company)
    body = connector.request_json("POST", f"{DEALS}/batch/create", {"inputs": inputs})
    outcomes: list[Outcome | None] = [None] * len(items)
    for result in body.get("results") or []:
        position = int(result["objectWriteTraceId"])
        outcomes[position] = connector.to_record(result, companies[position])
    conflicts: dict[str, int] = {}
    for error in body.get("errors") or []:
        for position in _positions(error):
            own_id = inputs[position]["properties"].get(connector.id_property)
            if error.get("category") == "CONFLICT" and own_id:
                conflicts[own_id] = position
            else:
                outcomes[position] = _error(connector, error, str(items[position][1]))
    for own_id, record in _read_by_own_id(connector, list(conflicts)).items():
        outcomes[conflicts[own_id]] = record
    return [
        outcome if outcome is not None else _lost(connector, str(items[i][1]))
        for i, outcome in enumerate(outcomes)
    ]


def update_many(
    connector: HubSpotConnector, items: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[Outcome]:
    """``batch/update``; a deal whose company changed then moves its association."""
    inputs = [
        {"id": external_id, "properties": split(payload)[0], "objectWriteTraceId": str(position)}
        for position, (external_id, payload) in enumerate(items)
    ]
    body = connector.request_json("POST", f"{DEALS}/batch/update", {"inputs": inputs})
    outcomes: list[Outcome | None] = [None] * len(items)
    for error in body.get("errors") or []:
        for position in _positions(error):
            outcomes[position] = _error(connector, error, items[position][0])
    for result in body.get("results") or []:
        position = int(result["objectWriteTraceId"])
        external_id, payload = items[position]
        company = split(payload)[1]
        try:
            if COMPANY_FIELD in payload:
                connector.move_company(external_id, company)
        except ConnectorError as exc:
            outcomes[position] = exc
            continue
        record = connector.to_record(result, company)
        outcomes[position] = record
    return [
        outcome if outcome is not None else _lost(connector, items[i][0])
        for i, outcome in enumerate(outcomes)
    ]


def _positions(error: Mapping[str, Any]) -> list[int]:
    traces = (error.get("context") or {}).get("objectWriteTraceId") or []
    return [int(trace) for trace in traces if str(trace).isdigit()]


def refused_fields(errors: Iterable[Mapping[str, Any]]) -> tuple[str, dict[str, str]]:
    """The properties HubSpot refused (``errors[].context.propertyName``), each with its
    message, and the message naming them all (``""``: none named)."""
    fields: dict[str, str] = {}
    for detail in errors:
        for name in (detail.get("context") or {}).get("propertyName") or []:
            fields[str(name)] = str(detail.get("message"))
    return "; ".join(f"{k}: {v}" for k, v in fields.items()), fields


def _error(connector: HubSpotConnector, error: Mapping[str, Any], record: str) -> ConnectorError:
    """One input's error in HubSpot's words (``Rejected``; ``NotFound`` for a missing deal)."""
    message, fields = refused_fields(error.get("errors") or [])
    message = message or str(error.get("message"))
    common: dict[str, Any] = {"system": connector.system, "record": record}
    if error.get("category") == "OBJECT_NOT_FOUND":
        return NotFound(message, status=404, **common)
    return Rejected(message, field_errors=fields, status=400, **common)


def _lost(connector: HubSpotConnector, record: str) -> ConnectorError:
    return ConnectorError(
        "HubSpot's batch answer named neither a result nor an error for this deal",
        system=connector.system,
        record=record,
    )


def _read_by_own_id(connector: HubSpotConnector, own_ids: list[str]) -> dict[str, VendorRecord]:
    """The deals holding these crmsync ids (``batch/read`` by the id property), ``existing``."""
    if not own_ids:
        return {}
    body = connector.request_json(
        "POST",
        f"{DEALS}/batch/read",
        {
            "idProperty": connector.id_property,
            "inputs": [{"id": own_id} for own_id in own_ids],
            "properties": connector.properties(),
        },
        read=True,
    )
    found = body.get("results") or []
    records = connector.with_companies(found) if found else []
    return {str(r.data.get(connector.id_property)): replace(r, existing=True) for r in records}
