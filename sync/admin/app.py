"""The admin HTTP API, for operators and the web dashboard.

Every route but ``GET /health`` needs ``Authorization: Bearer $CRMSYNC_ADMIN_TOKEN``; the
token is compared in constant time (:func:`hmac.compare_digest`), and the app refuses to be
built without one — an admin API open to anyone who can reach the port is worse than none.

=================================  ============================================================
``GET /health``                    no auth; 200 when the store (and broker) answer, else 503
``GET /status``                    per-system health, cursor, lag, outbox, conflicts, last runs
``POST /resync``                   ``{"system": s|null, "full": bool}`` -> 202 ``{"run_id"}``
``GET /runs/{id}``                 one run (follow a resync to completion)
``GET /conflicts``                 open conflicts (``?status=resolved`` for the others)
``POST /conflicts/{id}/resolve``   ``{"take": system|"ours"}``: set the field, unhold, push
``GET /deadletters``               open dead letters
``POST /deadletters/{id}/replay``  re-enqueue the push, or re-read the system
``GET /records/{id}/history``      the record's journal
``GET /metrics``                   Prometheus text format
=================================  ============================================================
"""

from __future__ import annotations

import hmac
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync import metrics
from sync.admin.limits import (
    BodyLimit,
    RequestRefused,
    choice_param,
    int_param,
    parse_json_body,
    record_id,
    token_problem,
)
from sync.engine import operations
from sync.engine.operations import AdminError
from sync.runtime.backend import AdminBackend

TOKEN_ENV = "CRMSYNC_ADMIN_TOKEN"
OPEN_PATHS = frozenset({"/health"})
LETTER_STATES = ("open", "replayed", "resolved")
log = structlog.get_logger("crmsync.admin")


class BearerAuth(BaseHTTPMiddleware):
    """Rejects requests without the right bearer token (constant-time comparison)."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self._token = token.encode()

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in OPEN_PATHS:
            return await call_next(request)
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            return JSONResponse(
                {"error": "a valid bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="crmsync"'},
            )
        return await call_next(request)


def _error(exc: AdminError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def _body(request: Request) -> dict[str, Any]:
    return parse_json_body(await request.body())


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestRefused)
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


def create_app(backend: AdminBackend, token: str | None = None) -> Starlette:
    """The admin app. ``token`` defaults to ``$CRMSYNC_ADMIN_TOKEN``; a missing or weak one
    (see :func:`~sync.admin.limits.token_problem`) -> ``ValueError``."""
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    problem = token_problem(token, TOKEN_ENV)
    if problem:
        raise ValueError(problem)
    engine = backend.engine
    metrics.watch_store(lambda: operations.system_health(engine))

    def health(request: Request) -> JSONResponse:
        report: dict[str, str] = {}
        ok = True
        try:
            operations.ping_store(engine)
            report["database"] = "ok"
        except sa.exc.SQLAlchemyError as exc:
            report["database"], ok = f"unreachable: {type(exc).__name__}", False
        for name, check in (backend.checks or {}).items():
            try:
                check()
                report[name] = "ok"
            except Exception as exc:
                report[name], ok = f"unreachable: {type(exc).__name__}", False
        report["status"] = "ok" if ok else "unavailable"
        return JSONResponse(report, status_code=200 if ok else 503)

    def status(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "systems": operations.system_health(engine),
                "runs": operations.last_runs(
                    engine, int_param(request.query_params, "runs", 10, low=1, high=1000)
                ),
            }
        )

    def _system_of(body: dict[str, Any]) -> str | None:
        system = body.get("system")
        if system is not None and system not in engine.config.systems:
            raise AdminError(f"unknown system {system!r}")
        return system

    async def resync(request: Request) -> JSONResponse:
        try:
            body = await _body(request)
            system = _system_of(body)
            run_id = await run_in_threadpool(backend.resync, system, bool(body.get("full")))
        except AdminError as exc:
            return _error(exc)
        return JSONResponse({"run_id": run_id, "status": "queued"}, status_code=202)

    async def reconcile(request: Request) -> JSONResponse:
        try:
            system = _system_of(await _body(request))
            if backend.reconcile is None:
                raise AdminError("this admin API cannot start a reconcile", 501)
            run_id = await run_in_threadpool(backend.reconcile, system)
        except AdminError as exc:
            return _error(exc)
        return JSONResponse({"run_id": run_id, "status": "queued"}, status_code=202)

    def run(request: Request) -> JSONResponse:
        found = operations.get_run(engine, request.path_params["run_id"])
        if found is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        return JSONResponse(found)

    def conflicts(request: Request) -> JSONResponse:
        wanted = choice_param(request.query_params, "status", "open", ("open", "resolved"))
        return JSONResponse({"conflicts": operations.list_conflicts(engine, wanted)})

    async def resolve(request: Request) -> JSONResponse:
        try:
            take = (await _body(request)).get("take")
            if not isinstance(take, str) or not take:
                raise AdminError('the body must be {"take": "<system>" or "ours"}')
            conflict_id = record_id(request.path_params["conflict_id"], "conflict")
            result = await run_in_threadpool(operations.resolve_conflict, engine, conflict_id, take)
        except AdminError as exc:
            return _error(exc)
        return JSONResponse(result)

    def deadletters(request: Request) -> JSONResponse:
        wanted = choice_param(request.query_params, "status", "open", LETTER_STATES)
        return JSONResponse({"dead_letters": operations.list_dead_letters(engine, wanted)})

    def replay(request: Request) -> JSONResponse:
        try:
            letter_id = record_id(request.path_params["letter_id"], "dead letter")
            replayed = operations.replay_dead_letters(engine, [letter_id])
        except AdminError as exc:
            return _error(exc)
        for system in replayed.rereads:
            backend.reread(system)
        return JSONResponse(replayed.results[0])

    def history(request: Request) -> JSONResponse:
        try:
            entries = operations.record_history(engine, request.path_params["record_id"])
        except AdminError as exc:
            return _error(exc)
        return JSONResponse({"record_id": request.path_params["record_id"], "history": entries})

    def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    routes = [
        Route("/health", health),
        Route("/status", status),
        Route("/resync", resync, methods=["POST"]),
        Route("/reconcile", reconcile, methods=["POST"]),
        Route("/runs/{run_id}", run),
        Route("/conflicts", conflicts),
        Route("/conflicts/{conflict_id:int}/resolve", resolve, methods=["POST"]),
        Route("/deadletters", deadletters),
        Route("/deadletters/{letter_id:int}/replay", replay, methods=["POST"]),
        Route("/records/{record_id}/history", history),
        Route("/metrics", prometheus),
    ]
    handlers = {RequestRefused: _refused, HTTPException: _http_error, Exception: _crashed}
    middleware = [Middleware(BodyLimit), Middleware(BearerAuth, token=token)]
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)


def serve(app: Starlette, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until SIGTERM/SIGINT. SIGHUP (``systemctl reload``) is
    logged and ignored: uvicorn does not handle it, and its default action would kill the
    process. The API reads the store on every request, so there is nothing to reload."""
    import uvicorn

    signal.signal(signal.SIGHUP, _on_hangup)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


def _on_hangup(signum: int, frame: object) -> None:
    log.info("admin.sighup", action="ignored: the admin API has no state to reload")
