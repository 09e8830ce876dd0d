"""The store's command: ``db upgrade`` creates or migrates the store's tables (Alembic).

How the other commands open the store — checked, read-only when they only read — is
:mod:`sync.cli.store_access`.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sync.cli.base import context, err, fail


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

    target = url or context(ctx).config().store.url
    try:
        upgrade(target, revision)
        now = current_revision(target)
    except (SQLAlchemyError, CommandError, OSError) as exc:
        reason = exc.args[0] if exc.args else exc
        fail(f"cannot migrate {mask_url(target)}: {exc.__class__.__name__}: {reason}")
    err.print(f"[green]✓[/] {escape(mask_url(target))} is at revision {now}", soft_wrap=True)
