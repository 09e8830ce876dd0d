"""Commands that look and change nothing: ``config check``, ``status``, ``plan``, ``verify``,
``history``.

They open the store read-only (a running sync never blocks them) and read it through
:mod:`sync.engine.operations` — the functions the admin API serves — or an engine report
(plan, verify); exit codes are documented per command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.syntax import Syntax

from sync.cli.base import (
    check_systems,
    context,
    engine_for,
    err,
    exported_config,
    fail,
    out,
    piped,
    print_config_error,
    print_json,
)
from sync.cli.tables import (
    first_run_notice,
    health_table,
    line,
    listing,
    one_line,
    runs_table,
    short,
)
from sync.cli.verify_view import show_verify
from sync.config import Config, ConfigError, load_config
from sync.money_config import resolve

if TYPE_CHECKING:
    from sync.engine.plan import NotPlanned

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
    _print_loopback(config)


def _print_loopback(config: Config) -> None:
    """Name the systems that point at this machine: right for the emulators, a mistake in
    production (a forgotten *_BASE_URL falls back to the emulators' 127.0.0.1 default)."""
    from sync.config.loopback import REMOTE_ONLY_ENV, loopback_systems, system_resolver

    local = loopback_systems(config, system_resolver)
    if local:
        where = ", ".join(f"{name} → {host}" for name, host in local.items())
        err.print(
            f"[yellow]![/] {len(local)} of {len(config.systems)} systems resolve to this machine "
            f"(loopback): {escape(where)}. Right for the emulators; in production set their "
            f"*_BASE_URL ({REMOTE_ONLY_ENV}=1 refuses loopback).",
            soft_wrap=True,
        )


# --------------------------------------------------------------------------- status

#: ``--json``: print the report as one JSON document (keys in the README), nothing else
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (keys: README, --json).")
]
Systems = Annotated[list[str] | None, typer.Option("--system", "-s", help="Only these.")]


