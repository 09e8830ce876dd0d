"""Engine commands of the CLI: plan, verify, reconcile, conflicts, dead letters, history, demo.

Each command builds the engine from the configuration, calls one engine function and prints
the result with rich; exit codes are documented per command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlmodel import col, select

from sync.config import DATABASE_URL_ENV, mask_url
from sync.engine.state import Engine

out = Console()
err = Console(stderr=True)


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


#: ids are SQL BIGINTs: a larger number names no row (and would overflow the driver)
MAX_ID = 2**63 - 1


@contextmanager
def engine_for(ctx: typer.Context, *, read_only: bool = True) -> Iterator[Engine]:
    """The engine on a checked store (missing or unmigrated: one line and exit 1). Read-only
    engines never wait for a running sync; a database error becomes one line too."""
    from sqlalchemy.exc import SQLAlchemyError

    from sync.cli import fail, state
    from sync.cli_store import StoreUnusable, describe_store_error, open_store_engine

    config = state(ctx).config()
    try:
        engine = open_store_engine(config, read_only=read_only)
    except StoreUnusable as exc:
        fail(str(exc))
    try:
        yield engine
    except SQLAlchemyError as exc:
        fail(describe_store_error(config.store.url, exc))
    finally:
        engine.close()


def _check_id(kind: str, value: int) -> None:
    if not 1 <= value <= MAX_ID:
        from sync.cli import fail

        fail(f"no {kind} {value} (ids are whole numbers from 1)")


def plan_cmd(
    ctx: typer.Context,
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Only these.")] = None,
) -> None:
    """Show the writes the next cycle would make, and why — writing nothing anywhere.

    Exit 0 when nothing is pending, 2 when writes are pending."""
    from sync.engine.plan import plan

    with engine_for(ctx) as engine:
        report = plan(engine, system or None)
    for name, error in report.errors.items():
        err.print(f"[red]{name}: could not read: {escape(error)}[/]")
    if not report.writes:
        out.print("[green]Nothing to write: every system is in sync.[/]")
        raise typer.Exit(0)
    table = Table(title=f"{len(report.writes)} planned writes")
    for column in ("system", "op", "deal", "field", "now", "would be", "why"):
        table.add_column(column, overflow="fold")
    for write in report.writes:
        first = True
        for field, (old, new) in (write.changes or {"—": (None, None)}).items():
            table.add_row(
                write.system if first else "",
                write.op if first else "",
                _short(write.name or write.record_id, 30) if first else "",
                field,
                _short(old),
                _short(new),
                write.reason if first else "",
            )
            first = False
    out.print(table)
    raise typer.Exit(2)


def verify_cmd(
    ctx: typer.Context,
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Only these.")] = None,
    accept_known: Annotated[
        bool,
        typer.Option(
            "--accept-known",
            help="Exit 0 despite differences with a known reason (open conflicts, filters, "
            "held systems); they are still listed.",
        ),
    ] = False,
) -> None:
    """Read every system and compare every linked deal field by field. Exit 0 only when every
    system agrees; 1 on drift, or on a known difference (an open manual conflict, a deal left
    out by a filter, a held system) unless --accept-known."""
    from sync.engine.verify import verify

    with engine_for(ctx) as engine:
        report = verify(engine, system or None)
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
                f"{_short(drift.ours)} != theirs {_short(drift.theirs)}[/]"
            )
        for duplicate in check.duplicates[:50]:
            out.print(f"  [red]{name} duplicate: {_short(duplicate)}[/]")
    for group in report.twins[:50]:
        out.print(f"  [red]one deal held as {len(group)} records: {', '.join(group)}[/]")
    if not report.agrees(accept_known=accept_known):
        raise typer.Exit(1)
    if not report.clean:
        out.print("[yellow]No drift besides the known differences listed (accepted).[/]")
        return
    out.print("[green]No drift.[/]")


def conflicts_cmd(
    ctx: typer.Context,
    resolve: Annotated[int | None, typer.Option("--resolve", help="Conflict id.")] = None,
    take: Annotated[
        str | None, typer.Option("--take", help="System whose value wins, or 'ours'.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
) -> None:
    """List conflicts, or resolve one manual conflict (``--resolve ID --take SYSTEM``)."""
    from sync.store.models import Conflict

    if resolve is not None:
        _check_id("conflict", resolve)
        if not take:
            err.print("[red]--take SYSTEM (or 'ours') is required with --resolve[/]")
            raise typer.Exit(2)
    with engine_for(ctx, read_only=resolve is None) as engine:
        if resolve is not None and take:
            _resolve(engine, resolve, take)
            return
        with engine.session() as session:
            query = select(Conflict).order_by(col(Conflict.id).desc()).limit(200)
            if not all_:
                query = query.where(Conflict.status == "open")
            rows = session.exec(query).all()
    table = Table(title="conflicts" if all_ else "open conflicts")
    for column in ("id", "record", "field", "policy", "ours", "theirs", "winner", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            row.record_id,
            row.field,
            row.policy,
            f"{_short(row.ours, 24)} ({row.ours_system})",
            f"{_short(row.theirs, 24)} ({row.theirs_system})",
            row.winner or "",
            row.status,
        )
    out.print(table)


def _resolve(engine: Engine, conflict_id: int, take: str) -> None:
    from sync.cli import fail
    from sync.engine.admin_ops import AdminError, resolve_conflict

    try:
        resolve_conflict(engine, conflict_id, take)
    except (AdminError, KeyError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    out.print(f"[green]Conflict {conflict_id} resolved: {take} wins.[/]")


def deadletters_cmd(
    ctx: typer.Context,
    replay: Annotated[int | None, typer.Option("--replay", help="Dead letter id.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every open one.")] = False,
) -> None:
    """List dead letters (with the vendor's message), or replay them."""
    from sync.store.models import DeadLetter

    if replay is not None:
        _check_id("dead letter", replay)
    replaying = replay is not None or replay_all
    with engine_for(ctx, read_only=not replaying) as engine:
        if replaying:
            _replay(ctx, engine, replay)
            return
        with engine.session() as session:
            rows = session.exec(
                select(DeadLetter).where(DeadLetter.status == "open").order_by(col(DeadLetter.id))
            ).all()
    table = Table(title=f"{len(rows)} open dead letters")
    for column in ("id", "system", "dir", "op", "record", "external id", "error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            row.system,
            row.direction,
            row.op,
            row.record_id or "",
            row.external_id or "",
            row.error,
        )
    out.print(table)


def _replay(ctx: typer.Context, engine: Engine, letter_id: int | None) -> None:
    """Replay one dead letter (or every open one) the way the admin API does: an outbound
    letter re-enqueues its push, an inbound one re-reads its system — once per system."""
    from sync.cli import fail, state
    from sync.cli_runtime import reread_system
    from sync.engine.admin_ops import AdminError, replay_dead_letter
    from sync.store.models import DeadLetter

    if letter_id is not None:
        ids = [letter_id]
    else:
        with engine.session() as session:
            query = select(DeadLetter.id).where(DeadLetter.status == "open")
            ids = [i for i in session.exec(query).all() if i is not None]
    rereads: list[str] = []
    for one in ids:
        try:
            result = replay_dead_letter(engine, one)
        except AdminError as exc:
            fail(str(exc))
        if result["reread"] and result["reread"] not in rereads:
            rereads.append(result["reread"])
    out.print(f"[green]{len(ids)} dead letter(s) replayed.[/]")
    for system in rereads:
        reread_system(engine, state(ctx).config(), system)


def history_cmd(
    ctx: typer.Context, record: Annotated[str, typer.Argument(help="Record id.")]
) -> None:
    """The journal of one deal: every change, from where, and why."""
    from sync.store.models import Journal, Link, Record

    with engine_for(ctx) as engine, engine.session() as session:
        found = session.get(Record, record)
        if found is None:
            link = session.exec(select(Link).where(Link.external_id == record)).first()
            found = session.get(Record, link.record_id) if link else None
        if found is None:
            err.print(f"[red]No record {escape(record)} (a record id or a vendor id).[/]")
            raise typer.Exit(1)
        entries = session.exec(
            select(Journal).where(Journal.record_id == found.id).order_by(col(Journal.id))
        ).all()
        links = session.exec(select(Link).where(Link.record_id == found.id)).all()
    out.print(
        f"[bold]{escape(str(found.fields.get('name')))}[/] ({found.id})"
        + (" [red]deleted[/]" if found.deleted_at else "")
    )
    for link in links:
        out.print(
            f"  {link.system}: {link.external_id}"
            + (" [red](deleted there)[/]" if link.deleted_at else "")
        )
    table = Table()
    for column in ("at", "system", "action", "field", "old", "new", "why"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            f"{entry.at:%Y-%m-%d %H:%M:%S}",
            entry.system or "",
            entry.action,
            entry.field or "",
            _short(entry.old, 24),
            _short(entry.new, 24),
            entry.reason,
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("verify")(verify_cmd)
    app.command("conflicts")(conflicts_cmd)
    app.command("deadletters")(deadletters_cmd)
    app.command("history")(history_cmd)
    app.command("demo")(demo_cmd)


DEMO_STORE = Path("crmsync-demo.db")


def _fresh_demo_store() -> str:
    """The demo's emulators start from their seed every run, so its store must too: a store
    kept from an earlier demo links deals those emulators no longer hold. The demo never writes
    into a store it did not create: it always uses ./crmsync-demo.db, emptied first, whatever
    ``$CRMSYNC_DATABASE_URL`` (or the config's ``store.url``) names — with the Deployment
    variables exported that is a production store, which would gain the demo's seeded deals and
    then report its own as missing. Inspect the demo's store afterwards with
    ``CRMSYNC_DATABASE_URL=sqlite:///crmsync-demo.db crmsync …``."""
    ignored = os.environ.get(DATABASE_URL_ENV)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DEMO_STORE}{suffix}").unlink(missing_ok=True)
    os.environ[DATABASE_URL_ENV] = f"sqlite:///{DEMO_STORE}"
    note = f"; ${DATABASE_URL_ENV} ({mask_url(ignored)}) left untouched" if ignored else ""
    return f"{DEMO_STORE} (fresh, like the emulators{note})"


def _forget_config(ctx: typer.Context) -> None:
    from sync.cli import state

    state(ctx).forget_config()


def demo_cmd(
    ctx: typer.Context,
    seed_opportunities: Annotated[
        int, typer.Option("--seed-opportunities", help="Random deals per emulated vendor.")
    ] = 10,
    port_base: Annotated[int, typer.Option(help="Emulators listen on port-base+1..+4.")] = 8710,
    cycles: Annotated[
        int, typer.Option(help="Run this many cycles, verify and exit (0: run until Ctrl-C).")
    ] = 0,
) -> None:
    """The demo: the four emulators with seeded deals over HTTP, and crmsync syncing them.

    Uses the shipped config.yaml, pointed at the emulators' ports, and a fresh store. Watch
    deals converge across Ruddr, Close, ParsaLink and Salesforce-through-Truto; Ctrl-C stops."""
    from sync.cli_runtime import run
    from sync.emulators.server import running

    # The demo's emulators hold deals in every system: it applies the first-run match itself
    # (sync.first_run: automatic) so it stays one command; real systems use the guided run.
    os.environ.setdefault("CRMSYNC_FIRST_RUN", "automatic")
    with running(port_base=port_base, seed=1, seed_opportunities=seed_opportunities) as served:
        for name, emulator in served.items():
            os.environ[f"{name.upper()}_BASE_URL"] = emulator.base_url  # whatever the port base
            out.print(f"[cyan]{name}[/] emulator at {emulator.base_url}")
        out.print(f"store: {_fresh_demo_store()}")
        _forget_config(ctx)  # read again, with the URLs above
        if cycles <= 0:
            run(ctx, once=False, live=None)
            return
        for _ in range(cycles):
            try:
                run(ctx, once=True, live=False)
            except typer.Exit as done:
                if done.exit_code not in (0, None):
                    raise
        verify_cmd(ctx, system=None)


# -- crmsync match (the guided first run) ----------------------------------------------------
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
    limit: Annotated[int, typer.Option(help="Proposed matches shown (ambiguous: all).")] = 20,
) -> None:
    """The first run's match: which deals already exist in several systems.

    Prints the proposed pairs and counts (matched, ambiguous, only in one system, near-misses)
    from what the last cycle read. Nothing is created in a system that held deals until you
    approve (`--approve`), apply a corrected file (`--apply FILE`) or waive (`--waive`).
    Exit 0; 1 when a corrected file cannot be applied."""
    from sync.engine import first_run, matching

    if sum((approve, waive, apply_path is not None)) > 1:
        err.print("[red]--approve, --apply and --waive are alternatives: choose one.[/]")
        raise typer.Exit(1)
    with engine_for(ctx) as engine:
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
        _print_gate(gate)
        _print_proposal(proposal, limit)
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
        "approved": f"approved ({gate.decided_by})",
        "automatic": "applied automatically (sync.first_run: automatic)",
        "waived": f"waived ({gate.decided_by})",
    }
    out.print(f"First run: [bold]{gate.state}[/] — {says.get(gate.state, '')}; deals read: {held}")


