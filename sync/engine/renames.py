"""Company renames carried across systems (``sync.companies.renames: propagate``, DESIGN §2.6).

Each cycle reads the name of every linked company in every system. What a system is expected
to call a company is what the journal last said of it there (a rename carried or kept), else
the link's canonical name; names are compared like companies are matched (case, accents,
punctuation and a legal-form suffix aside). A system whose name differs from the expected one
is where the company was renamed: the new name is written to its linked company in every other
system (the connector's ``rename_company``) and journaled — the company, its old and new name,
the system it came from, and per system whether it was renamed or kept. The names written are
from then on what is expected, so reading them back is an echo, never a new rename (no
ping-pong). A system whose API cannot rename keeps its name, journaled as kept: the rename stays
a named difference (``verify``, ``doctor``). A rename that failed for a passing reason (the
vendor unreachable, rate-limited) is journaled nowhere and tried again next cycle. Deals never
move: they point at the company by id, and the link is by id too.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field

import structlog

from sync.connectors.errors import ConnectorError, Retryable
from sync.engine import journal
from sync.engine.context import Engine
from sync.engine.normalise import normalise_company
from sync.store import journal as stored_journal
from sync.store import refs as stored_refs

log = structlog.get_logger("crmsync.renames")

RENAMED = "company_renamed"  # this system holds the new name (the source, or carried there)
KEPT = "company_rename_kept"  # this system keeps its name: its API refused or cannot rename


@dataclass
class Rename:
    """One rename seen this cycle and what became of it in every other system."""

    company: str  # the link's canonical name
    old: str
    new: str
    source: str
    renamed: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # system -> why
    retry: dict[str, str] = field(default_factory=dict)  # system -> passing failure


def company_record_id(key: str) -> str:
    """The journal's id for a linked company (``crmsync history`` shows its renames)."""
    return "company_" + hashlib.sha1(key.encode()).hexdigest()[:24]


def carry_renames(
    engine: Engine, run_id: str | None = None, skip: Collection[str] = ()
) -> list[Rename]:
    """Carry every linked company's rename to the other systems (``propagate`` only).
    ``skip``: systems left out this cycle (not read: neither a source nor a target)."""
    if engine.config.sync.companies.renames != "propagate":
        return []
    chosen = [system for system in engine.systems if system not in skip]
    with engine.read_session() as session:
        links = [row for row in stored_refs.of_kind(session, "company") if row.system in chosen]
    ids: dict[str, dict[str, str]] = defaultdict(dict)
    for row in links:
        ids[row.key][row.system] = row.vendor_id
    listed = _listings(engine, sorted({row.system for row in links}))
    found: list[Rename] = []
    for key, by_system in sorted(ids.items()):
        names = {
            system: listed[system][vendor_id]
            for system, vendor_id in by_system.items()
            if vendor_id in listed.get(system, {})
        }
        if len(names) < 2 or len({normalise_company(name) for name in names.values()}) == 1:
            continue  # one system, or every system agrees: nothing to carry
        rename = _carry(engine, key, by_system, names, run_id)
        if rename is not None:
            found.append(rename)
    return found


def _listings(engine: Engine, systems: list[str]) -> dict[str, dict[str, str]]:
    """System -> {company id: name}, read fresh (a rename is what we look for); a system
    whose companies cannot be listed is left out this cycle."""
    listed: dict[str, dict[str, str]] = {}
    for system in systems:
        connector = engine.connector(system)
        connector.forget_references("company")
        try:
            listed[system] = {ref.id: ref.key for ref in connector.references("company")}
        except (ConnectorError, NotImplementedError) as exc:
            log.warning("company_names_unread", system=system, error=str(exc))
    return listed


def _expected(engine: Engine, key: str, systems: Collection[str]) -> dict[str, str]:
    """What each system is expected to call the company: the journal's last word there,
    else the link's canonical name."""
    expected = dict.fromkeys(systems, key)
    with engine.read_session() as session:
        for entry in stored_journal.of_record(session, company_record_id(key)):
            if entry.action in (RENAMED, KEPT) and entry.system in expected:
                expected[entry.system] = str(entry.new)
    return expected


def _carry(
    engine: Engine,
    key: str,
    ids: dict[str, str],
    names: dict[str, str],
    run_id: str | None,
) -> Rename | None:
    expected = _expected(engine, key, names)
    changed = {
        system: name
        for system, name in names.items()
        if normalise_company(name) != normalise_company(expected[system])
    }
    if not changed:
        return None  # a difference already journaled (kept), or the echo of our own rename
    if len({normalise_company(name) for name in changed.values()}) > 1:
        log.warning("company_renamed_differently", company=key, names=changed)
        return None  # two renames at once: left as a named difference for a person
    source = sorted(changed)[0]
    rename = Rename(key, expected[source], names[source], source)
    for system in sorted(names):
        if system in changed:
            rename.renamed.append(system)
        elif normalise_company(names[system]) != normalise_company(rename.new):
            _rename_in(engine, rename, system, ids[system])
        else:
            rename.renamed.append(system)
    _journal(engine, rename, names, run_id)
    return rename


def _rename_in(engine: Engine, rename: Rename, system: str, vendor_id: str) -> None:
    try:
        engine.connector(system).rename_company(vendor_id, rename.new)
    except Retryable as exc:
        rename.retry[system] = str(exc)
    except (ConnectorError, NotImplementedError) as exc:
        rename.kept[system] = str(exc) or type(exc).__name__
    else:
        rename.renamed.append(system)


def _journal(engine: Engine, rename: Rename, names: dict[str, str], run_id: str | None) -> None:
    """One entry per system saying what it now holds. While a system is to be retried,
    nothing is journaled, so the next cycle still sees the rename and carries it there."""
    if rename.retry:
        log.warning("company_rename_retry", company=rename.company, systems=rename.retry)
        return
    record_id = company_record_id(rename.company)
    told = (
        f"company {rename.company!r} renamed in {rename.source}: {rename.old!r} -> {rename.new!r}"
    )
    with engine.session() as session:
        for system in rename.renamed:
            why = "renamed there" if system == rename.source else f"carried from {rename.source}"
            journal.note(
                session, record_id, RENAMED, f"{told}; {why}", system=system,
                field="company", old=rename.old, new=rename.new, run_id=run_id,
            )  # fmt: skip
        for system, why in rename.kept.items():
            journal.note(
                session, record_id, KEPT, f"{told}; kept {names[system]!r} here: {why}",
                system=system, field="company", old=rename.old, new=names[system], run_id=run_id,
            )  # fmt: skip
        session.commit()
    log.info(
        "company_renamed",
        company=rename.company,
        old=rename.old,
        new=rename.new,
        source=rename.source,
        renamed=rename.renamed,
        kept=sorted(rename.kept),
    )
