"""Companies linked across systems (DESIGN §2.6): which linked companies are named
differently in two systems — a rename in one of them, kept there by ``sync.companies``.

Identity itself lives with the other references (``StoreRefs`` in ``engine.refs``): a vendor
company is linked to a canonical company by name the first time it is seen, by id ever after,
so renaming it is never read as its deals moving to another company. This module only names
what the link keeps apart, for ``crmsync verify`` and ``crmsync doctor``.
"""

from __future__ import annotations

from collections import defaultdict

from sync.connectors.errors import ConnectorError
from sync.engine.context import Engine
from sync.engine.normalise import normalise_company
from sync.store import refs as stored_refs


def names_across(engine: Engine, systems: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Canonical company -> {system: its name there}, for the linked companies whose names
    differ across systems (beyond case, punctuation and a legal-form suffix). A system whose
    companies cannot be listed is left out."""
    chosen = set(systems or engine.systems)
    with engine.read_session() as session:
        links = [row for row in stored_refs.of_kind(session, "company") if row.system in chosen]
    listed: dict[str, dict[str, str]] = {}
    for system in sorted({row.system for row in links}):
        try:
            listed[system] = {
                ref.id: ref.key for ref in engine.connector(system).references("company")
            }
        except (ConnectorError, NotImplementedError):
            continue
    names: dict[str, dict[str, str]] = defaultdict(dict)
    for row in links:
        name = listed.get(row.system, {}).get(row.vendor_id)
        if name is not None:
            names[row.key][row.system] = name
    return {
        key: dict(sorted(by_system.items()))
        for key, by_system in sorted(names.items())
        if _differ(key, by_system)
    }


def _differ(key: str, by_system: dict[str, str]) -> bool:
    """Named differently across systems; a company linked in one system alone, against its
    link's name. A rename carried everywhere (``renames: propagate``) differs nowhere."""
    found = {normalise_company(name) for name in by_system.values()}
    if len(by_system) == 1:
        found.add(normalise_company(key))
    return len(found) > 1