def _print_proposal(proposal: Any, limit: int) -> None:
    counts = proposal.counts
    out.print(f"rule: {proposal.rule}")
    out.print(
        f"[bold]matched {counts['matched']}[/] · [bold yellow]ambiguous {counts['ambiguous']}[/]"
        f" · only in one system {counts['single']} · near-misses {counts['near_misses']}"
        f" · records to link {counts['to_link']}"
    )
    shown = [g for g in proposal.groups if g.to_link][:limit] + proposal.of("ambiguous")
    if shown:
        table = Table(title="proposed matches (and every ambiguous one)")
        for column in ("match", "status", "deals (system id: name @ company)", "why"):
            table.add_column(column, overflow="fold")
        for group in shown:
            deals = "\n".join(
                f"{system} {ext}: {_short(deal.fields.get('name'), 30)} @ "
                f"{_short(deal.fields.get('company'), 24)}"
                for deal in group.deals
                for system, ext in deal.copies
            )
            style = "yellow" if group.status == "ambiguous" else ""
            table.add_row(group.match_id, group.status, deals, group.why, style=style)
        out.print(table)
    if proposal.near_misses_cut:
        out.print("[yellow]near-miss search stopped at its budget: there may be more[/]")
    for miss in proposal.near_misses[:limit]:
        out.print(
            f"  [yellow]near-miss:[/] {miss.first.label()} ~ {miss.second.label()}: {miss.why}"
        )


