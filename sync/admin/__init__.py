"""The admin HTTP API (Starlette): status, resync, conflicts, dead letters, history, metrics."""

from sync.admin.app import TOKEN_ENV, AdminBackend, create_app

__all__ = ["TOKEN_ENV", "AdminBackend", "create_app"]
