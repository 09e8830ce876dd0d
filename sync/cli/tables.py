"""How the commands show what they found: rich tables, and the lines that several commands
print alike (what a cycle left owed, why the first run creates nothing yet, a verify report).

The tables take plain rows — the dictionaries of :mod:`sync.engine.operations`, the admin
API's too — or engine reports; nothing here reads the store itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from sync.cli.base import err, out

if TYPE_CHECKING:
    from sync.engine.cycle import CycleReport, Owed
    from sync.engine.reconcile import ReconcileReport
    from sync.engine.state import Engine
    from sync.engine.verify import VerifyReport


def short(value: Any, width: int = 40) -> str:
    """A value on one cell: JSON for anything but text, cut at ``width`` with an ellipsis."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "nothing to do"


_HEALTH_STYLE = {"ok": "green", "stale": "yellow", "error": "red", "never": "dim"}


def health_table(rows: list[dict[str, Any]], title: str = "systems") -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("system", "health", "last poll", "lag", "cursor", "pending", "conflicts"):
        table.add_column(
            name, justify="right" if name in ("lag", "pending", "conflicts") else "left"
        )
    table.add_column("dead letters", justify="right")
    table.add_column("healed", justify="right")  # by the last reconcile; 0 when healthy
    for row in rows:
        style = _HEALTH_STYLE.get(row["health"], "")
        table.add_row(
            row["system"],
            f"[{style}]{row['health']}[/]" if style else row["health"],
            row["last_poll_at"] or "—",
            ago(row["lag_seconds"]),
            row["cursor"] or "—",
            str(row["pending"]),
            str(row["conflicts"]),
            f"[red]{row['dead_letters']}[/]" if row["dead_letters"] else "0",
            _healed_cell(row.get("healed")),
        )
    return table


def _healed_cell(healed: int | None) -> str:
    if healed is None:
        return "—"  # never reconciled
    return f"[yellow]{healed}[/]" if healed else "0"


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="last runs", title_justify="left")
    for name in ("run", "kind", "system", "status", "started", "finished", "counts"):
        table.add_column(name)
    for run in runs:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(run["counts"].items()) if v)
        style = {"done": "green", "failed": "red", "interrupted": "yellow"}.get(run["status"], "")
        table.add_row(
            run["id"],
            run["kind"],
            run["system"] or "all",
            f"[{style}]{run['status']}[/]" if style else run["status"],
            run["started_at"] or "—",
            run["finished_at"] or "—",
            escape(counts) or "—",
        )
    return table


def cycle_table(report: CycleReport) -> Table:
    table = Table(title=f"cycle {report.run_id}: {report.status}", title_justify="left")
    columns = ("fetched", "changed", "created", "pushed", "deleted", "conflicts", "dead_letters")
    table.add_column("system")
    for name in columns:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_column("error")
    for system, counts in report.per_system.items():
        table.add_row(
            system,
            *(str(counts[name]) for name in columns),
            escape(report.errors.get(system, "")),
        )
    return table


def reconcile_table(report: ReconcileReport) -> Table:
    title = f"reconcile {report.run_id}: {report.status} — healed {report.healed}"
    table = Table(title=title, title_justify="left")
    columns = ("fetched", "healed", "changed", "created", "linked", "deleted", "pushed")
    table.add_column("system")
    for name in columns:
        table.add_column(name, justify="right")
    table.add_column("error")
    for system, counts in report.per_system.items():
        cells = [str(counts[name]) for name in columns]
        if counts["healed"]:
            cells[1] = f"[yellow]{counts['healed']}[/]"
        table.add_row(system, *cells, escape(report.errors.get(system, "")))
    return table


def owed_lines(left: Owed) -> list[str]:
    """What a cycle left undone, in words: pushes owed per system, and when the next is due."""

    from sync.timefmt import format_timestamp, utcnow

    lines = []
    if left.total:
        per_system = "; ".join(
            f"{system}: " + ", ".join(f"{n} {_STATE_WORDS.get(s, s)}" for s, n in states.items())
            for system, states in sorted(left.states.items())
        )
        lines.append(f"[red]{left.total} push(es) still owed[/] — {escape(per_system)}")
        if left.next_due is not None:
            seconds = max(0.0, (left.next_due - utcnow()).total_seconds())
            when = format_timestamp(left.next_due, precision="s")
            lines.append(
                f"next retry at {when} (in {ago(seconds)}); run `crmsync run --once` again "
                "then, or keep `crmsync run` running"
            )
    if left.parked:
        parked = ", ".join(f"{system}: {n}" for system, n in sorted(left.parked.items()))
        lines.append(f"[yellow]parked, waiting for a reference to resolve:[/] {escape(parked)}")
    return lines


_STATE_WORDS = {
    "retry": "waiting for a retry",
    "in_flight": "claimed by another process",
    "pending": "not sent (creates wait until every system has been read once)",
}


def first_run_notice(engine: Engine) -> None:
    """Say why nothing was created while the guided first run waits for a review."""
    from sync.engine import first_run

    gate = first_run.gate(engine)
    if gate.state == "review":
        deals = ", ".join(f"{system} {n}" for system, n in sorted(gate.deals.items()))
        err.print(
            f"[yellow]First run: these systems already hold deals ({deals}). Nothing is created "
            "until you review the match: `crmsync match`, then `crmsync match --approve`.[/]"
        )
    waiting = first_run.held_for_review(engine)
    if waiting:
        err.print(
            f"[yellow]{waiting} deal copies are held as ambiguous matches: nothing is created from "
            "them until a person decides (`crmsync match --csv FILE`, then `--apply FILE`).[/]"
        )


def show_verify(report: VerifyReport, *, accept_known: bool) -> None:
    """Print a verify report (``crmsync verify``, the demo's last step); exit 1 unless every
    system agrees (known differences count as agreeing with ``accept_known``)."""
    table = Table(title="verify")
    for column in (
        "system",
        "vendor deals",
        "linked",
        "unlinked",
        "missing",
        "absent",
        "duplicates",
        "drifting fields",
        "known",
        "filtered",
        "open conflicts",
    ):
        table.add_column(column)
    for name, check in report.systems.items():
        table.add_row(
            name,
            str(check.vendor_records),
            str(check.linked),
            str(len(check.unlinked)),
            str(len(check.missing)),
            str(len(check.absent)),
            str(len(check.duplicates)),
            str(len(check.drift)),
            str(len(check.known)),
            str(len(check.filtered)),
            str(check.conflicts),
        )
    out.print(table)
    for name, check in report.systems.items():
        for known in check.known[:50]:
            where = " ".join(x for x in (known.external_id, known.field) if x)
            out.print(f"  [cyan]{name} {escape(where)} known: {escape(known.reason)}[/]")
    for name, check in report.systems.items():
        for drift in check.drift[:50]:
            out.print(
                f"  [yellow]{name} {drift.external_id} {drift.field}: ours "
                f"{short(drift.ours)} != theirs {short(drift.theirs)}[/]"
            )
        for duplicate in check.duplicates[:50]:
            out.print(f"  [red]{name} duplicate: {short(duplicate)}[/]")
    for group in report.twins[:50]:
        out.print(f"  [red]one deal held as {len(group)} records: {', '.join(group)}[/]")
    if not report.agrees(accept_known=accept_known):
        raise typer.Exit(1)
    if not report.clean:
        out.print("[yellow]No drift besides the known differences listed (accepted).[/]")
        return
    out.print("[green]No drift.[/]")
