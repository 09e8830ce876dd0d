"""Commands that look and change nothing: ``config check``, ``status``, ``plan``, ``verify``,
``history``.

They open the store read-only (a running sync never blocks them) and read it through
:mod:`sync.engine.operations` — the functions the admin API serves — or an engine report
(plan, verify); exit codes are documented per command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from sync.cli.base import (
    context,
    engine_for,
    err,
    exported_config,
    fail,
    out,
    print_config_error,
)
from sync.cli.tables import first_run_notice, health_table, runs_table, short, show_verify
from sync.config import Config, ConfigError, load_config
from sync.money_config import resolve

# --------------------------------------------------------------------------- config check


def _print_currencies(config: Config) -> None:
    """What each system will do with money (stderr: stdout stays the resolved YAML)."""
    err.print("currencies (systems.NAME.currency):")
    for name, system in config.systems.items():
        model = resolve(system.type, system.currency)
        err.print(f"  {escape(name)}: {escape(model.describe())}", soft_wrap=True)
    rates = config.currency_rates
    if rates is not None:
        table = ", ".join(f"{pair} {rate}" for pair, rate in rates.rates.items()) or "empty"
        err.print(f"  currency_rates as of {rates.as_of.isoformat()}: {escape(table)}")


def config_check(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="File to check (default: --config).", dir_okay=False),
    ] = None,
) -> None:
    """Validate a configuration file and print what it resolves to, secrets masked."""
    target = path or context(ctx).config_path
    try:
        config = load_config(target)
    except ConfigError as error:
        print_config_error(error)
        raise typer.Exit(1) from None
    out.print(Syntax(config.masked_yaml(), "yaml", background_color="default"))
    _print_currencies(config)
    count = len(config.systems)
    names = ", ".join(config.systems)
    summary = f"{count} system{'s' if count != 1 else ''}: {names}" if count else "no systems"
    err.print(f"[green]✓[/] {escape(str(target))} is valid ({summary})", soft_wrap=True)


# --------------------------------------------------------------------------- status


def status(
    ctx: typer.Context,
    runs: Annotated[int, typer.Option(help="How many recent runs to show.")] = 10,
) -> None:
    """Per-system health, cursor, lag, pending pushes, conflicts, dead letters; last runs."""
    config = exported_config(ctx)
    from sqlalchemy.exc import SQLAlchemyError

    from sync.cli.store_access import StoreUnusable, describe_store_error, open_store_engine
    from sync.engine import operations

    try:  # read-only: a sync writing the store at this moment never blocks it
        engine = open_store_engine(config, read_only=True)
    except StoreUnusable as exc:
        fail(str(exc))
    try:
        rows = operations.system_health(engine)
        recent = operations.last_runs(engine, runs)
        first_run_notice(engine)
    except SQLAlchemyError as exc:
        fail(describe_store_error(config.store.url, exc))
    finally:
        engine.close()
    out.print(health_table(rows))
    for row in rows:  # a held system waits for an operator: say why and what to do
        if row.get("held"):
            out.print(f"[bold red]HELD {row['system']}[/] ({row['held']}): {row['held_message']}")
    out.print(runs_table(recent))


# --------------------------------------------------------------------------- plan, verify


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
                short(write.name or write.record_id, 30) if first else "",
                field,
                short(old),
                short(new),
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
    summaries: Annotated[
        str,
        typer.Option(
            "--summaries",
            help="A summary listing (ParsaLink: a GET per deal to read in full): 'full' reads "
            "every deal, 'trust' compares deals whose stamp a full read confirmed from that "
            "read, a number N trusts them but reads a random sample of about N in full.",
        ),
    ] = "full",
) -> None:
    """Read every system and compare every linked deal field by field. Exit 0 only when every
    system agrees; 1 on drift, or on a known difference (an open manual conflict, a deal left
    out by a filter, a held system) unless --accept-known."""
    from sync.engine.verify import Summaries, verify

    how: Summaries
    if summaries in ("full", "trust"):
        how = "full" if summaries == "full" else "trust"
    elif summaries.isdigit():
        how = int(summaries)
    else:
        raise typer.BadParameter(
            f"expected full, trust or a number, got {summaries!r}", param_hint="--summaries"
        )
    with engine_for(ctx) as engine:
        report = verify(engine, system or None, how)
    show_verify(report, accept_known=accept_known)


# --------------------------------------------------------------------------- history


def history_cmd(
    ctx: typer.Context, record: Annotated[str, typer.Argument(help="Record id.")]
) -> None:
    """The journal of one deal: every change, from where, and why."""
    from sync.engine.operations import record_story

    with engine_for(ctx) as engine:
        story = record_story(engine, record)
    if story is None:
        err.print(f"[red]No record {escape(record)} (a record id or a vendor id).[/]")
        raise typer.Exit(1)
    found = story.record
    out.print(
        f"[bold]{escape(str(found.fields.get('name')))}[/] ({found.id})"
        + (" [red]deleted[/]" if found.deleted_at else "")
    )
    for link in story.links:
        out.print(
            f"  {link.system}: {link.external_id}"
            + (" [red](deleted there)[/]" if link.deleted_at else "")
        )
    table = Table()
    for column in ("at", "system", "action", "field", "old", "new", "why"):
        table.add_column(column, overflow="fold")
    for entry in story.journal:
        table.add_row(
            f"{entry.at:%Y-%m-%d %H:%M:%S}",
            entry.system or "",
            entry.action,
            entry.field or "",
            short(entry.old, 24),
            short(entry.new, 24),
            entry.reason,
        )
    out.print(table)
