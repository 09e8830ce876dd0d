"""Runtime commands of the CLI: ``run``, ``scheduler``, ``worker``, ``admin``, ``resync``,
``status``. The lead's ``sync.cli`` calls :func:`register` to add them to the app.

``run`` is embedded mode (no services: the store on SQLite, the scheduler and the engine in
this process); ``scheduler`` + ``worker`` + ``admin`` are the distributed processes
(``CRMSYNC_BROKER_URL`` set), as in the Procfile.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from sync.config import CONFIG_ENV

if TYPE_CHECKING:
    from sync.config import Config
    from sync.engine.cycle import CycleReport, Owed
    from sync.engine.state import Engine

out = Console()
err = Console(stderr=True)
#: how long `run --once` waits in all for pushes to come due again (429s, outages)
ONCE_MAX_WAIT = 180.0


# --------------------------------------------------------------------------- helpers


def _cli() -> Any:
    import sync.cli as cli  # late: sync.cli imports this module to register the commands

    return cli


def _config(ctx: typer.Context) -> Config:
    cli = _cli()
    state = cli.state(ctx)
    # Child processes (celery pool, scheduler jobs) read the same file.
    os.environ[CONFIG_ENV] = str(state.config_path)
    config: Config = state.config()
    return config


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def _log(ctx: typer.Context) -> None:
    from sync.logging import configure_logging

    state = _cli().state(ctx)
    configure_logging(state.log_format, state.log_level)


def _engine(config: Config, *, distributed: bool, migrate: bool = False) -> Engine:
    from sqlalchemy.exc import SQLAlchemyError

    from sync.config import mask_url
    from sync.runtime.context import build_engine
    from sync.store.db import upgrade

    if migrate:
        try:
            upgrade(config.store.url)
        except SQLAlchemyError as exc:
            raise _fail(f"cannot migrate {mask_url(config.store.url)}: {exc}") from None
    return build_engine(config, distributed=distributed)


def _broker(config: Config, command: str) -> str:
    if not config.broker.url:
        raise _fail(
            f"`crmsync {command}` needs a broker: set CRMSYNC_BROKER_URL=redis://… "
            "(or use `crmsync run`, the embedded mode, which needs none)"
        )
    return config.broker.url


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


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
            _ago(row["lag_seconds"]),
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


# --------------------------------------------------------------------------- run (embedded)


def run(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run one full cycle and exit.")] = False,
    live: Annotated[
        bool | None,
        typer.Option("--live/--no-live", help="Live view (default: when on a terminal)."),
    ] = None,
    max_wait: Annotated[
        float,
        typer.Option(
            "--max-wait",
            min=0,
            help="With --once: how long in all to wait for pushes to come due again (a "
            "vendor's 429 or outage) before giving up and exiting 1.",
        ),
    ] = ONCE_MAX_WAIT,
) -> None:
    """Embedded mode: the scheduler and the engine in this process (Ctrl-C stops cleanly).

    ``--once`` runs one cycle and exits 0 only when every push it owes is done (or parked,
    waiting for a reference); pushes still owed, or any dead letter, exit 1 with a summary."""
    _log(ctx)
    config = _config(ctx)
    engine = _engine(config, distributed=False, migrate=True)
    try:
        _release_earlier_claims(engine)
        if once:
            _run_once(engine, max_wait)
        else:
            _run_forever(engine, config, live if live is not None else out.is_terminal)
    finally:
        engine.close()


def _release_earlier_claims(engine: Engine) -> None:
    """Embedded mode is one process: pushes an earlier, killed ``run`` of this host still had
    claimed are ours to redo now, not once their claims run out."""
    from sync.engine.claims import release_dead_holders

    released = release_dead_holders(engine)
    if released:
        err.print(f"[yellow]{released} push(es) claimed by an earlier run that died: redoing[/]")


def _run_once(engine: Engine, max_wait: float) -> None:
    from sync.engine.cycle import run_cycle

    report = run_cycle(engine, max_wait=max_wait)
    out.print(cycle_table(report))
    for line in owed_lines(report.left):
        err.print(line, soft_wrap=True)
    _first_run_notice(engine)
    if report.dead_letters:
        err.print(f"[red]{report.dead_letters} record(s) went to dead letters[/]")
        raise typer.Exit(1)
    if report.status != "done":
        raise typer.Exit(1)


def owed_lines(left: Owed) -> list[str]:
    """What a cycle left undone, in words: pushes owed per system, and when the next is due."""
    import datetime as dt

    from sync.timefmt import format_timestamp

    lines = []
    if left.total:
        per_system = "; ".join(
            f"{system}: " + ", ".join(f"{n} {_STATE_WORDS.get(s, s)}" for s, n in states.items())
            for system, states in sorted(left.states.items())
        )
        lines.append(f"[red]{left.total} push(es) still owed[/] — {escape(per_system)}")
        if left.next_due is not None:
            seconds = max(0.0, (left.next_due - dt.datetime.now(dt.UTC)).total_seconds())
            when = format_timestamp(left.next_due, precision="s")
            lines.append(
                f"next retry at {when} (in {_ago(seconds)}); run `crmsync run --once` again "
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


def _first_run_notice(engine: Engine) -> None:
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


def _run_forever(engine: Engine, config: Config, live: bool) -> None:
    from sync.engine import admin_ops
    from sync.scheduler import EmbeddedDispatcher, Runner

    dispatcher = EmbeddedDispatcher(engine)
    runner = Runner(config, dispatcher, config_path=os.environ.get(CONFIG_ENV))
    runner.install_signals()
    _maybe_serve_metrics(engine)
    runner.start()
    err.print("[green]crmsync running[/] (embedded). Ctrl-C finishes the job in flight and stops.")

    def view() -> Group:
        return Group(
            health_table(admin_ops.system_health(engine), "crmsync — embedded"),
            runs_table(admin_ops.last_runs(engine, 5)),
        )

    try:
        if live:
            with Live(view(), console=out, refresh_per_second=2, transient=False) as screen:
                while runner.tick(1.0):
                    screen.update(view())
        else:
            while runner.tick(1.0):
                pass
    except KeyboardInterrupt:  # a second Ctrl-C
        err.print("[yellow]stopping now[/]")
    finally:
        err.print("finishing the job in flight…")
        runner.shutdown()
        err.print("[green]stopped[/]")


def _maybe_serve_metrics(engine: Engine) -> None:
    port = os.environ.get("CRMSYNC_METRICS_PORT")
    if not port:
        return
    from sync import metrics
    from sync.engine import admin_ops

    metrics.watch_store(lambda: admin_ops.system_health(engine))
    metrics.serve(int(port))


# --------------------------------------------------------------------------- distributed


def scheduler(ctx: typer.Context) -> None:
    """Distributed scheduler: enqueue polls and reconciles (one scheduler leads)."""
    _log(ctx)
    config = _config(ctx)
    from sync.runtime.context import prefix, redis_client
    from sync.scheduler import EnqueueDispatcher, Runner

    client = redis_client(_broker(config, "scheduler"))
    dispatcher = EnqueueDispatcher(client, prefix=prefix())
    runner = Runner(config, dispatcher, config_path=os.environ.get(CONFIG_ENV))
    runner.install_signals()
    runner.run_forever()


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(help="Worker processes/threads.")] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated queues (default: all: crmsync.<system>, crmsync.admin)."
        ),
    ] = None,
    pool: Annotated[str | None, typer.Option(help="prefork (default), threads or solo.")] = None,
) -> None:
    """A Celery worker running the sync tasks (same as `celery -A sync.celery_app worker`)."""
    config = _config(ctx)
    _broker(config, "worker")
    from sync.cli import state

    # tasks build their engine from CRMSYNC_CONFIG: make it the file this command was given
    os.environ["CRMSYNC_CONFIG"] = str(state(ctx).config_path)
    from sync.celery_app import app as celery_app  # tasks are bound to this app

    level = state(ctx).log_level or os.environ.get("CRMSYNC_LOG_LEVEL") or "INFO"
    os.environ["CRMSYNC_LOG_LEVEL"] = level  # the pool's children configure logging from it
    argv = ["worker", "--loglevel", level.upper()]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if queues:
        argv += ["--queues", queues]
    if pool:
        argv += ["--pool", pool]
    celery_app.worker_main(argv=argv)


def admin(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
) -> None:
    """The admin HTTP API (bearer token from CRMSYNC_ADMIN_TOKEN)."""
    from sync.admin.app import TOKEN_ENV, create_app, serve
    from sync.admin.limits import token_problem

    token = os.environ.get(TOKEN_ENV, "")
    problem = token_problem(token, TOKEN_ENV)
    if problem:
        raise _fail(f"refusing to start the admin API: {problem}")
    _log(ctx)
    config = _config(ctx)
    engine = _engine(config, distributed=bool(config.broker.url))
    app = create_app(admin_backend(engine, config), token=token)
    serve(app, host, port)  # SIGHUP is logged and ignored there


def admin_backend(engine: Engine, config: Config) -> Any:
    """How the admin API starts work: Celery tasks when distributed, a thread when embedded."""
    from sync.admin.app import AdminBackend
    from sync.runtime.resync import perform_resync, queue_run

    if config.broker.url:
        from sync.celery_app import make_app
        from sync.runtime.context import redis_client

        # the app for *this* config's broker (not the import-time default of the process)
        celery_app = make_app(config.broker.url, list(config.systems))

        client = redis_client(config.broker.url)

        def enqueue_resync(system: str | None, full: bool) -> str:
            run_id = queue_run(engine, system)
            celery_app.send_task("crmsync.resync", args=[system, full, run_id])
            return run_id

        def enqueue_reread(system: str) -> None:
            celery_app.send_task("crmsync.resync", args=[system, True, None])

        def enqueue_reconcile(system: str | None) -> str:
            run_id = queue_run(engine, system, kind="reconcile")
            celery_app.send_task("crmsync.reconcile", args=[system, run_id])
            return run_id

        return AdminBackend(
            engine,
            enqueue_resync,
            enqueue_reread,
            checks={"broker": lambda: client.ping()},
            reconcile=enqueue_reconcile,
        )

    one_at_a_time = threading.Lock()

    def resync_here(system: str | None, full: bool) -> str:
        run_id = queue_run(engine, system)

        def work() -> None:
            with one_at_a_time:
                perform_resync(engine, system, full, run_id)

        threading.Thread(target=work, name=f"resync:{run_id}", daemon=True).start()
        return run_id

    def reread_here(system: str) -> None:
        resync_here(system, True)

    def reconcile_here(system: str | None) -> str:
        from sync.engine.reconcile import reconcile as reconcile_systems

        run_id = queue_run(engine, system, kind="reconcile")

        def work() -> None:
            with one_at_a_time:
                reconcile_systems(engine, [system] if system else None, run_id=run_id)

        threading.Thread(target=work, name=f"reconcile:{run_id}", daemon=True).start()
        return run_id

    return AdminBackend(engine, resync_here, reread_here, reconcile=reconcile_here)


def reread_system(engine: Engine, config: Config, system: str) -> None:
    """A full re-read of ``system`` — what the admin API's backend does for a replayed inbound
    dead letter (:func:`admin_backend`): enqueued when distributed; run here, in the
    foreground, when embedded (a CLI command must not exit with the work on a thread)."""
    from sync.runtime.resync import perform_resync, queue_run

    if config.broker.url:
        admin_backend(engine, config).reread(system)
        out.print(f"re-read of {system} enqueued")
        return
    run_id = queue_run(engine, system)
    with err.status(f"re-reading {system} ({run_id})…"):
        _, run_status, counts = perform_resync(engine, system, True, run_id)
    out.print(f"re-read of {system} {run_id}: {run_status} ({_counts_text(counts.values)})")
    if run_status != "done":
        raise typer.Exit(1)


# --------------------------------------------------------------------------- admin commands


def _admin_engine(ctx: typer.Context, system: str | None) -> tuple[Config, Engine, bool]:
    """Config, engine and whether work is enqueued (distributed) for resync / reconcile."""
    config = _config(ctx)
    if system is not None and system not in config.systems:
        raise _fail(f"unknown system {system!r}; configured: {', '.join(config.systems)}")
    distributed = bool(config.broker.url)
    return config, _engine(config, distributed=distributed, migrate=not distributed), distributed


def _send(config: Config, task: str, args: list[Any]) -> None:
    from sync.celery_app import make_app

    make_app(config.broker.url, list(config.systems)).send_task(task, args=args)


def resync(
    ctx: typer.Context,
    system: Annotated[str | None, typer.Option(help="Only this system (default: all).")] = None,
    full: Annotated[
        bool, typer.Option("--full", help="A complete re-read (finds deletes).")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait, with a progress bar.")] = False,
) -> None:
    """Re-read one system or all and push the differences (enqueued when distributed)."""
    from sync.runtime.resync import perform_resync, queue_run

    config, engine, distributed = _admin_engine(ctx, system)
    try:
        run_id = queue_run(engine, system)
        if not distributed:
            _log(ctx)
            with err.status(f"resync {run_id}…"):
                _, status, counts = perform_resync(engine, system, full, run_id)
            out.print(f"resync {run_id}: {status} ({_counts_text(counts.values)})")
            raise typer.Exit(0 if status == "done" else 1)
        _send(config, "crmsync.resync", [system, full, run_id])
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
    from sync.runtime.resync import queue_run

    config, engine, distributed = _admin_engine(ctx, system)
    try:
        run_id = queue_run(engine, system, kind="reconcile")
        if not distributed:
            _log(ctx)
            from sync.engine.reconcile import reconcile as reconcile_systems

            with err.status(f"reconcile {run_id}…"):
                report = reconcile_systems(engine, [system] if system else None, run_id=run_id)
            out.print(reconcile_table(report))
            if report.healed:
                out.print(
                    f"[yellow]healed {report.healed} difference(s) the incremental path "
                    f"missed; `crmsync history RECORD` shows each (action 'healed' or "
                    f"'field_changed')[/]"
                )
            raise typer.Exit(0 if report.status == "done" else 1)
        _send(config, "crmsync.reconcile", [system, run_id])
        out.print(f"reconcile {run_id} enqueued")
        if wait:
            _follow(engine, run_id, "reconcile")
    finally:
        engine.close()


def reconcile_table(report: Any) -> Table:
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


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "nothing to do"


def _follow(engine: Engine, run_id: str, kind: str = "resync", poll_every: float = 0.5) -> None:
    from sync.engine import admin_ops

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task(f"{kind} {run_id}", total=None)
        while True:
            run = admin_ops.get_run(engine, run_id) or {"status": "queued", "counts": {}}
            counts = run["counts"]
            progress.update(
                task,
                total=counts.get("systems_total"),
                completed=counts.get("systems_done", 0),
                description=f"{kind} {run_id}: {run['status']}",
            )
            if run["status"] not in ("queued", "running"):
                break
            time.sleep(poll_every)
    out.print(f"{kind} {run_id}: {run['status']} ({_counts_text(run['counts'])})")
    if run["status"] != "done":
        raise typer.Exit(1)


def status(
    ctx: typer.Context,
    runs: Annotated[int, typer.Option(help="How many recent runs to show.")] = 10,
) -> None:
    """Per-system health, cursor, lag, pending pushes, conflicts, dead letters; last runs."""
    config = _config(ctx)
    from sqlalchemy.exc import SQLAlchemyError

    from sync.cli_store import StoreUnusable, describe_store_error, open_store_engine
    from sync.engine import admin_ops

    try:  # read-only: a sync writing the store at this moment never blocks it
        engine = open_store_engine(config, read_only=True)
    except StoreUnusable as exc:
        raise _fail(str(exc)) from None
    try:
        rows = admin_ops.system_health(engine)
        recent = admin_ops.last_runs(engine, runs)
        _first_run_notice(engine)
    except SQLAlchemyError as exc:
        raise _fail(describe_store_error(config.store.url, exc)) from None
    finally:
        engine.close()
    out.print(health_table(rows))
    for row in rows:  # a held system waits for an operator: say why and what to do
        if row.get("held"):
            out.print(f"[bold red]HELD {row['system']}[/] ({row['held']}): {row['held_message']}")
    out.print(runs_table(recent))


# --------------------------------------------------------------------------- registration


def register(app: typer.Typer) -> None:
    """Add the runtime commands to the ``crmsync`` app."""
    app.command("run")(run)
    app.command("scheduler")(scheduler)
    app.command("worker")(worker)
    app.command("admin")(admin)
    app.command("resync")(resync)
    app.command("reconcile")(reconcile)
    app.command("status")(status)


__all__ = ["register"]
