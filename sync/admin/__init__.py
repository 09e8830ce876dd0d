"""The admin HTTP API (Starlette): status, resync, conflicts, dead letters, history, metrics.

:class:`AdminBackend` (how the API starts work) lives in :mod:`sync.runtime.backend`."""

from sync.admin.app import TOKEN_ENV, create_app
from sync.runtime.backend import AdminBackend

__all__ = ["TOKEN_ENV", "AdminBackend", "create_app"]
