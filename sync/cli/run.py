"""Commands that run crmsync in one process: ``run`` (embedded mode), ``demo`` and
``emulate``.

``run`` is embedded mode (no services: the store on SQLite, the scheduler and the engine in
this process); ``emulate`` and ``demo`` serve local emulators of the vendor APIs. The
distributed processes are :mod:`sync.cli.distributed`'s.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live

from sync.cli.base import (
    build_engine,
    configure_logging_again,
    context,
    engine_for,
    err,
    exported_config,
    fail,
    out,
    refuse_shared_orgs,
)
from sync.cli.progress import Progress
from sync.cli.tables import (
    cycle_table,
    first_run_notice,
    health_table,
    line,
    owed_lines,
    runs_table,
)
from sync.cli.verify_view import show_verify
from sync.config import CONFIG_ENV, DATABASE_URL_ENV, mask_url
from sync.runtime import collector

if TYPE_CHECKING:
    from sync.config import Config
    from sync.engine.context import Engine

EMULATED_SYSTEMS = ("ruddr", "close", "parsalink", "truto", "salesforce", "hubspot")
#: deals each emulator holds at start, unless --seed-opportunities says otherwise
SEEDED = 10
PortBase = Annotated[
    int,
    typer.Option(
        help="Ruddr listens on port-base+1, Close +2, ParsaLink +3, Truto +4, Salesforce +5, "
        "HubSpot +6.",
        min=1,
        max=65531,
    ),
]
#: how long `run --once` waits in all for pushes to come due again (429s, outages)
ONCE_MAX_WAIT = 180.0


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
    configure_logging_again(ctx)
    config = exported_config(ctx)
    engine = build_engine(config, distributed=False, migrate=True)
    collector.tune()  # a long-lived process (see sync.runtime.collector)
    try:
        refuse_shared_orgs(engine)
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

    with Progress(engine, "run"):
        report = run_cycle(engine, max_wait=max_wait)
    out.print(cycle_table(report))
    for text in owed_lines(report.left):
        line(text, console=err)
    first_run_notice(engine)
    if report.dead_letters:
        err.print(f"[red]{report.dead_letters} record(s) went to dead letters[/]")
        raise typer.Exit(1)
    if report.status != "done":
        raise typer.Exit(1)


def _run_forever(engine: Engine, config: Config, live: bool) -> None:
    from sync.engine import operations
    from sync.scheduler import EmbeddedDispatcher, Runner

    dispatcher = EmbeddedDispatcher(engine)
    runner = Runner(config, dispatcher, config_path=os.environ.get(CONFIG_ENV))
    runner.install_signals()
    _maybe_serve_metrics(engine)
    runner.start()
    err.print("[green]crmsync running[/] (embedded). Ctrl-C finishes the job in flight and stops.")

    def view() -> Group:
        return Group(  # whole stamps: the live view is where a person watches the seconds
            health_table(operations.system_health(engine), "crmsync — embedded", whole=True),
            runs_table(operations.last_runs(engine, 5), whole=True),
        )

    if live:  # its INFO lines ("Running job …") would scroll above the live view
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
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
    from sync.engine import operations

    metrics.watch_store(lambda: operations.system_health(engine))
    metrics.serve(int(port))


# --------------------------------------------------------------------------- emulate


def _parse_only(value: str | None) -> list[str] | None:
    if not value:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in EMULATED_SYSTEMS]
    if unknown:
        raise typer.BadParameter(
            f"unknown system {', '.join(unknown)}; choose from {', '.join(EMULATED_SYSTEMS)}"
        )
    return names


def _emulator_server() -> Callable[..., Any]:
    # Imported on use: product code never imports the emulators; only this command does.
    try:
        module = importlib.import_module("sync.emulators.server")
    except ModuleNotFoundError as exc:
        fail(f"the emulators are not available in this installation ({exc.name})")
    serve: Callable[..., Any] = module.serve
    return serve


def emulate(
    only: Annotated[
        str | None,
        typer.Option(
            help="Systems to serve, comma-separated: ruddr, close, parsalink, truto (all).",
            metavar="LIST",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port_base: PortBase = 8710,
    seed: Annotated[int, typer.Option(help="Seed of the reference and random data.")] = 0,
    seed_opportunities: Annotated[
        int,
        typer.Option(
            help="Random deals each system holds at start.", min=0, max=100_000, metavar="N"
        ),
    ] = SEEDED,
    no_rate_limits: Annotated[
        bool, typer.Option("--no-rate-limits", help="Do not enforce the vendors' rate limits.")
    ] = False,
) -> None:
    """Serve local emulators of the vendor APIs (until interrupted). Point crmsync at them
    with RUDDR_BASE_URL, CLOSE_BASE_URL, PARSALINK_BASE_URL, TRUTO_BASE_URL,
    SALESFORCE_BASE_URL and HUBSPOT_BASE_URL (the shipped config.yaml defaults to port base
    8710: another --port-base needs all six set to the URLs it prints)."""
    systems = _parse_only(only)
    serve = _emulator_server()
    try:
        serve(
            only=systems,
            host=host,
            port_base=port_base,
            seed=seed,
            seed_opportunities=seed_opportunities,
            rate_limited=not no_rate_limits,
        )
    except KeyboardInterrupt:
        err.print("stopped")
    except OSError as exc:  # e.g. the port is taken
        fail(port_problem(host, port_base, exc))


def port_problem(host: str, port_base: int, exc: OSError) -> str:
    """One line for emulators that cannot listen: which ports, why, what to do."""
    why = exc.strerror or str(exc)
    return (
        f"cannot serve the emulators on {host}:{port_base + 1}-{port_base + 4}: {why} "
        "(another crmsync emulate or demo?); choose another --port-base"
    )


# --------------------------------------------------------------------------- demo

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


def demo_cmd(
    ctx: typer.Context,
    seed_opportunities: Annotated[
        int,
        typer.Option(
            "--seed-opportunities", help="Random deals per emulated vendor.", min=0, max=100_000
        ),
    ] = SEEDED,
    port_base: PortBase = 8710,
    cycles: Annotated[
        int,
        typer.Option(
            help="Run this many cycles, verify and exit (0: run until Ctrl-C).", min=0, max=10_000
        ),
    ] = 0,
) -> None:
    """The demo: the emulators with seeded deals over HTTP, and crmsync syncing them.

    Uses the shipped config.yaml, pointed at the emulators' ports, and a fresh store. Watch
    deals converge across Ruddr, Close, ParsaLink, Salesforce through Truto, a second
    Salesforce org connected directly, and HubSpot; Ctrl-C stops."""
    from sync.emulators.server import running
    from sync.engine.verify import verify

    # The demo's emulators hold deals in every system: it applies the first-run match itself
    # (sync.first_run: automatic) so it stays one command; real systems use the guided run.
    os.environ.setdefault("CRMSYNC_FIRST_RUN", "automatic")
    with contextlib.ExitStack() as stack:
        try:
            served = stack.enter_context(
                running(port_base=port_base, seed=1, seed_opportunities=seed_opportunities)
            )
        except OSError as exc:  # a port is taken: one line, no traceback
            fail(port_problem("127.0.0.1", port_base, exc))
        for name, emulator in served.items():
            os.environ[f"{name.upper()}_BASE_URL"] = emulator.base_url  # whatever the port base
            out.print(f"[cyan]{name}[/] emulator at {emulator.base_url}")
        out.print(f"store: {_fresh_demo_store()}")
        context(ctx).forget_config()  # read again, with the URLs above
        if cycles <= 0:
            run(ctx, once=False, live=None)
            return
        for _ in range(cycles):
            try:
                run(ctx, once=True, live=False)
            except typer.Exit as done:
                if done.exit_code not in (0, None):
                    raise
        with engine_for(ctx) as engine:
            report = verify(engine, None)
        show_verify(report, accept_known=False)
