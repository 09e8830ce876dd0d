"""Deal properties: their definitions, the checks of a write, and the derived values.

Every value travels as a string. A write names properties by their internal names; a name
HubSpot does not know (``PROPERTY_DOESNT_EXIST``) or one it calculates itself
(``READ_ONLY_VALUE``) is refused with the whole request, as are values of the wrong type.
An empty string (or null) clears a property.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from sync.emulators import reference
from sync.emulators.hubspot.common import PropertyProblem, from_ms, parse_when, stamp

Kind = Literal["string", "number", "datetime", "enumeration", "bool"]


@dataclass(frozen=True)
class Property:
    name: str
    kind: Kind
    read_only: bool = False
    unique: bool = False
    options: tuple[str, ...] = ()  # fixed enumeration options (others come from the portal)


DEFINITIONS: dict[str, Property] = {
    p.name: p
    for p in (
        Property("dealname", "string"),
        Property("dealstage", "enumeration"),
        Property("pipeline", "enumeration"),
        Property("amount", "number"),
        Property("deal_currency_code", "enumeration"),
        Property("closedate", "datetime"),
        Property("hubspot_owner_id", "enumeration"),
        Property("description", "string"),
        Property("hs_next_step", "string"),
        Property("dealtype", "enumeration", options=("newbusiness", "existingbusiness")),
        Property("hs_priority", "enumeration", options=("low", "medium", "high")),
        Property("closed_lost_reason", "string"),
        Property(reference.HUBSPOT_ID_PROPERTY, "string", unique=True),
        Property(reference.HUBSPOT_TAGS_PROPERTY, "string"),
        Property("hs_object_id", "number", read_only=True),
        Property("createdate", "datetime", read_only=True),
        Property("hs_lastmodifieddate", "datetime", read_only=True),
        Property("hs_deal_stage_probability", "number", read_only=True),
        Property("hs_is_closed", "bool", read_only=True),
        Property("hs_is_closed_won", "bool", read_only=True),
        Property("amount_in_home_currency", "number", read_only=True),
    )
}
#: What a read returns without ``properties``.
DEFAULT_PROPERTIES = (
    "amount",
    "closedate",
    "createdate",
    "dealname",
    "dealstage",
    "hs_lastmodifieddate",
    "hs_object_id",
    "pipeline",
)
#: Returned whatever ``properties`` asks for.
ALWAYS = ("createdate", "hs_lastmodifieddate", "hs_object_id")


class Portal(Protocol):
    """What the checks need to know of the portal's state."""

    def stage(self, pipeline: str, stage_id: str) -> dict[str, Any] | None: ...
    def pipeline_ids(self) -> list[str]: ...
    def owner_ids(self) -> set[str]: ...
    def currencies(self) -> list[str]: ...


def check(
    portal: Portal, values: dict[str, Any], *, current: dict[str, str] | None = None
) -> tuple[dict[str, str], list[PropertyProblem]]:
    """Normalised values (``""`` = clear) and the problems of a write; ``current`` is the
    deal's stored values on an update (None: a create)."""
    clean: dict[str, str] = {}
    problems: list[PropertyProblem] = []
    for name, raw in values.items():
        prop = DEFINITIONS.get(name)
        if prop is None:
            problems.append(
                PropertyProblem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            )
            continue
        if prop.read_only:
            problems.append(
                PropertyProblem(
                    name,
                    "READ_ONLY_VALUE",
                    f'"{name}" is a read only property; its value cannot be set.',
                )
            )
            continue
        text, problem = _as_text(name, raw)
        if problem is None and text:
            text, problem = _value(portal, prop, text)
        if problem is not None:
            problems.append(problem)
        else:
            clean[name] = text
    problems += _stage_problems(portal, clean, current)
    return clean, problems


