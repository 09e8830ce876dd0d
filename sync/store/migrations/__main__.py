"""Write the next migration from the difference between sync.store.models and the migrations.

    .venv/bin/python -m sync.store.migrations "add outbox priority"

It upgrades a throw-away SQLite database to the current head, autogenerates a revision against
it, numbers it after the newest one (0001, 0002, …) and formats it with ruff. Pass
``--url postgresql+psycopg://…`` to compare against a PostgreSQL database instead (it must be
at head). Always read the generated file before committing it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command

from sync.store.db import MIGRATIONS_DIR, alembic_config, upgrade


def next_revision_id() -> str:
    """The next four-digit revision id after the highest one in versions/."""
    numbers = [
        int(match.group(1))
        for path in (MIGRATIONS_DIR / "versions").glob("*.py")
        if (match := re.match(r"(\d+)_", path.name))
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def generate(message: str, url: str | None = None) -> Path | None:
    """Autogenerate a revision named ``message``; return its path (None if nothing changed)."""
    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite:///{Path(tmp) / 'compare.db'}"
        upgrade(url)
        script = command.revision(
            alembic_config(url), message=message, autogenerate=True, rev_id=next_revision_id()
        )
    if script is None or isinstance(script, list):
        return None
    path = Path(script.path)
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():
        subprocess.run([ruff, "format", "--quiet", str(path)], check=False)
        subprocess.run([ruff, "check", "--fix", "--quiet", str(path)], check=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync.store.migrations", description=__doc__)
    parser.add_argument("message", help="what the revision changes, e.g. 'add outbox priority'")
    parser.add_argument("--url", help="compare against this database instead of a fresh SQLite")
    args = parser.parse_args(argv)
    path = generate(args.message, args.url)
    print(f"wrote {path}" if path else "no revision written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