def doctor_cmd(
    ctx: typer.Context,
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Only these.")] = None,
) -> None:
    """Connect to every configured system and check what the first run needs: credentials,
    read/write access, the custom fields the mapping uses, stages, owners and companies, the
    rate limit the vendor reports — each problem with its fix. Writes nothing.

    Exit 0 when nothing is a problem (warnings allowed), 1 otherwise."""
    from sync.cli import state as cli_state
    from sync.engine.doctor import doctor
    from sync.store.db import upgrade

    upgrade(
        cli_state(ctx).config().store.url
    )  # the first command on a fresh checkout: as `run` does
    with engine_for(ctx) as engine:
        reports = doctor(engine, system or None)
    marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "problem": "[red]✗[/]"}
    for name, report in reports.items():
        state = "[red]problems[/]" if report.problems else "[green]ready[/]"
        out.print(f"[bold]{name}[/] ({report.vendor}): {state}")
        for finding in report.findings:
            out.print(
                f"  {marks[finding.level]} {finding.check}: {escape(finding.what)}", soft_wrap=True
            )
            if finding.fix:
                out.print(f"      fix: {escape(finding.fix)}", soft_wrap=True)
    if any(report.problems for report in reports.values()):
        raise typer.Exit(1)


def register_first_run(app: typer.Typer) -> None:
    """The first-run commands, match and doctor (kept apart from ``register`` to ease
    merging)."""
    app.command("match")(match_cmd)
    app.command("doctor")(doctor_cmd)
