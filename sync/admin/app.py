"""The admin HTTP API and the operators' console, one Starlette app (``crmsync admin``).

Every route but the probes and the sign-in page needs ``Authorization: Bearer
$CRMSYNC_ADMIN_TOKEN`` or a console session signed in with that token (:mod:`sync.admin.auth`);
the app refuses to be built without a strong token — an admin API open to anyone who can reach
the port is worse than none. The API is described at ``/openapi.json`` (from the endpoints'
docstrings, :mod:`sync.admin.openapi`) and ``/docs``; the console lives under ``/console``.

=====================================  =========================================================
``GET /livez``                         no auth; 200 while the process answers (liveness)
``GET /readyz`` (``/health``)          no auth; 200 when the store (and broker) answer, else 503
``GET /status``                        per-system health, cursor, lag, outbox, conflicts, runs
``GET /runs`` ``GET /runs/{id}``       runs by system / kind; one run and what it touched
``POST /resync`` ``POST /reconcile``   ``{"system": s|null, "full": bool}`` -> 202 ``{"run_id"}``
``GET /conflicts``                     open conflicts (``?status=resolved`` for the others)
``POST /conflicts/{id}/resolve``       ``{"take": system|"ours"}``: set the field, unhold, push
``GET /deadletters``                   open dead letters; ``POST .../{id}/replay``, ``/replay``
``GET /records?q=`` ``/records/{id}``  find a deal by any id or name; one deal, copies, journal
``GET /waiting``                       the first run's match, held systems, parked deals
``POST /first-run/approve|waive``      the decisions of ``crmsync match``
``POST /systems/{s}/deletes/...``      ``confirm`` / ``discard`` held deletes; ``.../rebind``
``GET /metrics``                       Prometheus text format
=====================================  =========================================================
"""

from __future__ import annotations

import os
import signal

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync import metrics
from sync.admin import api, api_waiting, console, console_pages, console_waiting, openapi
from sync.admin.auth import AdminAuth, Sessions
from sync.admin.limits import BodyLimit, RequestRefused, token_problem
from sync.engine import operations
from sync.engine.operations import AdminError
from sync.runtime.backend import AdminBackend

TOKEN_ENV = "CRMSYNC_ADMIN_TOKEN"
log = structlog.get_logger("crmsync.admin")


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRefused | AdminError)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) as JSON like every other 4xx."""
    assert isinstance(exc, HTTPException)
    messages = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed here"}
    message = messages.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _crashed(request: Request, exc: Exception) -> Response:
    log.error("admin.request_failed", path=request.url.path, error=type(exc).__name__)
    return JSONResponse({"error": "internal error (see the admin log)"}, status_code=500)


def prometheus(request: Request) -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _api_routes() -> list[Route]:
    post = ["POST"]
    return [
        Route("/livez", api.livez),
        Route("/readyz", api.readyz),
        Route("/health", api.readyz, include_in_schema=False),  # the probe's older name
        Route("/status", api.status),
        Route("/runs", api.runs),
        Route("/runs/{run_id}", api.run),
        Route("/resync", api.resync, methods=post),
        Route("/reconcile", api.reconcile, methods=post),
        Route("/conflicts", api.conflicts),
        Route("/conflicts/{conflict_id:int}/resolve", api.resolve, methods=post),
        Route("/deadletters", api.deadletters),
        Route("/deadletters/replay", api.replay_all, methods=post),
        Route("/deadletters/{letter_id:int}/replay", api.replay, methods=post),
        Route("/records", api.records),
        Route("/records/{record_id}", api.record),
        Route("/records/{record_id}/history", api.history),
        Route("/waiting", api_waiting.waiting),
        Route("/first-run/approve", api_waiting.approve, methods=post),
        Route("/first-run/waive", api_waiting.waive, methods=post),
        Route("/systems/{system}/deletes/{choice}", api_waiting.deletes, methods=post),
        Route("/systems/{system}/rebind", api_waiting.rebind, methods=post),
        Route("/metrics", prometheus, include_in_schema=False),
        Route("/openapi.json", openapi.openapi_json, include_in_schema=False),
        Route("/docs", openapi.docs_page, include_in_schema=False),
    ]


def _console_routes() -> list[Route]:
    pages = [
        ("/", console.home),
        ("/console", console.overview),
        ("/console/fragments/overview", console.overview_fragment),
        ("/console/static/{name}", console.static),
        ("/console/runs", console.runs),
        ("/console/runs/{run_id}", console.run_detail),
        ("/console/conflicts", console_pages.conflicts),
        ("/console/deadletters", console_pages.deadletters),
        ("/console/deals", console_pages.deals),
        ("/console/deals/{record_id}", console_pages.deal),
        ("/console/actions", console_pages.actions),
        ("/console/waiting", console_waiting.waiting),
    ]
    routes = [Route(path, endpoint, include_in_schema=False) for path, endpoint in pages]
    routes.append(
        Route("/console/login", console.login, methods=["GET", "POST"], include_in_schema=False)
    )
    routes.append(
        Route("/console/logout", console.logout, methods=["POST"], include_in_schema=False)
    )
    return routes


def create_app(backend: AdminBackend, token: str | None = None) -> Starlette:
    """The admin app. ``token`` defaults to ``$CRMSYNC_ADMIN_TOKEN``; a missing or weak one
    (see :func:`~sync.admin.limits.token_problem`) -> ``ValueError``."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    problem = token_problem(token, TOKEN_ENV)
    if problem:
        raise ValueError(problem)
    engine = backend.engine
    metrics.watch_store(lambda: operations.system_health(engine))
    sessions = Sessions(token.strip())
    handlers = {
        RequestRefused: _refused,
        AdminError: _refused,
        HTTPException: _http_error,
        Exception: _crashed,
    }
    middleware = [Middleware(BodyLimit), Middleware(AdminAuth, sessions=sessions)]
    app = Starlette(
        routes=_api_routes() + _console_routes(),
        middleware=middleware,
        exception_handlers=handlers,
    )
    app.state.backend = backend
    app.state.sessions = sessions
    return app


def serve(app: Starlette, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until SIGTERM/SIGINT. SIGHUP (``systemctl reload``) is
    logged and ignored: uvicorn does not handle it, and its default action would kill the
    process. The API reads the store on every request, so there is nothing to reload."""
    import uvicorn

    signal.signal(signal.SIGHUP, _on_hangup)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


def _on_hangup(signum: int, frame: object) -> None:
    log.info("admin.sighup", action="ignored: the admin API has no state to reload")
