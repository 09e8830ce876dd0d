"""The operators' console: server-rendered pages on the admin API's own operations, signed in
with the admin token. Pages read through :mod:`sync.engine.operations` and
:mod:`sync.admin.views`; every button posts to the documented JSON API (with the session's
CSRF token), so the console can do nothing the API cannot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from sync.admin import views
from sync.admin.api import backend_of, system_param
from sync.admin.auth import COOKIE, clear_cookie, set_cookie
from sync.admin.html import badge, e, link, page, table, when
from sync.admin.limits import int_param
from sync.engine import budget, operations

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}


def csrf_of(request: Request) -> str | None:
    session = getattr(request.state, "session", None)
    return session.csrf if session is not None else None


#: no page may be framed (a one-click action under another site's page), and none runs a script
#: or loads anything that is not the console's own
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(request: Request, title: str, body: str, status: int = 200) -> HTMLResponse:
    html = page(title, body, path=request.url.path, csrf=csrf_of(request))
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name])


# --------------------------------------------------------------------------- sign-in


def _login_form(message: str = "") -> str:
    alert = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    return (
        f'{alert}<form method="post" action="/console/login" class="login">'
        '<label for="token">Admin token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" '
        "required autofocus>"
        '<p class="hint">The value of <code>CRMSYNC_ADMIN_TOKEN</code> of this admin process. '
        "It is sent once, in this form's body; the console then keeps a session cookie.</p>"
        '<button type="submit">Sign in</button></form>'
    )


async def login(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "Sign in", _login_form())
    raw = (await request.body()).decode("utf-8", "replace")
    token = (parse_qs(raw).get("token") or [""])[0]
    sessions = request.app.state.sessions
    if not sessions.token_ok(token):
        return render(request, "Sign in", _login_form("That is not the admin token."), 401)
    response = RedirectResponse("/console", status_code=303)
    set_cookie(response, request, sessions.issue())
    return response


async def logout(request: Request) -> Response:
    request.app.state.sessions.end(request.cookies.get(COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    clear_cookie(response, request)
    return response


def home(request: Request) -> Response:
    return RedirectResponse("/console", status_code=303)


# --------------------------------------------------------------------------- overview


def overview(request: Request) -> HTMLResponse:
    body = (
        '<p class="hint">Updates every two seconds, without reloading. Lag: time since the '
        "last poll. API budget left: what the vendor's rate-limit headers said remains of its "
        "allowance at the last poll (&ldquo;not reported&rdquo;: the vendor sends none).</p>"
        '<div data-refresh="/console/fragments/overview" data-every="2000" aria-live="off">'
        f"{overview_fragment_html(request)}</div>"
    )
    return render(request, "Overview", body)


def overview_fragment(request: Request) -> HTMLResponse:
    return HTMLResponse(overview_fragment_html(request), headers=PAGE_HEADERS)


def overview_fragment_html(request: Request) -> str:
    engine = backend_of(request).engine
    health = operations.system_health(engine)
    queued = views.outbox_states(engine)
    waiting = views.waiting_count(engine)
    deals = views.deals_per_system(engine)
    rows = []
    for row in health:
        states = queued.get(row["system"], {})
        held = link("/console/waiting", f"held ({row['held']}): see why") if row["held"] else "no"
        rows.append(
            [
                f'<th scope="row">{e(row["system"])}</th>',
                badge(row["health"]),
                str(deals.get(row["system"], 0)),
                when(row["last_poll_at"]),
                e(f"{row['lag_seconds']:.0f} s" if row["lag_seconds"] is not None else None),
                when(row["cursor"]),
                str(states.get("pending", 0)),
                str(states.get("in_flight", 0)),
                str(states.get("retry", 0)),
                link(f"/console/conflicts?system={row['system']}", row["conflicts"]),
                link("/console/deadletters", row["dead_letters"]),
                e(row["healed"]) if row["healed"] is not None else "none yet",
                held,
                e(budget.describe(row["budget"]) or "not reported"),
            ]
        )
    headers = (
        "system", "health", "deals", "last poll", "lag", "cursor", "pending", "in flight",
        "waiting retry", "open conflicts", "dead letters", "last reconcile healed", "held",
        "API budget left",
    )  # fmt: skip
    systems = table(headers, rows, caption="Systems", empty="No system configured.")
    notice = (
        f'<p class="notice">{waiting} thing(s) wait for a person: '
        '<a href="/console/waiting">see what and why</a>.</p>'
        if waiting
        else '<p class="ok">Nothing waits for a person.</p>'
    )
    return notice + systems + _runs_table(operations.last_runs(engine, 8), "Latest runs")


def _runs_table(found: list[dict[str, Any]], caption: str) -> str:
    rows = [
        [
            link(f"/console/runs/{run['id']}", run["id"]),
            e(run["kind"]),
            e(run["system"] or "all"),
            f'<span class="status {e(run["status"])}">{e(run["status"])}</span>',
            when(run["started_at"]),
            when(run["finished_at"]),
            e(_counts(run["counts"])),
            e(run["error"]),
        ]
        for run in found
    ]
    headers = ("run", "kind", "system", "status", "started", "finished", "counts", "error")
    return table(headers, rows, caption=caption, empty="No runs yet.")


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counts.items()) if value) or "—"


# --------------------------------------------------------------------------- runs


def runs(request: Request) -> HTMLResponse:
    engine = backend_of(request).engine
    params = request.query_params
    system = system_param(request, params.get("system"))
    kind = params.get("kind") or None
    limit = int_param(params, "limit", 50, low=1, high=500)
    found = views.runs(engine, system, kind, limit)
    systems = "".join(
        f'<option value="{e(name)}"{" selected" if name == system else ""}>{e(name)}</option>'
        for name in engine.systems
    )
    kinds = "".join(
        f'<option value="{k}"{" selected" if k == kind else ""}>{k}</option>'
        for k in ("poll", "drain", "cycle", "resync", "reconcile")
    )
    form = (
        '<form method="get" class="filters"><label for="f-system">System</label>'
        f'<select id="f-system" name="system"><option value="">all</option>{systems}</select>'
        '<label for="f-kind">Kind</label>'
        f'<select id="f-kind" name="kind"><option value="">all</option>{kinds}</select>'
        '<button type="submit">Filter</button></form>'
    )
    return render(request, "Runs", form + _runs_table(found, "Runs, newest first"))


def run_detail(request: Request) -> HTMLResponse:
    found = views.run_detail(backend_of(request).engine, request.path_params["run_id"])
    if found is None:
        return render(request, "No such run", "<p>No run has this id.</p>", 404)
    summary = _runs_table([found], "The run")
    rows = [
        [
            link(f"/console/deals/{entry['record_id']}", entry["record_id"]),
            when(entry["at"]),
            e(entry["system"]),
            e(entry["action"]),
            e(entry["field"]),
            e(entry["reason"]),
        ]
        for entry in found["touched"]
    ]
    touched = table(
        ("deal", "at", "system", "action", "field", "why"),
        rows,
        caption="Records it touched",
        empty="This run wrote nothing to any deal's journal.",
    )
    return render(request, f"Run {found['id']}", summary + touched)
