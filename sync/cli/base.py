"""What every ``crmsync`` command shares: the invocation's context (the global options and the
configuration, loaded once), the two consoles, one-line failures, and the engine a command works
on.

This module imports no command module — the command modules import it, and
:mod:`sync.cli.app` assembles them — so the arrows point one way. Adding a command: write a
function in the command module of its audience, take ``ctx`` and get the configuration with
``context(ctx).config()`` (a broken file prints its problems and exits 2); call :func:`fail` for
anything else the user can fix — it prints one red line and exits, without a traceback.
Unexpected exceptions still show theirs: they are bugs. Then list it in :mod:`sync.cli.app`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from sync.config import CONFIG_ENV, DEFAULT_PATH, Config, ConfigError, load_config

if TYPE_CHECKING:
    from sync.engine.context import Engine

out = Console()
err = Console(stderr=True)

#: ids are SQL BIGINTs: a larger number names no row (and would overflow the driver)
MAX_ID = 2**63 - 1
#: the width of output that goes to a pipe or a file: every line whole, none wrapped (a reader
#: of ``crmsync status | cat`` wants every id, stamp and URL as the store holds it)
PIPE_WIDTH = 10_000


def fit_to_pipes() -> None:
    """Neither console wraps or cuts when it does not write to a terminal (unless ``$COLUMNS``
    asks for a width): a pipe has no width to fit. Decided per invocation (tests run many)."""
    for console in (out, err):
        wide = not console.is_terminal and "COLUMNS" not in os.environ
        console._width = PIPE_WIDTH if wide else None  # None: the terminal's (or $COLUMNS)


def piped() -> bool:
    """Output goes to a pipe or a file: values are printed whole, never cut with "…"."""
    return not out.is_terminal


def print_json(value: Any) -> None:
    """``--json``: one JSON document on stdout, keys as the README documents them (no markup,
    no wrapping, whatever the terminal)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def check_systems(config: Config, names: Sequence[str] | None) -> list[str] | None:
    """The ``--system`` values, each a configured system; an unknown one is one line naming the
    configured systems, exit 1 (None or empty: every system)."""
    unknown = [name for name in names or () if name not in config.systems]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        fail(f"unknown system {listed}; configured: {', '.join(config.systems)}")
    return list(names) if names else None


@dataclass
class CliContext:
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


def context(ctx: typer.Context) -> CliContext:
    """The :class:`CliContext` of this invocation (works from nested groups too)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):  # commands invoked without the root callback (tests)
        obj = CliContext(config_path=Path(DEFAULT_PATH))
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


def check_id(kind: str, value: int) -> None:
    """Exit with one line unless ``value`` can be the id of a row."""
    if not 1 <= value <= MAX_ID:
        fail(f"no {kind} {value} (ids are whole numbers from 1)")


# --------------------------------------------------------------------------- processes


def exported_config(ctx: typer.Context) -> Config:
    """The configuration, with ``$CRMSYNC_CONFIG`` naming its file: child processes (the
    celery pool, scheduler jobs) read the same file."""
    cli = context(ctx)
    os.environ[CONFIG_ENV] = str(cli.config_path)
    return cli.config()


def configure_logging_again(ctx: typer.Context) -> None:
    """Logging as the global options asked (for commands that run the engine here)."""
    from sync.logging import configure_logging

    cli = context(ctx)
    configure_logging(cli.log_format, cli.log_level)


def build_engine(config: Config, *, distributed: bool, migrate: bool = False) -> Engine:
    """The engine a running process works with; ``migrate`` first brings the store to the
    newest revision (a failure is one line)."""
    from sqlalchemy.exc import SQLAlchemyError

    from sync.config import mask_url
    from sync.runtime.context import build_engine as runtime_engine
    from sync.store.db import upgrade

    if migrate:
        try:
            upgrade(config.store.url)
        except SQLAlchemyError as exc:
            fail(f"cannot migrate {mask_url(config.store.url)}: {exc}")
    return runtime_engine(config, distributed=distributed)


def require_broker(config: Config, command: str) -> str:
    """The broker URL; without one, ``crmsync COMMAND`` cannot work: one line, exit 1."""
    if not config.broker.url:
        fail(
            f"`crmsync {command}` needs a broker: set CRMSYNC_BROKER_URL=redis://… "
            "(or use `crmsync run`, the embedded mode, which needs none)"
        )
    return config.broker.url


@contextmanager
def engine_for(ctx: typer.Context, *, read_only: bool = True) -> Iterator[Engine]:
    """The engine on a checked store (missing or unmigrated: one line and exit 1). Read-only
    engines never wait for a running sync; a database error becomes one line too."""
    from sqlalchemy.exc import SQLAlchemyError

    from sync.cli.store_access import StoreUnusable, describe_store_error, open_store_engine

    config = context(ctx).config()
    try:
        engine = open_store_engine(config, read_only=read_only)
    except StoreUnusable as exc:
        fail(str(exc))
    try:
        yield engine
    except SQLAlchemyError as exc:
        fail(describe_store_error(config.store.url, exc))
    finally:
        engine.close()


def refuse_shared_orgs(engine: Any) -> None:
    """Two systems bound to one Salesforce org (direct and through Truto) would see every deal
    twice: the first run — ``run``, ``match`` — refuses to start, before reading anything, and
    exits 2 (a configuration to fix), as ``doctor`` reports."""
    from sync.engine import orgs

    shared = orgs.shared_orgs(engine)
    if shared:
        fail(orgs.refusal(shared), code=2)
