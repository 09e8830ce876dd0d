"""The decisions a person takes in the console, the same ones the CLI takes: the first run's
match (``crmsync match --approve / --apply / --waive``), held deletes (``crmsync deletes
--confirm / --discard``) and a changed binding (``crmsync rebind``).

Settling an ambiguous group is what a corrected match file does for it: the deals the person
ticks are one deal (linked), every other deal of the group becomes a deal of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sync.engine import bindings, deletes, first_run, guard, matching
from sync.engine.context import Engine
from sync.engine.operations import AdminError


def settle(proposal: matching.Proposal, choices: Mapping[str, Sequence[str]]) -> matching.Proposal:
    """``proposal`` with each ambiguous group in ``choices`` (match id -> record ids that are
    one deal) split into the chosen deal and the others, each a deal of its own. Refuses a
    group that is not ambiguous, a record not in its group, or two deals of one system."""
    groups = {group.match_id: group for group in proposal.groups}
    settled = matching.Proposal(
        rule=f"{proposal.rule}, settled in the console",
        near_misses=proposal.near_misses,
        near_misses_cut=proposal.near_misses_cut,
    )
    for match_id in choices:
        group = groups.get(match_id)
        if group is None or group.status != "ambiguous":
            raise AdminError(f"{match_id} is not an ambiguous group of the current proposal", 409)
    for group in proposal.groups:
        if group.match_id not in choices:
            settled.groups.append(group)
            continue
        settled.groups.extend(_split(group, set(choices[group.match_id])))
    return settled


def _split(group: matching.Group, chosen: set[str]) -> list[matching.Group]:
    members = {deal.record_id: deal for deal in group.deals}
    unknown = sorted(chosen - set(members))
    if unknown:
        raise AdminError(f"{group.match_id} has no deal {', '.join(unknown)}", 409)
    picked = [members[record_id] for record_id in members if record_id in chosen]
    systems = [system for deal in picked for system in deal.systems]
    if len(systems) != len(set(systems)):
        raise AdminError(f"{group.match_id}: two of the chosen deals are in the same system")
    if len(picked) < 2:
        raise AdminError(f"{group.match_id}: choose at least two deals to make one")
    why = "settled in the console"
    split = [matching.Group(group.match_id, "matched", picked, why)]
    for number, deal in enumerate(d for d in group.deals if d.record_id not in chosen):
        status: Any = "matched" if len(deal.systems) > 1 else "single"
        split.append(matching.Group(f"{group.match_id}-{number}", status, [deal], why))
    return split


def approve(engine: Engine, choices: Mapping[str, Sequence[str]], by: str) -> dict[str, Any]:
    """Approve the first run's match, ambiguous groups in ``choices`` settled first."""
    if not first_run.all_read(engine):
        raise AdminError(
            "not every system has been read yet: the match must see every copy of every deal "
            "first (wait for the first poll of each system)",
            409,
        )
    proposal = settle(matching.propose(engine), choices)
    done = first_run.approve(engine, by=by, proposal=proposal)
    return {"state": "approved", **vars(done)}


def waive(engine: Engine, by: str) -> dict[str, Any]:
    first_run.waive(engine, by=by)
    return {"state": "waived"}


def held_deletes(engine: Engine, system: str, choice: str) -> dict[str, Any]:
    """Apply (``confirm``) or drop (``discard``) a system's held deletes; either releases it."""
    _known(engine, system)
    if choice == "confirm":
        counts = deletes.confirm_held(engine, system)
        return {"system": system, "deleted": int(counts["deleted"]), "released": True}
    return {"system": system, "discarded": deletes.discard_held(engine, system), "released": True}


def rebind(engine: Engine, system: str, new_account: bool) -> dict[str, Any]:
    _known(engine, system)
    return {"system": system, "done": bindings.rebind(engine, system, new_account=new_account)}


def is_held(engine: Engine, system: str) -> str | None:
    state = guard.holds(engine).get(system)
    return state.held if state is not None else None


def _known(engine: Engine, system: str) -> None:
    if system not in engine.systems:
        raise AdminError(f"unknown system {system!r}; configured: {', '.join(engine.systems)}")