def _as_text(name: str, raw: Any) -> tuple[str, PropertyProblem | None]:
    if raw is None:
        return "", None
    if isinstance(raw, bool):
        return str(raw).lower(), None
    if isinstance(raw, str | int | float):
        return str(raw).strip() if isinstance(raw, str) else str(raw), None
    return "", PropertyProblem(name, "INVALID_PROPERTY_VALUE", f"{raw!r} is not a valid value")


def _value(portal: Portal, prop: Property, text: str) -> tuple[str, PropertyProblem | None]:
    name = prop.name
    if prop.kind == "number":
        try:
            number = Decimal(text)
        except InvalidOperation:
            return text, PropertyProblem(name, "INVALID_FLOAT", f"{text} was not a valid number.")
        return (text if number.is_finite() else ""), None
    if prop.kind == "datetime":
        ms = parse_when(text)
        if ms is None:
            return text, PropertyProblem(
                name, "INVALID_DATE", f"{text} was not a valid long or ISO 8601 date-time."
            )
        return str(ms), None
    options = _options(portal, prop)
    if options is not None and text not in options:
        return text, PropertyProblem(
            name,
            "INVALID_OPTION",
            f"{text} was not one of the allowed options: [{', '.join(sorted(options))}]",
        )
    return text, None


def _options(portal: Portal, prop: Property) -> set[str] | None:
    if prop.options:
        return set(prop.options)
    return {
        "pipeline": set(portal.pipeline_ids()),
        "deal_currency_code": set(portal.currencies()),
        "hubspot_owner_id": portal.owner_ids(),
    }.get(prop.name)  # dealstage: checked against its pipeline (_stage_problems)


def _stage_problems(
    portal: Portal, clean: dict[str, str], current: dict[str, str] | None
) -> list[PropertyProblem]:
    """A stage must belong to the deal's pipeline (the new one when the write moves it)."""
    before = current or {}
    pipeline = clean.get("pipeline") or before.get("pipeline") or "default"
    stage = clean.get("dealstage", before.get("dealstage", ""))
    if current is None and not stage:
        return [PropertyProblem("dealstage", "REQUIRED", "dealstage is required")]
    if ("dealstage" in clean or "pipeline" in clean) and portal.stage(pipeline, stage) is None:
        message = f"{stage} is not a valid dealstage for pipeline {pipeline}"
        return [PropertyProblem("dealstage", "INVALID_OPTION", message)]
    return []


def derived(portal: Portal, deal: dict[str, Any], company_currency: str) -> dict[str, str]:
    """Every property of a stored deal as HubSpot shows it: the stored ones, stamps in ISO,
    and what HubSpot calculates (probability and closed flags from the stage)."""
    props: dict[str, str] = dict(deal["props"])
    if "closedate" in props:
        props["closedate"] = stamp(from_ms(int(props["closedate"])))
    props["hs_object_id"] = deal["id"]
    props["createdate"] = stamp(deal["created"])
    props["hs_lastmodifieddate"] = stamp(deal["updated"])
    stage = portal.stage(props.get("pipeline", "default"), props.get("dealstage", ""))
    if stage is not None:
        metadata = stage["metadata"]
        props["hs_deal_stage_probability"] = metadata["probability"]
        closed = metadata["isClosed"] == "true"
        props["hs_is_closed"] = str(closed).lower()
        props["hs_is_closed_won"] = str(closed and float(metadata["probability"]) >= 1).lower()
    currency = props.get("deal_currency_code") or company_currency
    if "amount" in props and currency == company_currency:
        props["amount_in_home_currency"] = props["amount"]
    return props


def project(props: dict[str, str], wanted: list[str] | None) -> dict[str, str]:
    """The properties a read asked for (unset ones are left out, as the spec's string-only
    values require), plus the three HubSpot always returns."""
    names = DEFAULT_PROPERTIES if wanted is None else (*wanted, *ALWAYS)
    return {name: props[name] for name in dict.fromkeys(names) if props.get(name, "") != ""}
