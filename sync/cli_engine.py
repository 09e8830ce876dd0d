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
from sync.engine.factory import open_engine
from sync.engine.state import Engine

out = Console()
err = Console(stderr=True)


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


@contextmanager
def engine_for(ctx: typer.Context) -> Iterator[Engine]:
    from sync.cli import state

    engine = open_engine(state(ctx).config())
    try:
        yield engine
    finally:
        engine.close()


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

    with engine_for(ctx) as engine:
        if resolve is not None:
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


def _resolve(engine: Engine, conflict_id: int, take: str | None) -> None:
    from sync.engine.admin_ops import resolve_conflict

    if not take:
        err.print("[red]--take SYSTEM (or 'ours') is required with --resolve[/]")
        raise typer.Exit(2)
    try:
        resolve_conflict(engine, conflict_id, take)
    except (KeyError, ValueError) as exc:
        err.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    out.print(f"[green]Conflict {conflict_id} resolved: {take} wins.[/]")


def deadletters_cmd(
    ctx: typer.Context,
    replay: Annotated[int | None, typer.Option("--replay", help="Dead letter id.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every open one.")] = False,
) -> None:
    """List dead letters (with the vendor's message), or replay them."""
    from sync.store.models import DeadLetter

    with engine_for(ctx) as engine:
        if replay is not None or replay_all:
            from sync.engine.admin_ops import replay_dead_letter

            with engine.session() as session:
                ids = (
                    [replay]
                    if replay is not None
                    else [
                        d.id
                        for d in session.exec(
                            select(DeadLetter).where(DeadLetter.status == "open")
                        ).all()
                    ]
                )
            for letter_id in ids:
                if letter_id is not None:
                    replay_dead_letter(engine, letter_id)
            out.print(f"[green]{len(ids)} dead letter(s) queued for replay.[/]")
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
    kept from an earlier demo links deals those emulators no longer hold. Unless
    ``$CRMSYNC_DATABASE_URL`` names another, the demo uses ./crmsync-demo.db, emptied first
    (inspect it afterwards with ``CRMSYNC_DATABASE_URL=sqlite:///crmsync-demo.db crmsync …``)."""
    chosen = os.environ.get(DATABASE_URL_ENV)
    if chosen:
        return mask_url(chosen)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DEMO_STORE}{suffix}").unlink(missing_ok=True)
    os.environ[DATABASE_URL_ENV] = f"sqlite:///{DEMO_STORE}"
    return f"{DEMO_STORE} (fresh, like the emulators)"


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
