"""The world most CLI tests start from: a migrated SQLite store, a config file naming it and
the given systems, and ``crmsync`` run in-process (``CliRunner``) against that config with the
systems' secrets in the environment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.cli.app import app
from sync.store.db import upgrade


@dataclass(frozen=True)
class CliStore:
    config: Path
    url: str
    env: dict[str, str]

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        """``crmsync --config <config> args…``: its exit code and everything it printed."""
        result = CliRunner().invoke(
            app, ["--config", str(self.config), *args], env={**self.env, **(env or {})}
        )
        return result.exit_code, result.stdout + result.stderr


MakeStore = Callable[..., CliStore]


@pytest.fixture
def cli_store(tmp_path: Path) -> MakeStore:
    """``cli_store(systems, env, migrate=True)``: ``systems`` is the YAML under ``systems:``
    (indented two spaces); ``migrate=False`` leaves the store file absent."""

    def make(systems: str, env: dict[str, str], *, migrate: bool = True) -> CliStore:
        url = f"sqlite:///{tmp_path / 'crmsync.db'}"
        if migrate:
            upgrade(url)
        config = tmp_path / "config.yaml"
        config.write_text(f"store:\n  url: {url}\nsystems:\n{systems}", encoding="utf-8")
        return CliStore(config, url, env)

    return make
