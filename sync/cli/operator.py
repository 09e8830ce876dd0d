"""Operator commands for a running installation (issue 17): ``deletes`` (what the mass-delete
guard held: list, confirm, discard) and ``rebind`` (a system's binding changed: same account
moved, or a new account). Exit codes: 0 done (or nothing held), 1 a bad request, 2 ``deletes``
listing held deletes.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sync.cli_engine import engine_for

out = Console()
err = Console(stderr=True)


def _known(system: str, known: list[str]) -> None:
    if system not in known:
        err.print(f"[red]unknown system {system!r}; configured: {', '.join(known)}[/]")
        raise typer.Exit(1)


def deletes_cmd(
    ctx: typer.Context,
    confirm: Annotated[
        str | None, typer.Option("--confirm", help="Apply SYSTEM's held deletes.")
    ] = None,
    discard: Annotated[
        str | None, typer.Option("--discard", help="Drop SYSTEM's held deletes, keep links.")
    ] = None,
) -> None:
    """Deletes the mass-delete guard held: list them, apply them (--confirm SYSTEM) or drop
    them (--discard SYSTEM). Either releases the system. Exit 2 when the listing is not empty."""
    from sync.engine import deletes, guard

    if confirm and discard:
        err.print("[red]--confirm and --discard exclude each other[/]")
        raise typer.Exit(1)
    with engine_for(ctx) as engine:
        chosen = confirm or discard
        if chosen is not None:
            _known(chosen, engine.systems)
            if confirm:
                counts = deletes.confirm_held(engine, confirm)
                out.print(f"{confirm}: {counts['deleted']} held deletes applied; released")
            elif discard:
                dropped = deletes.discard_held(engine, discard)
                out.print(f"{discard}: {dropped} held deletes discarded, links kept; released")
            return
        rows = guard.pending_deletes(engine)
        held = guard.holds(engine)
    if not rows:
        out.print("[green]No held deletes.[/]")
        return
    for system, state in held.items():
        if state.held == guard.HOLD_DELETES:
            out.print(f"[yellow]{system}: {escape(state.held_message or '')}[/]")
    table = Table(title=f"{len(rows)} held deletes")
    for column in ("system", "record", "vendor id", "how", "seen"):
        table.add_column(column)
    for row in rows[:200]:
        table.add_row(
            row.system, row.record_id, row.external_id, row.how, row.detected_at.isoformat()
        )
    out.print(table)
    raise typer.Exit(2)


def rebind_cmd(
    ctx: typer.Context,
    system: Annotated[str, typer.Argument(help="The system whose binding changed.")],
    new_account: Annotated[
        bool,
        typer.Option(
            "--new-account",
            help="It is another account: set the old links aside and start it afresh.",
        ),
    ] = False,
) -> None:
    """A system now points elsewhere (another URL or account): adopt the configured binding.
    Default: the same account moved, its links are kept. --new-account: the old account's
    links are set aside (restored if you bind back to it) and the system is read completely
    and filled like a newly added one."""
    from sync.engine import bindings

    with engine_for(ctx) as engine:
        _known(system, engine.systems)
        out.print(bindings.rebind(engine, system, new_account=new_account))


def register(app: typer.Typer) -> None:
    app.command("deletes")(deletes_cmd)
    app.command("rebind")(rebind_cmd)
