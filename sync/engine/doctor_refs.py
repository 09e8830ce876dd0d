"""``crmsync doctor``: the mapping against what the vendors have, across systems — every
stage a vendor has is in the mapping's ``values`` and every canonical stage another system
uses can be written here; owners (by e-mail) and companies (by normalised name, or linked)
are found in the other systems they are sent to; a linked company renamed in one system.

``refs`` are each system's reference listings (``BaseConnector.references``), read once by
:func:`sync.engine.doctor.doctor`; these checks read nothing more from any vendor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sync.connectors.base import Reference
from sync.engine.context import Engine
from sync.engine.normalise import normalise_company
from sync.store import refs as stored_refs

if TYPE_CHECKING:
    from sync.engine.doctor import SystemDoctor

SHOWN = 5  # examples named per finding


def stages(
    engine: Engine, system: str, refs: dict[str, list[Reference]], report: SystemDoctor
) -> None:
    spec = engine.mapper.spec_of(system, "stage")
    if spec is None or spec.values is None:
        return
    values = spec.values
    if "stage" in refs and "*" not in values:
        # a stage of a pipeline the mapping does not use at all is likely left out on purpose
        used = {r.extra.get("pipeline_id") for r in refs["stage"] if r.key in values}
        for ref in refs["stage"]:
            if ref.key in values:
                continue
            pipeline = ref.extra.get("pipeline_id")
            elsewhere = pipeline is not None and pipeline not in used
            report.add(
                "warn" if elsewhere else "problem",
                "stages",
                f"stage {ref.key!r}{' (another pipeline)' if elsewhere else ''} is not in "
                f"mapping.{system}.stage.values: its deals cannot be read (dead letters)",
                f"add `{ref.key}: <canonical stage>` under mapping.{system}.stage.values"
                + (
                    f", or leave that pipeline out with mapping.{system}.filter"
                    if elsewhere
                    else ""
                ),
            )
    here = set(values.values()) | set(spec.write_values or {})
    for other in engine.systems:
        theirs = engine.mapper.spec_of(other, "stage")
        if other == system or theirs is None or theirs.values is None:
            continue
        lacking = sorted(set(theirs.values.values()) - here)
        if lacking and spec.writes:
            report.add(
                "warn",
                "stages",
                f"canonical stage(s) {', '.join(lacking)} of {other} have no value in "
                f"mapping.{system}.stage.values: such deals cannot be written here",
                f"map a {report.vendor} stage to each (values or write_values)",
            )
    if not any(f.check == "stages" and f.level != "ok" for f in report.findings):
        report.add("ok", "stages", "every stage resolves")


def owners(
    engine: Engine, system: str, refs: dict[str, dict[str, list[Reference]]], report: SystemDoctor
) -> None:
    """Owners here whose e-mail a system that is sent owners does not know."""
    mine = {r.key.strip().casefold() for r in refs.get(system, {}).get("owner", []) if r.key}
    targets = [
        other
        for other in engine.systems
        if other != system
        and "owner" in engine.mapper.fields_for(other, "outbound")
        and "owner" in refs.get(other, {})
    ]
    unknown: dict[str, list[str]] = {}
    for other in targets:
        theirs = {r.key.strip().casefold() for r in refs[other]["owner"] if r.key}
        for email in sorted(mine - theirs):
            unknown.setdefault(email, []).append(other)
    for email, where in list(unknown.items())[:SHOWN]:
        report.add(
            "warn",
            "owners",
            f"owner {email} is unknown in {', '.join(where)}: deals they own are written there "
            "without their owner (it keeps its own, or the configured fallback)",
            f"invite {email} to {', '.join(where)} with the same e-mail (the deals then get "
            "their owner by themselves), or set systems.NAME.fallback.owner",
        )
    if len(unknown) > SHOWN:
        report.add("warn", "owners", f"… and {len(unknown) - SHOWN} more owners like these")
    if not unknown:
        report.add("ok", "owners", "every owner is known wherever deals are sent")


def company_links(engine: Engine) -> dict[str, dict[str, str]]:
    """system -> {vendor company id: its canonical company}, as linked so far."""
    links: dict[str, dict[str, str]] = {}
    with engine.read_session() as session:
        for row in stored_refs.of_kind(session, "company"):
            links.setdefault(row.system, {})[row.vendor_id] = row.key
    return links


def renamed(system: str, renamed: dict[str, dict[str, str]], report: SystemDoctor) -> None:
    """Linked companies named otherwise here than elsewhere: a rename kept where it was made."""
    for key, names in renamed.items():
        if system not in names or normalise_company(names[system]) == normalise_company(key):
            continue
        elsewhere = ", ".join(
            f"{name!r} in {other}" for other, name in names.items() if other != system
        )
        report.add(
            "warn",
            "companies",
            f"{names[system]!r} here is {elsewhere} (company {key!r}): linked, so its deals stay "
            "with it everywhere; each system keeps its own name",
            "rename it in the other systems too if the new name should show there",
        )


def companies(
    engine: Engine,
    system: str,
    refs: dict[str, dict[str, list[Reference]]],
    links: dict[str, dict[str, str]],
    report: SystemDoctor,
) -> None:
    """Companies here that a target neither has (linked, or by normalised name) nor may
    create."""
    here = links.get(system, {})
    mine = {
        normalise_company(r.key): (r.key, here.get(r.id))
        for r in refs.get(system, {}).get("company", [])
    }
    for other in engine.systems:
        if other == system or "company" not in refs.get(other, {}):
            continue
        if "company" not in engine.mapper.fields_for(other, "outbound"):
            continue
        if engine.config.systems[other].auto_create_companies:
            continue
        theirs = {normalise_company(r.key) for r in refs[other]["company"]}
        linked = set(links.get(other, {}).values())
        missing = sorted(
            name for key, (name, link) in mine.items() if key not in theirs and link not in linked
        )
        if missing:
            shown = ", ".join(missing[:SHOWN]) + (" …" if len(missing) > SHOWN else "")
            report.add(
                "warn",
                "companies",
                f"{len(missing)} of {len(mine)} companies are not in {other} ({shown}): "
                f"deals at them wait there (parked)",
                f"create them in {other}, or set systems.{other}.auto_create_companies: true",
            )
