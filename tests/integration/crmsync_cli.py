"""Entry point the integration tests start as a subprocess: the crmsync CLI with the runtime
commands registered (whether or not sync.cli registers them yet)."""

from __future__ import annotations

import sys

from sync import cli
from sync.cli_runtime import register

if not any(c.name == "scheduler" for c in cli.app.registered_commands):
    register(cli.app)

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
