"""The layering of ``sync/``, held by walking its source (issue 14).

- **Every query lives in ``sync/store/``.** Engine, runtime, admin and CLI code ask the store
  named questions (``outbox.open_row(session, ...)``, ``links.find(session, ...)``); no
  ``select(``, ``insert``/``update``/``delete`` statement, ``text(``, ``session.exec`` /
  ``.execute`` / ``.query`` or ``session.get`` outside it. ``session.add`` / ``delete`` /
  ``flush`` on rows already loaded are the unit of work, not queries, and stay with the code
  that owns the transaction. ``NOT_CONVERTED`` is where an exception would be listed (with
  why); it is empty, and an entry that holds no query fails too.
- **No import circle.** Module-level imports between ``sync`` modules form no cycle. Imports
  inside functions run later, so Python does not trip on a circle they close, but a reader
  does: those circles are listed in ``KNOWN_LAZY_CIRCLES`` and may only go away. Imports
  under ``TYPE_CHECKING`` never run and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYNC = ROOT / "sync"

#: files (glob patterns relative to the repository) that run queries of their own, and why:
#: none — every query of sync/ is in sync/store/
NOT_CONVERTED: dict[tuple[str, ...], str] = {}

#: circles closed only through imports inside functions (each the set of its modules): none
#: left — the CLI's went with the sync/cli package, the engine's with engine/normalise.py
KNOWN_LAZY_CIRCLES: list[frozenset[str]] = []

SQL_MODULES = ("sqlalchemy", "sqlmodel")
STATEMENTS = {"select", "insert", "update", "delete", "text"}
QUERY_METHODS = {"exec", "execute", "query", "scalar", "scalars", "exec_driver_sql"}


def _files() -> Iterator[Path]:
    yield from sorted(SYNC.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _sql_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to SQL statement builders, and to the SQL modules themselves."""
    builders: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in SQL_MODULES:
            builders.update(a.asname or a.name for a in node.names if a.name in STATEMENTS)
        elif isinstance(node, ast.Import):
            modules.update(
                a.asname or a.name for a in node.names if a.name.split(".")[0] in SQL_MODULES
            )
    return builders, modules


def queries_in(source: str) -> list[tuple[int, str]]:
    """``(line, construct)`` of every query construct in ``source``."""
    tree = ast.parse(source)
    builders, modules = _sql_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in builders:
            found.append((node.lineno, f"{func.id}("))
        elif isinstance(func, ast.Attribute):
            receiver = ast.unparse(func.value)
            statement = func.attr in STATEMENTS and receiver in modules
            if statement or func.attr in QUERY_METHODS:
                found.append((node.lineno, f"{receiver}.{func.attr}("))
            elif func.attr == "get" and receiver.removesuffix("()").endswith("session"):
                found.append((node.lineno, f"{receiver}.get("))
    return sorted(found)


def _allowed(relative: str) -> tuple[str, ...] | None:
    for patterns in NOT_CONVERTED:
        if any(fnmatch(relative, pattern) for pattern in patterns):
            return patterns
    return None


def test_queries_live_in_the_store() -> None:
    outside = [
        f"{_relative(path)}:{line}: {construct}"
        for path in _files()
        if not _relative(path).startswith("sync/store/") and _allowed(_relative(path)) is None
        for line, construct in queries_in(path.read_text())
    ]
    assert not outside, "queries outside sync/store/ (add a named function there):\n" + "\n".join(
        outside
    )


def test_the_list_of_unconverted_files_only_shrinks() -> None:
    still = {
        patterns
        for path in _files()
        if (patterns := _allowed(_relative(path))) is not None and queries_in(path.read_text())
    }
    done = [patterns for patterns in NOT_CONVERTED if patterns not in still]
    assert not done, f"no query left in {done}: take them off NOT_CONVERTED"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from sqlmodel import select\nselect(A)", ["select("]),
        ("import sqlalchemy as sa\nsa.update(A)", ["sa.update("]),
        ("from sqlalchemy import text as t\nt('x')", ["t("]),
        ("session.exec(q)", ["session.exec("]),
        ("self.session.get(A, 1)", ["self.session.get("]),
        ("engine.read_session().get(A, 1)", ["engine.read_session().get("]),
        ("engine.db.connect().execute(q)", ["engine.db.connect().execute("]),
        ("fields.get('a')\nselect(x)\nsession.add(r)\nsession.delete(r)", []),
    ],
)
def test_the_walk_finds_query_constructs(source: str, expected: list[str]) -> None:
    assert [construct for _, construct in queries_in(source)] == expected


# --------------------------------------------------------------------------- import circles


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module, *, lazy: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not under ``if TYPE_CHECKING:``), and
    with ``lazy`` also those inside function bodies, which run on first call."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            if lazy:
                pending.extend(ast.iter_child_nodes(node))
        else:
            pending.extend(ast.iter_child_nodes(node))


def import_graph(*, lazy: bool = False) -> dict[str, set[str]]:
    """``module -> the sync modules it imports at import time`` (with ``lazy``, also inside
    its functions). A package's ``__init__`` is imported before any module in it, so
    importing ``a.b.c`` also depends on ``a.b``."""
    paths = {_module_name(path): path for path in _files()}
    graph: dict[str, set[str]] = {name: set() for name in paths}

    def add(source: str, target: str) -> None:
        while target and target not in paths:
            target = target.rpartition(".")[0]
        for prefix in _prefixes(target):
            if prefix != source and prefix in paths and not source.startswith(prefix + "."):
                graph[source].add(prefix)

    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text()), lazy=lazy):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "sync":
                        add(name, alias.name)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "sync":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(name, full if full in paths else base)
    return graph


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    assert circles(import_graph()) == [], "import circles in sync/"


def test_no_new_circle_through_late_imports() -> None:
    """An import inside a function hides a circle from Python, not from the reader."""
    found = circles(import_graph(lazy=True))
    new = [sorted(circle) for circle in found if circle not in KNOWN_LAZY_CIRCLES]
    assert not new, f"import circles in sync/ (through imports inside functions): {new}"


def test_known_circles_are_still_there() -> None:
    """A circle broken is taken off ``KNOWN_LAZY_CIRCLES`` (the list only shrinks); one whose
    modules were moved away is gone with them."""
    graph = import_graph(lazy=True)
    found = circles(graph)
    gone = [
        sorted(circle)
        for circle in KNOWN_LAZY_CIRCLES
        if circle not in found and all(module in graph for module in circle)
    ]
    assert not gone, f"no longer circles, take them off KNOWN_LAZY_CIRCLES: {gone}"


def test_the_circle_check_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [frozenset({"a", "b", "c"})]
