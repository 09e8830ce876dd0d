"""The ``crmsync`` app: the global options, and every command in the order ``--help`` lists
them. The one module that imports the command modules — nothing imports it but the entry
points (``crmsync``, ``python -m sync``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from inspect import getdoc
from pathlib import Path
from typing import Annotated, Any

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
        configure_logging(log_format, log_level or _default_level(ctx.invoked_subcommand))
    except ValueError as exc:
        fail(str(exc), 2)
    ctx.obj = CliContext(config_path=config, log_format=log_format, log_level=log_level)


#: commands that print a report and end: their INFO lines (each vendor request, an expected
#: 400 on a probe) would land in the middle of the report on a terminal; warnings still show
REPORTS = frozenset(
    {"plan", "verify", "conflicts", "deadletters", "history", "status", "match", "doctor"}
)


def _default_level(command: str | None) -> str | None:
    """WARNING for a report command unless ``$CRMSYNC_LOG_LEVEL`` says otherwise; None (the
    logging's own default, INFO) for the commands that run the sync and log its progress."""
    from sync.logging import LEVEL_ENV

    if command in REPORTS and not os.environ.get(LEVEL_ENV):
        return "WARNING"
    return None


# --------------------------------------------------------------------------- commands


def _help(command: Callable[..., Any]) -> str:
    """A command's docstring with each paragraph on one line. Typer's rich mode keeps the
    docstring's own line breaks (made for the source's 100 columns) in ``--help``, which
    then breaks lines raggedly at any terminal width; folded, each paragraph wraps to it.
    A docstring's literal (two backticks, for the code's readers) shows as one backtick."""
    doc = (getdoc(command) or "").replace("``", "`")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in doc.split("\n\n"))


def _add(group: typer.Typer, name: str, command: Callable[..., Any]) -> None:
    group.command(name, help=_help(command))(command)


_add(config_app, "check", inspect.config_check)
_add(db_app, "upgrade", store.db_upgrade)
_add(app, "emulate", run.emulate)
_add(app, "plan", inspect.plan_cmd)
_add(app, "verify", inspect.verify_cmd)
_add(app, "conflicts", operator.conflicts_cmd)
_add(app, "deadletters", operator.deadletters_cmd)
_add(app, "history", inspect.history_cmd)
_add(app, "demo", run.demo_cmd)
_add(app, "run", run.run)
_add(app, "scheduler", distributed.scheduler)
_add(app, "worker", distributed.worker)
_add(app, "admin", distributed.admin)
_add(app, "resync", operator.resync)
_add(app, "reconcile", operator.reconcile)
_add(app, "status", inspect.status)
_add(app, "match", firstrun.match_cmd)
_add(app, "doctor", firstrun.doctor_cmd)
_add(app, "deletes", operator.deletes_cmd)
_add(app, "rebind", operator.rebind_cmd)


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