def status(
    ctx: typer.Context,
    runs: Annotated[
        int, typer.Option(help="How many recent runs to show (1-1000).", min=1, max=1000)
    ] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Per-system health, cursor, lag, pending pushes, conflicts, dead letters; last runs."""
    config = exported_config(ctx)
    from sqlalchemy.exc import SQLAlchemyError

    from sync.cli.store_access import StoreUnusable, describe_store_error, open_store_engine
    from sync.engine import budget, operations, pace, reports, unresolved

    try:  # read-only: a sync writing the store at this moment never blocks it
        engine = open_store_engine(config, read_only=True)
    except StoreUnusable as exc:
        fail(str(exc))
    try:
        rows = operations.system_health(engine)
        recent = operations.last_runs(engine, runs)
        waiting = unresolved.named(engine)
        if not as_json:
            first_run_notice(engine)
    except SQLAlchemyError as exc:
        fail(describe_store_error(config.store.url, exc))
    finally:
        engine.close()
    if as_json:
        print_json({**reports.status(rows, recent), "waiting": [w.as_json() for w in waiting]})
        return
    out.print(health_table(rows, whole=piped()))  # a pipe gets every stamp whole
    for row in rows:  # a held system waits for an operator: say why and what to do
        if row.get("held"):
            why = escape(row["held_message"] or "")
            line(f"[bold red]HELD {row['system']}[/] ({row['held']}): {why}")
        elif row.get("last_error"):
            line(f"[red]{row['system']} last error:[/] {escape(one_line(row['last_error']))}")
    for row in rows:  # what each vendor's rate-limit headers last said is left
        if left := budget.describe(row.get("budget")):
            line(f"[dim]{row['system']} API budget:[/] {escape(left)}")
    for row in rows:  # a scan system whose listings outgrew its interval: how late it reads
        if stretched := pace.describe(row["system"], row.get("pace")):
            line(f"[yellow]STRETCHED[/] {escape(stretched)}")
    for reference in waiting:  # deals written but for a reference that system lacks
        line(f"[yellow]WAITING[/] {escape(reference.describe())}")
    out.print(runs_table(recent, whole=piped()))


# --------------------------------------------------------------------------- plan, verify


def plan_cmd(ctx: typer.Context, system: Systems = None, as_json: JsonFlag = False) -> None:
    """Show the writes the next cycle would make, and why — writing nothing anywhere — and
    every deal it cannot plan (parked, refused, in a stage the mapping lacks), with why.

    Exit 0 when nothing is pending, 2 when writes are pending."""
    from sync.engine import reports
    from sync.engine.plan import plan

    chosen = check_systems(context(ctx).config(), system)
    with engine_for(ctx) as engine:
        report = plan(engine, chosen)
    if as_json:
        print_json(reports.plan(report))
        raise typer.Exit(2 if report.writes else 0)
    for name, error in report.errors.items():
        line(f"[red]{name}: could not read: {escape(error)}[/]")
    _not_planned(report.not_planned)
    if not report.writes:
        if report.not_planned:
            out.print("[yellow]Nothing to write but the deals above, which cannot be planned.[/]")
        else:
            out.print("[green]Nothing to write: every system is in sync.[/]")
        raise typer.Exit(0)
    rows = []
    for write in report.writes:
        deal = write.name or write.record_id
        for field, (old, new) in (write.changes or {"—": (None, None)}).items():
            rows.append([write.system, write.op, deal, field, short(old), short(new), write.reason])
    listing(f"{len(report.writes)} planned writes", PLAN_COLUMNS, rows)
    raise typer.Exit(2)


PLAN_COLUMNS = ("system", "op", "deal", "field", "now", "would be", "why")


def _not_planned(items: list[NotPlanned]) -> None:
    if items:
        out.print(f"[bold yellow]{len(items)} cannot be planned:[/]")
    for item in items:
        deal = f"{item.external_id or item.record_id}" + (f" ({item.name!r})" if item.name else "")
        line(f"  [yellow]{item.system} {item.what}:[/] {escape(deal)}: {escape(item.why)}")


def verify_cmd(
    ctx: typer.Context,
    system: Systems = None,
    accept_known: Annotated[
        bool,
        typer.Option(
            "--accept-known",
            help="Exit 0 despite differences with a known reason (open conflicts, filters, "
            "held systems); they are still listed.",
        ),
    ] = False,
    as_json: JsonFlag = False,
    summaries: Annotated[
        str,
        typer.Option(
            "--summaries",
            help="A summary listing (ParsaLink: a GET per deal to read in full): 'full' reads "
            "every deal, 'trust' compares deals whose stamp a full read confirmed, or our own "
            "write's answer carried, from what that read or answer held (a person's edit in the "
            "second of our write, of a field the summary lacks, is then missed until capture's "
            "recheck takes it), a number N trusts them but reads a random sample of about N "
            "in full.",
        ),
    ] = "full",
) -> None:
    """Read every system and compare every linked deal field by field. Exit 0 only when every
    system agrees; 1 on drift, or on a known difference (an open manual conflict, a deal left
    out by a filter, a held system) unless --accept-known."""
    from sync.engine import reports
    from sync.engine.summaries import Summaries
    from sync.engine.verify import verify

    how: Summaries
    if summaries in ("full", "trust"):
        how = "full" if summaries == "full" else "trust"
    elif summaries.isdigit():
        how = int(summaries)
    else:
        raise typer.BadParameter(
            f"expected full, trust or a number, got {summaries!r}", param_hint="--summaries"
        )
    chosen = check_systems(context(ctx).config(), system)
    with engine_for(ctx) as engine:
        report = verify(engine, chosen, how)
    if as_json:
        print_json(reports.verify(report))
        raise typer.Exit(0 if report.agrees(accept_known=accept_known) else 1)
    show_verify(report, accept_known=accept_known)


# --------------------------------------------------------------------------- history


def history_cmd(
    ctx: typer.Context,
    record: Annotated[str, typer.Argument(help="Record id.")],
    as_json: JsonFlag = False,
) -> None:
    """The journal of one deal: every change, from where, and why."""
    from sync.engine import reports
    from sync.engine.operations import record_story

    with engine_for(ctx) as engine:
        story = record_story(engine, record)
    if story is None:
        fail(f"no record {record} (a record id or a vendor id)")
    if as_json:
        print_json(reports.story(story))
        return
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
    rows = [
        [
            f"{entry.at:%Y-%m-%d %H:%M:%S}",
            entry.system or "",
            entry.action,
            entry.field or "",
            short(entry.old, 24),
            short(entry.new, 24),
            entry.reason,
        ]
        for entry in story.journal
    ]
    listing("journal (times UTC)", ("at", "system", "action", "field", "old", "new", "why"), rows)
