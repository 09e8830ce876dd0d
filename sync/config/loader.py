"""Loading config.yaml: where it is (``$CRMSYNC_CONFIG`` or ./config.yaml), reading it
(``reader``), the ``CRMSYNC_DATABASE_URL`` / ``CRMSYNC_BROKER_URL`` overrides, validating it
(``models``, ``checks``), and one :class:`ConfigError` with every problem in file order."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from sync.config.checks import cross_checks
from sync.config.loopback import remote_only, remote_only_problems
from sync.config.models import Config
from sync.config.problems import pydantic_problems
from sync.config.reader import ConfigError, ConfigProblem, Reader, found_text
from sync.mapping.spec import stage_vocabulary_problems

DEFAULT_PATH = "config.yaml"
CONFIG_ENV = "CRMSYNC_CONFIG"
DATABASE_URL_ENV = "CRMSYNC_DATABASE_URL"
BROKER_URL_ENV = "CRMSYNC_BROKER_URL"


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config lives when no path is given: ``$CRMSYNC_CONFIG`` or ./config.yaml."""
    env = os.environ if env is None else env
    return Path(env.get(CONFIG_ENV) or DEFAULT_PATH)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a config file; raise :class:`ConfigError` listing every
    problem (file, line, key path, expected, found)."""
    env = os.environ if env is None else env
    file = Path(path) if path is not None else default_path(env)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([ConfigProblem(str(file), (), "a readable config file", reason)]) from exc
    return parse_config(text, location=str(file), env=env)


def parse_config(
    text: str, location: str = DEFAULT_PATH, env: Mapping[str, str] | None = None
) -> Config:
    """Validate config text; ``location`` is the file name used in error messages."""
    reader = Reader(location, os.environ if env is None else env)
    data = reader.read(text)
    if reader.problems and data is None:
        raise ConfigError(reader.problems)
    if not isinstance(data, dict):
        reader.problem((), "a mapping of sections (store, systems, mapping, …)", found_text(data))
        raise ConfigError(reader.problems)
    reader.apply_overrides(data, {DATABASE_URL_ENV: "store", BROKER_URL_ENV: "broker"})
    problems = list(reader.problems)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(reader, data, exc))
    checks = list(cross_checks(data))
    if config is not None:
        checks.extend(stage_vocabulary_problems(config.mapping))
        if remote_only(reader.env):
            checks.extend(remote_only_problems(config))
    for path, expected, found in checks:
        problems.append(ConfigProblem(f"{location}:{reader.line_of(path)}", path, expected, found))
    if problems or config is None:
        raise ConfigError(_in_file_order(problems))
    return config


def _in_file_order(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    def line(problem: ConfigProblem) -> int:
        _, _, number = problem.location.rpartition(":")
        return int(number) if number.isdigit() else 0

    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=line)
