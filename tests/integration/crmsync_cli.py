"""Entry point the integration tests start as a subprocess: the crmsync CLI."""

from __future__ import annotations

import sys

from sync.cli.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
