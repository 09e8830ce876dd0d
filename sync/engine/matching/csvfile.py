"""The proposal as a CSV for a person: written one row per copy of a deal (``crmsync match
--csv``), read back as corrected (``--apply``), every bad row named in one error. Rows the
file leaves out keep the computed decision."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from sync.engine.matching.proposal import Deal, Group, Proposal, Status, _alone, _disjoint

CSV_COLUMNS = (
    "match_id",
    "status",
    "action",
    "system",
    "external_id",
    "record_id",
    "name",
    "company",
    "amount",
    "close_date",
    "why",
)


class MatchFileError(ValueError):
    """A corrected match file that cannot be applied; the message names the rows."""


def write_csv(proposal: Proposal, path: Path) -> int:
    """One row per copy of a deal (system, external id); rows sharing ``match_id`` are one
    deal. Returns the number of rows written."""
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for group in proposal.groups:
            action = "hold" if group.status == "ambiguous" else "link"
            for deal in group.deals:
                for system, external_id in deal.copies:
                    writer.writerow(
                        [
                            group.match_id,
                            group.status,
                            action,
                            system,
                            external_id,
                            deal.record_id,
                            deal.fields.get("name") or "",
                            deal.fields.get("company") or "",
                            deal.fields.get("amount") or "",
                            deal.fields.get("close_date") or "",
                            group.why,
                        ]
                    )
                    rows += 1
    return rows


def read_csv(path: Path, proposal: Proposal) -> Proposal:
    """The proposal as corrected in a CSV written by :func:`write_csv`: rows sharing a
    ``match_id`` are one deal; ``action`` is ``link`` or ``hold`` (leave for later). Records
    the file does not mention keep the computed decision. Raises MatchFileError naming every
    bad row."""
    deals = {deal.record_id: deal for group in proposal.groups for deal in group.deals}
    wanted: dict[str, list[Deal]] = defaultdict(list)
    actions: dict[str, str] = {}
    problems: list[str] = []
    placed: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [
            c for c in ("match_id", "action", "record_id") if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise MatchFileError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            match_id = (row.get("match_id") or "").strip()
            record_id = (row.get("record_id") or "").strip()
            action = (row.get("action") or "link").strip().lower() or "link"
            if action not in ("link", "hold"):
                problems.append(f"line {line}: action must be link or hold, got {action!r}")
                continue
            if record_id not in deals:
                problems.append(f"line {line}: record {record_id!r} is not a live record")
                continue
            match_id = match_id or f"~{record_id}"
            if placed.setdefault(record_id, match_id) != match_id:
                problems.append(
                    f"line {line}: record {record_id} is in {placed[record_id]} and {match_id}"
                )
                continue
            if actions.setdefault(match_id, action) != action:
                problems.append(f"line {line}: {match_id} is both link and hold")
            if deals[record_id] not in wanted[match_id]:
                wanted[match_id].append(deals[record_id])
    for match_id, members in wanted.items():
        if actions.get(match_id) == "link" and not _disjoint(members):
            problems.append(
                f"{match_id}: links two deals of one system "
                f"({'; '.join(d.label() for d in members)}); give one another match_id or hold"
            )
    if problems:
        raise MatchFileError(f"{path}: " + "; ".join(problems))
    corrected = Proposal(rule=f"{proposal.rule}, corrected by {path.name}")
    for group in proposal.groups:  # records the file leaves out keep the computed decision
        kept = [deal for deal in group.deals if deal.record_id not in placed]
        if kept:
            corrected.groups.extend(_regroup(group, kept))
    for match_id, members in wanted.items():
        if actions[match_id] == "hold":
            status: Status = "ambiguous"
        else:
            status = "matched" if len(members) > 1 or len(members[0].systems) > 1 else "single"
        corrected.groups.append(Group(match_id, status, members, f"decided in {path.name}"))
    return corrected


def _regroup(group: Group, kept: list[Deal]) -> list[Group]:
    if len(kept) == len(group.deals):
        return [group]
    if group.status == "ambiguous":
        return [Group(group.match_id, "ambiguous", kept, group.why)]
    return [Group(group.match_id, _alone(d), [d], "left out of the file") for d in kept]
