"""The distributed processes, as in the Procfile (``CRMSYNC_BROKER_URL`` set): ``scheduler``
(enqueues polls and reconciles), ``worker`` (a Celery worker running them) and ``admin`` (the
admin HTTP API and the operators' console). Embedded mode, one process, is ``run``'s
(:mod:`sync.cli.run`).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from sync.cli.base import (
    build_engine,
    configure_logging_again,
    context,
    exported_config,
    fail,
    require_broker,
)
from sync.config import CONFIG_ENV


def scheduler(ctx: typer.Context) -> None:
    """Distributed scheduler: enqueue polls and reconciles (one scheduler leads)."""
    configure_logging_again(ctx)
    config = exported_config(ctx)
    from functools import cache

    from sync.engine.context import Engine
    from sync.engine.pace import poll_due
    from sync.runtime.context import prefix, redis_client
    from sync.runtime.starters import celery_sender
    from sync.scheduler import EnqueueDispatcher, Runner
    from sync.store.db import make_engine

    client = redis_client(require_broker(config, "scheduler"))

    @cache  # on first use: a store not migrated yet holds no poll back (sync.scheduler._due)
    def store() -> Engine:
        return Engine.from_config(config, make_engine(config.store.url))

    def due(system: str) -> bool:  # a scan system's stretched interval, from cursors.pace
        return poll_due(store(), system, cfg=runner.config.systems.get(system))

    dispatcher = EnqueueDispatcher(client, celery_sender(config), prefix=prefix(), due=due)
    runner = Runner(config, dispatcher, config_path=os.environ.get(CONFIG_ENV))
    runner.install_signals()
    runner.run_forever()


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None, typer.Option(help="Worker processes/threads.", min=1, max=1024)
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated queues (default: all: crmsync.<system>, crmsync.admin)."
        ),
    ] = None,
    pool: Annotated[str | None, typer.Option(help="prefork (default), threads or solo.")] = None,
) -> None:
    """A Celery worker running the sync tasks (same as `celery -A sync.celery_app worker`)."""
    config = exported_config(ctx)
    require_broker(config, "worker")
    cli = context(ctx)

    # tasks build their engine from CRMSYNC_CONFIG: make it the file this command was given
    os.environ["CRMSYNC_CONFIG"] = str(cli.config_path)
    from sync.celery_app import app as celery_app  # tasks are bound to this app

    level = cli.log_level or os.environ.get("CRMSYNC_LOG_LEVEL") or "INFO"
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
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8700,
) -> None:
    """The admin HTTP API and the operators' console at / (token: CRMSYNC_ADMIN_TOKEN)."""
    from sync.admin.app import TOKEN_ENV, create_app, serve
    from sync.admin.limits import token_problem
    from sync.runtime.backend import admin_backend

    token = os.environ.get(TOKEN_ENV, "")
    problem = token_problem(token, TOKEN_ENV)
    if problem:
        fail(f"refusing to start the admin API: {problem}")
    configure_logging_again(ctx)
    config = exported_config(ctx)
    engine = build_engine(config, distributed=bool(config.broker.url))
    app = create_app(admin_backend(engine, config), token=token)
    serve(app, host, port)  # SIGHUP is logged and ignored there
