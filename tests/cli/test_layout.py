"""The CLI package keeps its shape (issue 14): no import circle, no command module reaching into
another, and no query of its own — listings and actions go through sync.engine.operations, the
admin API's code, so the two cannot drift apart again."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "sync" / "cli"
COMMAND_MODULES = {"inspect", "operator", "firstrun", "run", "distributed", "store"}
SHARED_MODULES = {"base", "tables", "verify_view", "store_access", "progress"}


def _tree(name: str) -> ast.Module:
    return ast.parse((CLI / f"{name}.py").read_text(encoding="utf-8"))


def _cli_imports(tree: ast.Module) -> set[str]:
    """The sync.cli modules a module imports (anywhere, lazily too)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "sync.cli":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("sync.cli."):
                found.add(node.module.removeprefix("sync.cli."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sync.cli."):
                    found.add(alias.name.removeprefix("sync.cli."))
    return found


def test_every_module_is_accounted_for() -> None:
    modules = {path.stem for path in CLI.glob("*.py")} - {"__init__", "app"}
    assert modules == COMMAND_MODULES | SHARED_MODULES


@pytest.mark.parametrize("name", sorted(SHARED_MODULES))
def test_shared_modules_import_no_command_module(name: str) -> None:
    assert not _cli_imports(_tree(name)) & COMMAND_MODULES


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_command_modules_import_only_the_shared_ones(name: str) -> None:
    assert _cli_imports(_tree(name)) <= SHARED_MODULES


def test_only_app_assembles_the_commands() -> None:
    assert _cli_imports(_tree("app")) >= COMMAND_MODULES
    assert not _cli_imports(ast.parse((CLI / "__init__.py").read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES | SHARED_MODULES | {"app"}))
def test_the_cli_runs_no_query(name: str) -> None:
    """No select(), no session: the store is read and written through named functions."""
    tree = _tree(name)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("sqlmodel", "sqlalchemy"):
            imported = {alias.name for alias in node.names}
            assert not imported & {"select", "Session", "col", "func", "text"}, (name, imported)
        if isinstance(node, ast.Attribute):
            assert node.attr not in ("session", "exec", "execute", "query"), (name, node.attr)


#: what starts, runs or finishes a job by hand; the CLI asks sync.runtime.jobs instead
JOB_INTERNALS = {
    "sync.engine.cycle": {"start_run", "finish_run", "poll"},
    "sync.engine.push": {"drain"},
    "sync.engine.reconcile": {"reconcile"},
    "sync.store.runs": {"queue", "restart", "finish"},
}


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES | SHARED_MODULES | {"app"}))
def test_the_cli_runs_jobs_through_the_job_runner(name: str) -> None:
    """Resync, reconcile and re-read are sync.runtime.jobs' jobs, as for the admin API and the
    workers: the CLI opens no run row and calls no poll, drain or reconcile itself."""
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.ImportFrom) and node.module in JOB_INTERNALS:
            imported = {alias.name for alias in node.names}
            assert not imported & JOB_INTERNALS[node.module], (name, node.module, imported)


def test_the_admin_backend_starts_the_job_runners_jobs() -> None:
    """sync.runtime.backend builds no job of its own: it hands over the job runner's starters
    (sync.runtime.starters, which run sync.runtime.jobs' jobs)."""
    backend = CLI.parent / "runtime" / "backend.py"
    tree = ast.parse(backend.read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "sync.runtime.starters" in modules
    assert not {"threading", "sync.engine.reconcile", "sync.celery_app"} & modules
    assert not any(isinstance(node, ast.Import) for node in ast.walk(tree))
