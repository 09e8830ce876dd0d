"""The console's working pages: conflicts, dead letters, a deal, actions, and what waits for a
person. Each choice says what it will do before it is taken; each button posts to the API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from sync.admin import views
from sync.admin.api import backend_of
from sync.admin.console import render
from sync.admin.html import button, e, link, table, when
from sync.engine import operations


def conflicts(request: Request) -> HTMLResponse:
    engine = backend_of(request).engine
    system = request.query_params.get("system")
    found = operations.list_conflicts(engine, "open", limit=200)
    if system:
        found = [c for c in found if system in (c["ours_system"], c["theirs_system"])]
    rows = []
    for c in found:
        choices = [
            button(f"Take {side}'s value", f"/conflicts/{c['id']}/resolve", {"take": side})
            for side in (c["theirs_system"], c["ours_system"])
            if side
        ]
        choices.append(button("Keep ours", f"/conflicts/{c['id']}/resolve", {"take": "ours"}))
        rows.append(
            [
                link(f"/console/deals/{c['record_id']}", c["record_id"]),
                e(c["field"]),
                f"{e(c['ours'])} <small>({e(c['ours_system'])})</small>",
                f"{e(c['theirs'])} <small>({e(c['theirs_system'])})</small>",
                e(c["reason"]),
                '<div class="choices">' + "".join(choices) + "</div>",
            ]
        )
    intro = (
        '<p class="hint">A <code>manual</code> field changed in two systems since the last '
        "sync; it is held (not pushed) until you choose. The value you take is written to the "
        "deal and pushed to every system whose copy differs.</p>"
    )
    body = table(
        ("deal", "field", "ours (from)", "theirs (from)", "why", "resolve"),
        rows,
        caption="Open conflicts",
        empty="No open conflict.",
    )
    return render(request, "Conflicts", intro + body)


def deadletters(request: Request) -> HTMLResponse:
    found = operations.list_dead_letters(backend_of(request).engine, "open", limit=200)
    rows = [
        [
            e(d["id"]),
            e(d["system"]),
            e(f"{d['direction']} {d['op']}"),
            link(f"/console/deals/{d['record_id']}", d["record_id"]) if d["record_id"] else "—",
            f'<span class="vendor">{e(d["error"])}</span>',
            f"<details><summary>payload</summary><pre>{e(d['payload'])}</pre></details>",
            button("Replay", f"/deadletters/{d['id']}/replay"),
        ]
        for d in found
    ]
    intro = (
        '<p class="hint">What could not be synced, with the vendor\'s own words. Replaying an '
        "outbound letter queues its push again; an inbound one re-reads its system. Fix the "
        "cause first (the message says what the vendor refused).</p>"
    )
    every = button("Replay all", "/deadletters/replay", confirm="Replay every open dead letter?")
    body = table(
        ("id", "system", "what", "deal", "vendor's message", "payload", ""),
        rows,
        caption="Open dead letters",
        empty="No open dead letter.",
    )
    return render(request, "Dead letters", intro + (every if found else "") + body)


# --------------------------------------------------------------------------- deals


def deals(request: Request) -> HTMLResponse:
    text = request.query_params.get("q", "")
    form = (
        '<form method="get" class="filters" role="search"><label for="q">Vendor id, record id '
        f'or name</label><input id="q" name="q" value="{e(text) if text else ""}" required>'
        '<button type="submit">Find</button></form>'
    )
    if not text.strip():
        return render(request, "Deals", form)
    found = views.search_deals(backend_of(request).engine, text)
    rows = [
        [
            link(f"/console/deals/{d['record_id']}", d["name"] or d["record_id"]),
            e(d["company"]),
            e(", ".join(f"{s} {x}" for s, x in sorted(d["copies"].items()))),
        ]
        for d in found
    ]
    results = table(
        ("deal", "company", "copies"), rows, caption="Found", empty=f"No deal matches {text!r}."
    )
    return render(request, "Deals", form + results)


def deal(request: Request) -> HTMLResponse:
    from sync.engine.operations import AdminError

    try:
        found = views.deal(backend_of(request).engine, request.path_params["record_id"])
    except AdminError as exc:
        return render(request, "No such deal", f"<p>{e(str(exc))}</p>", exc.status)
    ours, copies = found["fields"], found["copies"]
    names = sorted(set(ours) | {name for c in copies for name in c["fields"]})
    head = ["field", "ours"] + [f"{c['system']} {c['external_id']}" for c in copies]
    rows_head = ["field", "ours"] + [
        f"{e(c['system'])}<br><small>{e(c['external_id'])}</small>" for c in copies
    ]
    rows = []
    for name in names:
        cells = [f'<th scope="row">{e(name)}</th>', e(ours.get(name))]
        for c in copies:
            value = e(c["fields"].get(name))
            if name in c["differs"]:
                value = f'<mark class="diff" title="differs from ours">≠ {value}</mark>'
            cells.append(value)
        rows.append(cells)
    side = table(
        head, rows, caption="Ours and each system's copy", empty="No field.", raw_head=rows_head
    )
    held = (
        f'<p class="notice">Held by an open conflict: {e(", ".join(found["held"]))}</p>'
        if found["held"]
        else ""
    )
    timeline = "".join(
        f"<li>{when(j['at'])} "
        f"<b>{e(j['action'])}</b> {e(j['field']) if j['field'] else ''} "
        f'<span class="tag">{e(j["system"] or "crmsync")}</span>'
        f'{_change(j)}<span class="why">{e(j["reason"])}</span></li>'
        for j in found["journal"]
    )
    body = (
        f"<p>Record <code>{e(found['record_id'])}</code>. Highlighted (≠): a value this "
        "system's copy does not hold yet — a push owed, a conflict, or a value it cannot "
        "hold. Ids a system does not keep and values only the vendor decides are not "
        "highlighted.</p>"
        f"{held}{side}<h2>Timeline</h2>"
        f'<ol class="timeline">{timeline or "<li>No journal entry.</li>"}</ol>'
    )
    return render(request, str(ours.get("name") or found["record_id"]), body)


def _change(entry: dict[str, Any]) -> str:
    """What changed: old → new for a field, the whole deal folded away for a create."""
    old, new = entry["old"], entry["new"]
    if old is None and new is None:
        return " "
    if isinstance(new, dict) and old is None:
        return f" <details><summary>fields</summary><pre>{e(new)}</pre></details> "
    return f' <span class="change">{e(old)} → {e(new)}</span> '


# --------------------------------------------------------------------------- actions


def actions(request: Request) -> HTMLResponse:
    systems = "".join(
        f'<option value="{e(n)}">{e(n)}</option>' for n in backend_of(request).engine.systems
    )
    body = (
        '<form id="resync-form" class="action">'
        "<h2>Resync</h2><p>Re-read a system (or all) and push the differences. Incremental "
        "reads what changed since the cursor; full re-reads everything and finds deletes.</p>"
        f'<label for="a-system">System</label><select id="a-system" name="system">'
        f'<option value="">all systems</option>{systems}</select>'
        '<label><input type="checkbox" name="full"> full</label>'
        f"{button('Start resync', '/resync', form='resync-form', follow='progress')}</form>"
        '<form id="reconcile-form" class="action">'
        "<h2>Reconcile</h2><p>Read every deal and heal what the incremental path missed; a "
        "healthy installation heals nothing.</p>"
        f'<label for="r-system">System</label><select id="r-system" name="system">'
        f'<option value="">all systems</option>{systems}</select>'
        f"{button('Start reconcile', '/reconcile', form='reconcile-form', follow='progress')}"
        "</form>"
        '<section aria-labelledby="progress-h"><h2 id="progress-h">Progress</h2>'
        '<div id="progress" role="status" aria-live="polite">Nothing started yet.</div></section>'
    )
    return render(request, "Actions", body)
