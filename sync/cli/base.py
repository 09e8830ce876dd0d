"""The ``crmsync`` command line (typer + rich).

Adding a command: write a function under the right ``typer.Typer`` group, take ``ctx`` and get
the configuration with ``state(ctx).config()`` (a broken file prints its problems and exits 2);
call :func:`fail` for anything else the user can fix — it prints one red line and exits, without
a traceback. Unexpected exceptions still show theirs: they are bugs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from sync import __version__
from sync.config import CONFIG_ENV, DEFAULT_PATH, Config, ConfigError, load_config
from sync.money_config import resolve

EMULATED_SYSTEMS = ("ruddr", "close", "parsalink", "truto")

out = Console()
err = Console(stderr=True)

app = typer.Typer(
    name="crmsync",
    help="Keep sales opportunities identical, in both directions, across CRMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
config_app = typer.Typer(help="Check the configuration file.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the store database.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")


@dataclass
class State:
    """What the global options decided, shared with every command through ``ctx.obj``."""

    config_path: Path
    log_format: str | None = None
    #: --log-level; commands that configure logging again must pass it on (None: the env)
    log_level: str | None = None
    _config: Config | None = None

    def forget_config(self) -> None:
        """Load the configuration again on next use (the environment it reads has changed)."""
        self._config = None

    def config(self) -> Config:
        """The validated configuration (loaded once); a ConfigError exits with code 2."""
        if self._config is None:
            self._config = load_config_or_exit(self.config_path)
        return self._config


def state(ctx: typer.Context) -> State:
    """The :class:`State` of this invocation (works from nested groups too)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, State):  # commands invoked without the root callback (tests)
        obj = State(config_path=Path(DEFAULT_PATH))
        ctx.find_root().obj = obj
    return obj


def print_config_error(error: ConfigError) -> None:
    """Every problem of a config file, one per line, in red."""
    count = len(error.problems)
    err.print(f"[bold red]{count} problem{'s' if count != 1 else ''} in the configuration:[/]")
    for problem in error.problems:
        err.print(f"  [red]{escape(str(problem))}[/]", soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` in red and exit with ``code`` — for anything the user can fix."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def load_config_or_exit(path: str | Path | None) -> Config:
    """Load the configuration; on any problem print the list and exit with code 2."""
    try:
        return load_config(path)
    except ConfigError as error:
        print_config_error(error)
        raise typer.Exit(2) from None


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

    try:
        configure_logging(log_format, log_level)
    except ValueError as exc:
        fail(str(exc), 2)
    ctx.obj = State(config_path=config, log_format=log_format, log_level=log_level)


# --------------------------------------------------------------------------- config


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


@config_app.command("check")
def config_check(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="File to check (default: --config).", dir_okay=False),
    ] = None,
) -> None:
    """Validate a configuration file and print what it resolves to, secrets masked."""
    target = path or state(ctx).config_path
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


# --------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="Database URL (default: store.url of the configuration)."),
    ] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the store's tables (Alembic) to the newest revision."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from sync.config import mask_url
    from sync.store.db import current_revision, upgrade

    target = url or state(ctx).config().store.url
    try:
        upgrade(target, revision)
        now = current_revision(target)
    except (SQLAlchemyError, CommandError, OSError) as exc:
        reason = exc.args[0] if exc.args else exc
        fail(f"cannot migrate {mask_url(target)}: {exc.__class__.__name__}: {reason}")
    err.print(f"[green]✓[/] {escape(mask_url(target))} is at revision {now}", soft_wrap=True)


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


@app.command()
def emulate(
    only: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated systems to serve (default: all).", metavar="ruddr,close,…"
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port_base: Annotated[
        int,
        typer.Option(help="Ruddr listens on port-base+1, Close +2, ParsaLink +3, Truto +4."),
    ] = 8710,
    seed: Annotated[int, typer.Option(help="Seed of the reference and random data.")] = 0,
    seed_opportunities: Annotated[
        int, typer.Option(help="Random opportunities to create in each system at start.", min=0)
    ] = 0,
    rate_limits: Annotated[
        bool, typer.Option("--rate-limits/--no-rate-limits", help="Enforce vendor rate limits.")
    ] = True,
) -> None:
    """Serve local emulators of the vendor APIs (until interrupted)."""
    systems = _parse_only(only)
    serve = _emulator_server()
    try:
        serve(
            only=systems,
            host=host,
            port_base=port_base,
            seed=seed,
            seed_opportunities=seed_opportunities,
            rate_limited=rate_limits,
        )
    except KeyboardInterrupt:
        err.print("stopped")
    except OSError as exc:  # e.g. the port is taken
        fail(f"cannot serve the emulators: {exc}")


# --------------------------------------------------------------------------- other commands


def _register_commands() -> None:
    """Engine and runtime commands live in their own modules; they import lazily."""
    from sync import cli_engine, cli_operator, cli_runtime

    cli_engine.register(app)
    cli_runtime.register(app)
    cli_engine.register_first_run(app)
    cli_operator.register(app)


_register_commands()

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
