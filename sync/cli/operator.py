"""Commands an operator runs to act on a running installation: ``conflicts`` (list, resolve),
``deadletters`` (list, replay), ``resync``, ``reconcile``, ``deletes`` (what the mass-delete
guard held: list, confirm, discard) and ``rebind`` (a system's binding changed: same account
moved, or a new account).

Listings, resolutions and replays go through :mod:`sync.engine.operations`, the code the admin
API runs, so the two cannot differ. Resyncs, reconciles and the re-read of a replayed inbound
dead letter are the jobs of :mod:`sync.runtime.jobs`, as the admin API's and the workers' are:
enqueued when distributed, run in the foreground when embedded (a CLI command must not exit
with the work on a thread).
Exit codes: 0 done (or nothing held), 1 a bad request, 2 ``deletes`` listing held deletes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from sync.cli.base import (
    build_engine,
    check_id,
    check_systems,
    configure_logging_again,
    context,
    engine_for,
    exported_config,
    fail,
    out,
    print_json,
)
from sync.cli.progress import Progress
from sync.cli.tables import counts_text, line, listing, one_line, reconcile_table, short

if TYPE_CHECKING:
    from sync.config import Config
    from sync.engine.context import Engine


JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (keys: README, --json).")
]


# --------------------------------------------------------------------------- conflicts


def conflicts_cmd(
    ctx: typer.Context,
    resolve: Annotated[int | None, typer.Option("--resolve", help="Conflict id.")] = None,
    take: Annotated[
        str | None, typer.Option("--take", help="System whose value wins, or 'ours'.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List conflicts, or resolve one manual conflict (``--resolve ID --take SYSTEM``)."""
    from sync.engine import operations

    if resolve is not None:
        check_id("conflict", resolve)
        if not take:
            fail("--take SYSTEM (or 'ours') is required with --resolve", 2)
    with engine_for(ctx, read_only=resolve is None) as engine:
        if resolve is not None and take:
            _resolve(engine, resolve, take)
            return
        rows = operations.list_conflicts(
            engine, None if all_ else "open", limit=200, newest_first=True
        )
    if as_json:
        print_json({"conflicts": rows})
        return
    cells = [
        [
            str(row["id"]),
            row["record_id"],
            row["field"],
            row["policy"],
            f"{short(row['ours'], 24)} ({row['ours_system']})",
            f"{short(row['theirs'], 24)} ({row['theirs_system']})",
            row["winner"] or "",
            row["status"],
        ]
        for row in rows
    ]
    columns = ("id", "record", "field", "policy", "ours", "theirs", "winner", "status")
    listing("conflicts" if all_ else "open conflicts", columns, cells)


