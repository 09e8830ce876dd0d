"""``python -m sync`` is the ``crmsync`` command."""

from __future__ import annotations

import sys

from sync.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
