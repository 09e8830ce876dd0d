"""The admin API's JSON endpoints. Each docstring's YAML (after ``---``) is its OpenAPI
operation: :mod:`sync.admin.openapi` builds ``/openapi.json`` from them, so the document is
the code's. Refusals common to every route (401, 403, 413, 400 for a bad parameter) are added
there, once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sync.admin import views
from sync.admin.limits import RequestRefused, choice_param, int_param, parse_json_body, record_id
from sync.engine import operations
from sync.engine.operations import AdminError
from sync.runtime.backend import AdminBackend

LETTER_STATES = ("open", "replayed", "resolved")


def backend_of(request: Request) -> AdminBackend:
    found: AdminBackend = request.app.state.backend
    return found


async def body_of(request: Request) -> dict[str, Any]:
    return parse_json_body(await request.body())


def system_param(request: Request, value: Any) -> str | None:
    """A system name from a body or query (None: all systems); 400 for an unknown one."""
    if value is None or value == "":
        return None
    systems = backend_of(request).engine.systems
    if not isinstance(value, str) or value not in systems:
        raise AdminError(f"unknown system {value!r}; configured: {', '.join(systems)}")
    return value


# --------------------------------------------------------------------------- probes


def livez(request: Request) -> JSONResponse:
    """The process answers (liveness: checks nothing else, so a database blip never restarts it).
    ---
    summary: Liveness probe
    security: []
    responses:
      200: {description: alive, schema: Probe}
    """
    return JSONResponse({"status": "ok"})


def readyz(request: Request) -> JSONResponse:
    """The database (and the broker, when distributed) answer (readiness).
    ---
    summary: Readiness probe (also at /health)
    security: []
    responses:
      200: {description: ready, schema: Probe}
      503: {description: a dependency does not answer, schema: Probe}
    """
    backend = backend_of(request)
    report: dict[str, str] = {}
    ok = True
    try:
        operations.ping_store(backend.engine)
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


# --------------------------------------------------------------------------- status, runs


def status(request: Request) -> JSONResponse:
    """Per-system health, cursor, lag, outbox, conflicts, dead letters, and the last runs.
    ---
    summary: Health of every system
    parameters:
      - name: runs
        in: query
        schema: {type: integer, minimum: 1, maximum: 1000, default: 10}
    responses:
      200: {description: status, schema: Status}
    """
    engine = backend_of(request).engine
    count = int_param(request.query_params, "runs", 10, low=1, high=1000)
    return JSONResponse(
        {"systems": operations.system_health(engine), "runs": operations.last_runs(engine, count)}
    )


def runs(request: Request) -> JSONResponse:
    """Recent runs, newest first, of one system and/or kind.
    ---
    summary: List runs
    parameters:
      - {name: system, in: query, schema: {type: string}}
      - {name: kind, in: query, schema: {type: string}}
      - name: limit
        in: query
        schema: {type: integer, minimum: 1, maximum: 500, default: 50}
    responses:
      200: {description: runs, schema: RunList}
    """
    params = request.query_params
    system = system_param(request, params.get("system"))
    limit = int_param(params, "limit", 50, low=1, high=500)
    found = views.runs(backend_of(request).engine, system, params.get("kind") or None, limit)
    return JSONResponse({"runs": found})


def run(request: Request) -> JSONResponse:
    """One run (follow a resync to completion) and the journal entries it wrote.
    ---
    summary: One run
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: the run, schema: RunDetail}
      404: {description: no such run, schema: Error}
    """
    found = views.run_detail(backend_of(request).engine, request.path_params["run_id"])
    if found is None:
        raise AdminError("no such run", 404)
    return JSONResponse(found)


async def resync(request: Request) -> JSONResponse:
    """Re-read one system (or all) and push the differences; follow it at /runs/{run_id}.
    ---
    summary: Start a resync
    requestBody:
      schema: ResyncBody
    responses:
      202: {description: queued, schema: Queued}
    """
    body = await body_of(request)
    backend = backend_of(request)
    system = system_param(request, body.get("system"))
    run_id = await run_in_threadpool(backend.resync, system, bool(body.get("full")))
    return JSONResponse({"run_id": run_id, "status": "queued"}, status_code=202)


async def reconcile(request: Request) -> JSONResponse:
    """Read every deal of one system (or all) and heal what the incremental path missed.
    ---
    summary: Start a reconcile
    requestBody:
      schema: SystemBody
    responses:
      202: {description: queued, schema: Queued}
      501: {description: this admin process cannot start one, schema: Error}
    """
    backend = backend_of(request)
    system = system_param(request, (await body_of(request)).get("system"))
    if backend.reconcile is None:
        raise AdminError("this admin API cannot start a reconcile", 501)
    run_id = await run_in_threadpool(backend.reconcile, system)
    return JSONResponse({"run_id": run_id, "status": "queued"}, status_code=202)


# --------------------------------------------------------------------------- conflicts


def conflicts(request: Request) -> JSONResponse:
    """Conflicts, oldest first: both values, the policy, the reason.
    ---
    summary: List conflicts
    parameters:
      - name: status
        in: query
        schema: {type: string, enum: [open, resolved], default: open}
    responses:
      200: {description: conflicts, schema: ConflictList}
    """
    wanted = choice_param(request.query_params, "status", "open", ("open", "resolved"))
    return JSONResponse(
        {"conflicts": operations.list_conflicts(backend_of(request).engine, wanted)}
    )


async def resolve(request: Request) -> JSONResponse:
    """Resolve an open conflict: the field takes the chosen value, is unheld, and pushed.
    ---
    summary: Resolve a conflict
    parameters:
      - {name: conflict_id, in: path, required: true, schema: {type: integer}}
    requestBody:
      required: true
      schema: Take
    responses:
      200: {description: resolved, schema: Object}
      404: {description: no such conflict, schema: Error}
      409: {description: already resolved or the record is gone, schema: Error}
    """
    take = (await body_of(request)).get("take")
    if not isinstance(take, str) or not take:
        raise AdminError('the body must be {"take": "<system>" or "ours"}')
    conflict_id = record_id(request.path_params["conflict_id"], "conflict")
    engine = backend_of(request).engine
    result = await run_in_threadpool(operations.resolve_conflict, engine, conflict_id, take)
    return JSONResponse(result)


# --------------------------------------------------------------------------- dead letters


def deadletters(request: Request) -> JSONResponse:
    """Dead letters, oldest first, with the vendor's own message and the payload.
    ---
    summary: List dead letters
    parameters:
      - {name: status, in: query, schema: LetterStatus}
    responses:
      200: {description: dead letters, schema: DeadLetterList}
    """
    wanted = choice_param(request.query_params, "status", "open", LETTER_STATES)
    engine = backend_of(request).engine
    return JSONResponse({"dead_letters": operations.list_dead_letters(engine, wanted)})


def _replayed(request: Request, letter_ids: list[int] | None) -> operations.Replayed:
    backend = backend_of(request)
    replayed = operations.replay_dead_letters(backend.engine, letter_ids)
    for system in replayed.rereads:
        backend.reread(system)
    return replayed


def replay(request: Request) -> JSONResponse:
    """Replay one dead letter: an outbound one re-enqueues its push, an inbound one re-reads.
    ---
    summary: Replay a dead letter
    parameters:
      - {name: letter_id, in: path, required: true, schema: {type: integer}}
    responses:
      200: {description: replayed, schema: ReplayedOne}
      404: {description: no such dead letter, schema: Error}
      409: {description: already replayed or resolved, schema: Error}
    """
    letter_id = record_id(request.path_params["letter_id"], "dead letter")
    return JSONResponse(_replayed(request, [letter_id]).results[0])


def replay_all(request: Request) -> JSONResponse:
    """Replay every open dead letter (each system re-read once at most).
    ---
    summary: Replay every open dead letter
    responses:
      200: {description: replayed, schema: Replayed}
      409: {description: one could not be replayed, schema: Error}
    """
    replayed = _replayed(request, None)
    return JSONResponse({"replayed": replayed.results, "rereads": replayed.rereads})


# --------------------------------------------------------------------------- records


def records(request: Request) -> JSONResponse:
    """Find deals by record id, any vendor id, or part of the name.
    ---
    summary: Search deals
    parameters:
      - {name: q, in: query, required: true, schema: {type: string, minLength: 1}}
    responses:
      200: {description: matching deals, schema: DealList}
    """
    text = request.query_params.get("q", "")
    if not text.strip():
        raise RequestRefused("?q must name a record id, a vendor id or part of a deal's name")
    return JSONResponse({"deals": views.search_deals(backend_of(request).engine, text)})


def record(request: Request) -> JSONResponse:
    """A deal by record or vendor id: canonical fields, each system's copy, the journal.
    ---
    summary: One deal
    parameters:
      - {name: record_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: the deal, schema: Deal}
      404: {description: no such deal, schema: Error}
    """
    return JSONResponse(views.deal(backend_of(request).engine, request.path_params["record_id"]))


def history(request: Request) -> JSONResponse:
    """The record's journal, oldest first: every change, from where, and why.
    ---
    summary: A record's journal
    parameters:
      - {name: record_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: the journal, schema: History}
      404: {description: no such record, schema: Error}
    """
    record_id_ = request.path_params["record_id"]
    entries = operations.record_history(backend_of(request).engine, record_id_)
    return JSONResponse({"record_id": record_id_, "history": entries})
