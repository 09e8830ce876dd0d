"""The first run's commands: ``doctor`` (can crmsync work with every configured system?) and
``match`` (which deals already exist in several systems — nothing is created in a system that
held deals until a person approves, corrects or waives the match).

Exit codes are documented per command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from sync.cli.base import (
    check_systems,
    context,
    engine_for,
    err,
    fail,
    out,
    print_json,
    refuse_shared_orgs,
)
from sync.cli.tables import line, listing, short

#: seconds `doctor` gives one vendor request (it retries nothing)
DOCTOR_TIMEOUT = 15.0


def match_cmd(
    ctx: typer.Context,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Also write every proposed pair to this CSV.")
    ] = None,
    apply_path: Annotated[
        Path | None,
        typer.Option("--apply", help="Apply a corrected CSV (rows sharing match_id: one deal)."),
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Link the proposed matches and let creates go.")
    ] = False,
    waive: Annotated[
        bool, typer.Option("--waive", help="Let creates go without matching anything.")
    ] = False,
    limit: Annotated[
        int, typer.Option(help="Proposed matches shown (ambiguous: all).", min=0, max=100_000)
    ] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (keys: README, --json).")
    ] = False,
) -> None:
    """The first run's match: which deals already exist in several systems.

    Prints the proposed pairs and counts (matched, ambiguous, only in one system, near-misses)
    from what the last cycle read. Nothing is created in a system that held deals until you
    approve (`--approve`), apply a corrected file (`--apply FILE`) or waive (`--waive`).
    Exit 0; 1 when a corrected file cannot be applied."""
    from sync.engine import first_run, matching, reports

    if sum((approve, waive, apply_path is not None)) > 1:
        fail("--approve, --apply and --waive are alternatives: choose one")
    with engine_for(ctx) as engine:
        refuse_shared_orgs(engine)
        proposal = matching.propose(engine)
        if apply_path is not None:
            try:
                proposal = matching.read_csv(apply_path, proposal)
            except (OSError, matching.MatchFileError) as exc:
                err.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
                raise typer.Exit(1) from exc
        gate = first_run.gate(engine)
        if (approve or apply_path is not None) and not first_run.all_read(engine):
            err.print(
                "[red]Not every system has been read yet: run `crmsync run --once` first, so "
                "the match sees every copy of every deal.[/]"
            )
            raise typer.Exit(1)
        if as_json and not (approve or waive or apply_path or csv_path):
            print_json(reports.proposal(gate.state, proposal))
            return
        _print_gate(gate)
        _print_proposal(proposal, limit)
        if gate.creates_wait:
            _print_waiting_updates(engine, limit)
        if csv_path is not None:
            rows = matching.write_csv(proposal, csv_path)
            out.print(f"wrote {rows} rows to {csv_path} (one per deal copy; edit match_id/action)")
        if waive:
            first_run.waive(engine, by="crmsync match --waive")
            out.print("[yellow]First run waived: creates go out on the next cycle.[/]")
        elif approve or apply_path is not None:
            how = f"crmsync match --apply {apply_path}" if apply_path else "crmsync match --approve"
            done = first_run.approve(engine, by=how, proposal=proposal)
            out.print(
                f"[green]Approved:[/] {done.linked} deals linked ({done.merged_records} records "
                f"merged), {done.held} records held for a person, {done.released} released. "
                "Creates go out on the next cycle."
            )
        elif gate.creates_wait:
            out.print(
                "Next: check the pairs (`--csv matches.csv` to review or correct them in a "
                "spreadsheet), then `crmsync match --approve` or `--apply matches.csv`."
            )


def _print_gate(gate: Any) -> None:
    held = ", ".join(f"{system} {n}" for system, n in sorted(gate.deals.items())) or "none yet"
    says = {
        "unread": "not every system has been read yet: run `crmsync run --once` first",
        "review": "nothing is created until you approve this match",
        "open": "at most one system held deals: nothing to match",
        # the state is said before the dash: after it, who decided ("approved — approved …")
        "approved": f"by `{gate.decided_by}`",
        "automatic": "applied automatically (sync.first_run: automatic)",
        "waived": f"by `{gate.decided_by}`",
    }
    out.print(f"First run: [bold]{gate.state}[/] — {says.get(gate.state, '')}; deals read: {held}")


def _print_waiting_updates(engine: Any, limit: int) -> None:
    """Deals already linked by an id whose copies differ: what approval will write, and why."""
    from sync.engine.plan import waiting_updates

    writes = waiting_updates(engine)
    if not writes:
        return
    out.print(f"approval will also write {len(writes)} updates to deals already linked by an id:")
    for write in writes[:limit]:
        changes = ", ".join(
            f"{name} {short(before, 20)} → {short(after, 20)}"
            for name, (before, after) in write.changes.items()
        )
        what = f"{short(write.name)}: {changes} ({write.reason})"
        line(f"  {write.system} {escape(what)}")


def _print_proposal(proposal: Any, limit: int) -> None:
    counts = proposal.counts
    out.print(f"rule: {proposal.rule}")
    out.print(
        f"[bold]matched {counts['matched']}[/] · [bold yellow]ambiguous {counts['ambiguous']}[/]"
        f" · only in one system {counts['single']} · near-misses {counts['near_misses']}"
        f" · records to link {counts['to_link']}"
    )
    shown = [g for g in proposal.groups if g.to_link][:limit] + proposal.of("ambiguous")
    rows, styles = [], []
    for group in shown:
        first = True
        for deal in group.deals:
            for system, ext in deal.copies:
                name, company = (
                    short(deal.fields.get("name"), 30),
                    short(deal.fields.get("company"), 24),
                )
                rows.append(
                    [
                        group.match_id if first else "",
                        group.status if first else "",
                        f"{system} {ext}",
                        f"{name} @ {company}",
                        group.why if first else "",
                    ]
                )
                styles.append("yellow" if group.status == "ambiguous" else "")
                first = False
    if rows:
        columns = ("match", "status", "deal (system id)", "name @ company", "why")
        listing("proposed matches (and every ambiguous one)", columns, rows, styles=styles)
    if proposal.near_misses_cut:
        out.print("[yellow]near-miss search stopped at its budget: there may be more[/]")
    for miss in proposal.near_misses[:limit]:
        line(f"  [yellow]near-miss:[/] {miss.first.label()} ~ {miss.second.label()}: {miss.why}")


def doctor_cmd(
    ctx: typer.Context,
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Only these.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (keys: README, --json).")
    ] = False,
) -> None:
    """Connect to every configured system and check what the first run needs: credentials,
    read/write access, the custom fields the mapping uses, stages, owners and companies, the
    rate limit the vendor reports — each problem with its fix. Writes nothing.

    Exit 0 when nothing is a problem (warnings allowed), 1 otherwise."""
    from sync.connectors.http.transport import RetryPolicy
    from sync.engine import reports as shapes
    from sync.engine.doctor import doctor
    from sync.store.db import upgrade

    chosen = check_systems(context(ctx).config(), system)
    # the first command on a fresh checkout: it migrates the store, as `run` does
    upgrade(context(ctx).config().store.url)
    with engine_for(ctx) as engine:
        # a check, not a sync: an unreachable vendor is one finding now, not a minute of
        # retries (a wrong base URL is the most common first-run problem)
        engine.retry = RetryPolicy(attempts=1, timeout=DOCTOR_TIMEOUT)
        http_log = logging.getLogger("sync.connectors.http")
        level = http_log.level
        http_log.setLevel(logging.ERROR)  # each failed request is a finding below, said once
        try:
            reports = doctor(engine, chosen)
        finally:
            http_log.setLevel(level)
    if as_json:
        print_json(shapes.doctor(reports))
        raise typer.Exit(1 if any(report.problems for report in reports.values()) else 0)
    marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "problem": "[red]✗[/]"}
    for name, report in reports.items():
        verdict = "[red]problems[/]" if report.problems else "[green]ready[/]"
        out.print(f"[bold]{name}[/] ({report.vendor}): {verdict}")
        for finding in report.findings:
            line(f"  {marks[finding.level]} {finding.check}: {escape(finding.what)}")
            if finding.fix:
                line(f"      fix: {escape(finding.fix)}")
    if any(report.problems for report in reports.values()):
        raise typer.Exit(1)
