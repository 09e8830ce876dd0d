"""Which Salesforce org each system is bound to, and systems bound to the same one.

Salesforce can be configured directly (``type: salesforce``) and through Truto (``type: truto``)
at once, but only for different orgs: two systems on one org would see every deal twice — each
would create the other's deals again. ``doctor`` reports it, and the first run (``run``,
``match``) refuses to start (:func:`shared_orgs`).

A direct system's org is the one its credentials reach (``Organization``), or, when the API
cannot say, the one ``options.org_id`` names. Truto does not say which org is behind an
integrated account: a Truto system names it in ``options.org_id``, or is in no known org.
"""

from __future__ import annotations

from sync.connectors.errors import ConnectorError
from sync.engine.context import Engine


def org_of(engine: Engine, system: str) -> str | None:
    """The Salesforce org ``system`` is bound to; None when it is not Salesforce or unknown."""
    cfg = engine.config.systems[system]
    named = str(cfg.options.get("org_id") or "") or None
    if cfg.type == "truto":
        return named
    if cfg.type != "salesforce":
        return None
    try:
        asked = engine.connector(system).org_id()  # type: ignore[attr-defined]
    except ConnectorError:
        return named
    return str(asked) if asked else named


def shared_orgs(engine: Engine) -> dict[str, list[str]]:
    """Org id -> the systems bound to it, for every org more than one system is bound to."""
    by_org: dict[str, list[str]] = {}
    for system in engine.systems:
        org = org_of(engine, system)
        if org:
            by_org.setdefault(org, []).append(system)
    return {org: systems for org, systems in by_org.items() if len(systems) > 1}


def refusal(shared: dict[str, list[str]]) -> str:
    """What the first run says when it refuses to start (empty when nothing is shared)."""
    return "; ".join(
        f"systems {' and '.join(systems)} are bound to one Salesforce org, {org}: every deal "
        "would be seen twice (and created again in the other). Keep one of them — Salesforce "
        "directly or through Truto, never both for one org — or point one at another org "
        "(options.org_id names a Truto system's org). Nothing was read or written"
        for org, systems in sorted(shared.items())
    )
