"""The ``crmsync`` app: the global options, and every command in the order ``--help`` lists
them. The one module that imports the command modules — nothing imports it but the entry
points (``crmsync``, ``python -m sync``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sync import __version__
from sync.cli import distributed, firstrun, inspect, operator, run, store
from sync.cli.base import CliContext, fail, fit_to_pipes, out
from sync.config import CONFIG_ENV, DEFAULT_PATH

app = typer.Typer(
    name="crmsync",
    help="Keep sales opportunities identical, in both directions, across CRMs.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the store database.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")


# --------------------------------------------------------------------------- global options


def _version(value: bool) -> None:
    if value:
        out.print(f"crmsync {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            envvar=CONFIG_ENV,
            help="Configuration file.",
            show_default=True,
            dir_okay=False,
        ),
    ] = Path(DEFAULT_PATH),
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="console or json (default: $CRMSYNC_LOG_FORMAT, else console on a terminal).",
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="DEBUG, INFO, WARNING… (default: $CRMSYNC_LOG_LEVEL)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """crmsync keeps sales opportunities identical across Ruddr, Close, ParsaLink and Truto."""
    from sync.logging import configure_logging

    fit_to_pipes()
    try:
        configure_logging(log_format, log_level)
    except ValueError as exc:
        fail(str(exc), 2)
    ctx.obj = CliContext(config_path=config, log_format=log_format, log_level=log_level)


# --------------------------------------------------------------------------- commands

config_app.command("check")(inspect.config_check)
db_app.command("upgrade")(store.db_upgrade)
app.command("emulate")(run.emulate)
app.command("plan")(inspect.plan_cmd)
app.command("verify")(inspect.verify_cmd)
app.command("conflicts")(operator.conflicts_cmd)
app.command("deadletters")(operator.deadletters_cmd)
app.command("history")(inspect.history_cmd)
app.command("demo")(run.demo_cmd)
app.command("run")(run.run)
app.command("scheduler")(distributed.scheduler)
app.command("worker")(distributed.worker)
app.command("admin")(distributed.admin)
app.command("resync")(operator.resync)
app.command("reconcile")(operator.reconcile)
app.command("status")(inspect.status)
app.command("match")(firstrun.match_cmd)
app.command("doctor")(firstrun.doctor_cmd)
app.command("deletes")(operator.deletes_cmd)
app.command("rebind")(operator.rebind_cmd)


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    try:
        app(args=argv, prog_name="crmsync")
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
