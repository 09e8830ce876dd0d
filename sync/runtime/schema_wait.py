"""Wait until the store's schema is at this version's newest migration — for the init
container that keeps Kubernetes workers from starting before the migration Job finished::

    python -m sync.runtime.schema_wait [TIMEOUT_SECONDS]

The store URL is the configuration's (``$CRMSYNC_CONFIG``, ``$CRMSYNC_DATABASE_URL``). Exits 0
once the database is at the head revision, 1 with the reason after the timeout (default 600 s;
the pod then restarts the wait). Only one process migrates (the Job): workers that each ran
``db upgrade`` at start would race each other on the same tables.
"""

from __future__ import annotations

import sys
import time

POLL_SECONDS = 3.0


def schema_at_head(url: str) -> tuple[bool, str]:
    """(at head?, what the database is at) — a database that cannot be reached is not."""
    from sqlalchemy.exc import SQLAlchemyError

    from sync.store.db import current_revision, head_revision

    head = head_revision()
    try:
        now = current_revision(url)
    except (SQLAlchemyError, OSError) as exc:
        return False, f"unreachable ({type(exc).__name__})"
    return now == head, f"at {now or 'no revision'}, want {head}"


def main(argv: list[str]) -> int:
    from sync.config import ConfigError, load_config, mask_url

    timeout = float(argv[0]) if argv else 600.0
    try:
        url = load_config().store.url
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    deadline = time.monotonic() + timeout
    while True:
        ready, state = schema_at_head(url)
        if ready:
            print(f"store {mask_url(url)} is migrated ({state})", file=sys.stderr)
            return 0
        if time.monotonic() >= deadline:
            print(
                f"store {mask_url(url)} not migrated after {timeout:.0f}s: {state}; "
                "is the crmsync-migrate Job done?",
                file=sys.stderr,
            )
            return 1
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