def _resolve(engine: Engine, conflict_id: int, take: str) -> None:
    from sync.engine.operations import AdminError, resolve_conflict

    try:
        resolve_conflict(engine, conflict_id, take)
    except (AdminError, KeyError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    out.print(f"[green]Conflict {conflict_id} resolved: {take} wins.[/]")


# --------------------------------------------------------------------------- dead letters


def deadletters_cmd(
    ctx: typer.Context,
    replay: Annotated[int | None, typer.Option("--replay", help="Dead letter id.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every open one.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List dead letters (with the vendor's message), or replay them."""
    from sync.engine import operations

    if replay is not None:
        check_id("dead letter", replay)
    replaying = replay is not None or replay_all
    with engine_for(ctx, read_only=not replaying) as engine:
        if replaying:
            _replay(ctx, engine, replay)
            return
        rows = operations.list_dead_letters(engine, "open", limit=None)
    if as_json:
        print_json({"dead_letters": rows})
        return
    cells = [
        [
            str(row["id"]),
            row["system"],
            row["direction"],
            row["op"],
            row["record_id"] or "",
            row["external_id"] or "",
            one_line(row["error"]),
        ]
        for row in rows
    ]
    columns = ("id", "system", "dir", "op", "record", "external id", "error")
    listing(f"{len(rows)} open dead letters", columns, cells)


def _replay(ctx: typer.Context, engine: Engine, letter_id: int | None) -> None:
    """Replay one dead letter (or every open one) the way the admin API does: an outbound
    letter re-enqueues its push, an inbound one re-reads its system — once per system."""
    from sync.engine.operations import AdminError, replay_dead_letters

    try:
        replayed = replay_dead_letters(engine, None if letter_id is None else [letter_id])
    except AdminError as exc:
        fail(str(exc))
    out.print(f"[green]{len(replayed.results)} dead letter(s) replayed.[/]")
    for system in replayed.rereads:
        reread_system(engine, context(ctx).config(), system)


def reread_system(engine: Engine, config: Config, system: str) -> None:
    """A full re-read of ``system`` — what the admin API's backend does for a replayed inbound
    dead letter (:func:`~sync.runtime.backend.admin_backend`): enqueued when distributed; run
    here, in the foreground, when embedded (a CLI command must not exit with the work on a
    thread)."""
    from sync.runtime.jobs import queue_run, resync_job
    from sync.runtime.starters import EnqueuedJobs

    if config.broker.url:
        EnqueuedJobs(engine, config).reread(system)
        out.print(f"re-read of {system} enqueued")
        return
    run_id = queue_run(engine, system)
    with Progress(engine, f"re-read {run_id}"):
        _, run_status, counts = resync_job(engine, system, True, run_id)
    out.print(f"re-read of {system} {run_id}: {run_status} ({counts_text(counts.values)})")
    if run_status != "done":
        raise typer.Exit(1)


# --------------------------------------------------------------------------- resync, reconcile


def _admin_engine(ctx: typer.Context, system: str | None) -> tuple[Config, Engine, bool]:
    """Config, engine and whether work is enqueued (distributed) for resync / reconcile."""
    config = exported_config(ctx)
    check_systems(config, [system] if system else None)
    distributed = bool(config.broker.url)
    engine = build_engine(config, distributed=distributed, migrate=not distributed)
    return config, engine, distributed


def resync(
    ctx: typer.Context,
    system: Annotated[str | None, typer.Option(help="Only this system (default: all).")] = None,
    full: Annotated[
        bool, typer.Option("--full", help="A complete re-read (finds deletes).")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait, with a progress bar.")] = False,
) -> None:
    """Re-read one system or all and push the differences (enqueued when distributed)."""
    from sync.runtime.jobs import queue_run, resync_job
    from sync.runtime.starters import EnqueuedJobs

    config, engine, distributed = _admin_engine(ctx, system)
    try:
        if not distributed:
            run_id = queue_run(engine, system)
            configure_logging_again(ctx)
            with Progress(engine, f"resync {run_id}"):
                _, status, counts = resync_job(engine, system, full, run_id)
            out.print(f"resync {run_id}: {status} ({counts_text(counts.values)})")
            raise typer.Exit(0 if status == "done" else 1)
        run_id = EnqueuedJobs(engine, config).resync(system, full)  # as the admin API does
        out.print(f"resync {run_id} enqueued")
        if wait:
            _follow(engine, run_id)
    finally:
        engine.close()


def reconcile(
    ctx: typer.Context,
    system: Annotated[str | None, typer.Option(help="Only this system (default: all).")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the enqueued reconcile (distributed).")
    ] = False,
) -> None:
    """Anti-entropy: read every deal, heal what the incremental path missed, count it.

    Heals are also scheduled (``sync.reconcile_every``, daily by default); a healthy
    installation heals nothing. Exit 1 when a system could not be read."""
    from sync.runtime.jobs import queue_run, reconcile_job
    from sync.runtime.starters import EnqueuedJobs

    config, engine, distributed = _admin_engine(ctx, system)
    try:
        if not distributed:
            run_id = queue_run(engine, system, kind="reconcile")
            configure_logging_again(ctx)
            with Progress(engine, f"reconcile {run_id}"):
                report = reconcile_job(engine, system, run_id)
            out.print(reconcile_table(report))
            if report.healed:
                out.print(
                    f"[yellow]healed {report.healed} difference(s) the incremental path "
                    f"missed; `crmsync history RECORD` shows each (action 'healed' or "
                    f"'field_changed')[/]"
                )
            raise typer.Exit(0 if report.status == "done" else 1)
        run_id = EnqueuedJobs(engine, config).reconcile(system)  # as the admin API does
        out.print(f"reconcile {run_id} enqueued")
        if wait:
            _follow(engine, run_id, "reconcile")
    finally:
        engine.close()


def _follow(engine: Engine, run_id: str, kind: str = "resync", poll_every: float = 0.5) -> None:
    """Wait for an enqueued run, saying its state, the systems done of all once the worker
    knows them, and the counts so far; the pushes it owes per system as ``run --once`` does."""
    from sync.engine import operations

    with Progress(engine, kind) as progress:
        while True:
            run = operations.get_run(engine, run_id) or {"status": "queued", "counts": {}}
            progress.headline = _follow_line(kind, run_id, run)
            if run["status"] not in ("queued", "running"):
                break
            time.sleep(poll_every)
    out.print(f"{kind} {run_id}: {run['status']} ({counts_text(run['counts'])})")
    if run["status"] != "done":
        raise typer.Exit(1)


def _follow_line(kind: str, run_id: str, run: dict[str, Any]) -> str:
    counts = run["counts"]
    total, done = counts.get("systems_total"), counts.get("systems_done", 0)
    systems = f"; systems {done}/{total} done" if total else ""
    return f"{kind} {run_id}: {run['status']}{systems}"


# --------------------------------------------------------------------------- deletes, rebind


def deletes_cmd(
    ctx: typer.Context,
    confirm: Annotated[
        str | None, typer.Option("--confirm", help="Apply SYSTEM's held deletes.")
    ] = None,
    discard: Annotated[
        str | None, typer.Option("--discard", help="Drop SYSTEM's held deletes, keep links.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Deletes the mass-delete guard held: list them (each deal by name, company and amount),
    apply them (--confirm SYSTEM) or drop them (--discard SYSTEM). Either releases the system.
    Exit 2 when the listing is not empty."""
    from sync.engine import deletes, guard, reports

    if confirm and discard:
        fail("--confirm and --discard exclude each other")
    chosen = confirm or discard
    if chosen is not None:
        check_systems(context(ctx).config(), [chosen])
    with engine_for(ctx, read_only=chosen is None) as engine:
        if confirm:
            counts = deletes.confirm_held(engine, confirm)
            out.print(f"{confirm}: {counts['deleted']} held deletes applied; released")
            return
        if discard:
            dropped = deletes.discard_held(engine, discard)
            out.print(f"{discard}: {dropped} held deletes discarded, links kept; released")
            return
        rows = reports.held_deletes(engine)
        held = guard.holds(engine)
    if as_json:
        print_json(reports.deletes(rows, held))
        raise typer.Exit(2 if rows else 0)
    if not rows:
        out.print("[green]No held deletes.[/]")
        return
    for system, hold in held.items():
        if hold.held == guard.HOLD_DELETES:
            line(f"[yellow]{system}: {escape(hold.held_message or '')}[/]")
    cells = [
        [
            row.system,
            short(row.name or "", 40),
            short(row.company or "", 30),
            "" if row.amount is None else f"{row.amount} {row.currency or ''}".strip(),
            row.external_id,
            row.record_id,
            row.how,
            row.detected_at,
        ]
        for row in rows
    ]
    columns = ("system", "deal", "company", "amount", "vendor id", "record", "how", "seen (UTC)")
    listing(f"{len(rows)} held deletes", columns, cells)
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

    check_systems(context(ctx).config(), [system])
    with engine_for(ctx) as engine:
        out.print(bindings.rebind(engine, system, new_account=new_account))
