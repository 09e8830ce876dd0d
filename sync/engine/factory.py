"""Build a ready :class:`~sync.engine.state.Engine` from configuration (CLI, tasks, admin)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from sync.config import Config
from sync.engine.state import Engine
from sync.store.db import make_engine


def open_engine(
    config: Config,
    *,
    transports: Mapping[str, httpx.BaseTransport] | None = None,
    limiter: Any = None,
    retry: Any = None,
) -> Engine:
    """An engine on the configured store (which must be migrated: ``crmsync db upgrade``)."""
    return Engine.from_config(
        config,
        make_engine(config.store.url),
        transports=transports,
        limiter=limiter,
        retry=retry,
    )
