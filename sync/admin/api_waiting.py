"""The admin API's endpoints for what waits for a person: the first run's match, held deletes
and changed bindings (the decisions ``crmsync match``, ``deletes`` and ``rebind`` take)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sync.admin import decisions, views
from sync.admin.api import backend_of, body_of, system_param
from sync.engine.operations import AdminError


def waiting(request: Request) -> JSONResponse:
    """Everything that waits for a person, each with why it waits.
    ---
    summary: What waits for a person
    responses:
      200: {description: the first run; held systems; parked deals, schema: Waiting}
    """
    engine = backend_of(request).engine
    return JSONResponse(views.waiting(engine))


def _choices(body: dict[str, Any]) -> dict[str, list[str]]:
    settle = body.get("settle") or {}
    if not isinstance(settle, dict) or not all(
        isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in settle.values()
    ):
        raise AdminError('"settle" must map a match id to the record ids that are one deal')
    return {str(match_id): list(ids) for match_id, ids in settle.items()}


async def approve(request: Request) -> JSONResponse:
    """Approve the first run's match (as `crmsync match --approve`), after settling the
    ambiguous groups named in `settle`: the chosen deals are one deal, the others separate.
    ---
    summary: Approve the first run's match
    requestBody:
      schema: Approval
    responses:
      200: {description: approved, schema: FirstRunState}
      409: {description: the match cannot be approved now, schema: Error}
    """
    choices = _choices(await body_of(request))
    engine = backend_of(request).engine
    done = await run_in_threadpool(decisions.approve, engine, choices, "the admin console")
    return JSONResponse(done)


async def waive(request: Request) -> JSONResponse:
    """Let creates go without matching anything (as `crmsync match --waive`).
    ---
    summary: Waive the first run's match
    responses:
      200: {description: waived, schema: FirstRunState}
    """
    engine = backend_of(request).engine
    return JSONResponse(await run_in_threadpool(decisions.waive, engine, "the admin console"))


async def deletes(request: Request) -> JSONResponse:
    """Apply (confirm) or drop (discard) the deletes the mass-delete guard held; either
    releases the system (as `crmsync deletes --confirm/--discard`).
    ---
    summary: Confirm or discard held deletes
    parameters:
      - {name: system, in: path, required: true, schema: {type: string}}
      - name: choice
        in: path
        required: true
        schema: {type: string, enum: [confirm, discard]}
    responses:
      200: {description: done, schema: SystemDone}
      404: {description: no such route, schema: Error}
    """
    system = system_param(request, request.path_params["system"])
    choice = request.path_params["choice"]
    if choice not in ("confirm", "discard"):
        raise AdminError(f"no route {request.url.path}", 404)
    engine = backend_of(request).engine
    assert system is not None
    return JSONResponse(await run_in_threadpool(decisions.held_deletes, engine, system, choice))


async def rebind(request: Request) -> JSONResponse:
    """Adopt a system's configured binding (as `crmsync rebind`): the same account moved
    (links kept), or `new_account` (old links set aside, the system read afresh).
    ---
    summary: Rebind a system
    parameters:
      - {name: system, in: path, required: true, schema: {type: string}}
    requestBody:
      schema: Rebind
    responses:
      200: {description: done, schema: SystemDone}
    """
    system = system_param(request, request.path_params["system"])
    new_account = bool((await body_of(request)).get("new_account"))
    engine = backend_of(request).engine
    assert system is not None
    return JSONResponse(await run_in_threadpool(decisions.rebind, engine, system, new_account))
