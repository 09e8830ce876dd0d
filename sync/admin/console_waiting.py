"""The console's "waiting for you" page: the first run's match, systems held by the mass-delete
guard or a changed binding, and deals parked for their currency or a reference — each with why
it waits and what each choice will do."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from sync.admin import views
from sync.admin.api import backend_of
from sync.admin.console import render
from sync.admin.html import button, e, link, table, when

FIRST_RUN_SAYS = {
    "unread": "Not every system has been read yet; the match waits for every first read.",
    "review": "Two or more systems already held deals. Nothing is created in any of them "
    "until you approve this match (or waive it).",
    "open": "At most one system held deals: nothing to match.",
    "approved": "Approved",
    "automatic": "Applied automatically (sync.first_run: automatic).",
    "waived": "Waived",
}


def waiting(request: Request) -> HTMLResponse:
    found = views.waiting(backend_of(request).engine)
    body = _first_run(found["first_run"]) + _held(found["held_systems"])
    body += _parked(found["parked"])
    return render(request, "Waiting for you", body)


def _first_run(gate: dict[str, Any]) -> str:
    says = FIRST_RUN_SAYS.get(gate["state"], "")
    if gate["decided_by"]:
        says += f" by {gate['decided_by']}."
    read = ", ".join(f"{s} {n}" for s, n in sorted(gate["deals"].items())) or "none yet"
    out = (
        '<section aria-labelledby="fr"><h2 id="fr">First run</h2>'
        f"<p><b>{e(gate['state'])}</b> — {e(says)} Deals read: {e(read)}.</p>"
    )
    if "groups" not in gate:
        return out + "</section>"
    counts = gate["counts"]
    out += (
        f"<p>Rule: {e(gate['rule'])}. Matched {counts['matched']}, ambiguous "
        f"{counts['ambiguous']}, only in one system {counts['single']}, near-misses "
        f"{counts['near_misses']}.</p>"
    )
    ambiguous = [g for g in gate["groups"] if g["status"] == "ambiguous"]
    matched = [g for g in gate["groups"] if g["status"] != "ambiguous"]
    out += table(
        ("match", "deals", "why"),
        ([e(g["match_id"]), _deal_list(g["deals"]), e(g["why"])] for g in matched),
        caption="Proposed matches (linked when you approve)",
        empty="No deal is in two systems.",
    )
    for group in ambiguous:
        out += _ambiguous(group)
    if gate["near_misses"]:
        out += table(
            ("deal", "looks like", "why"),
            ([e(m["first"]), e(m["second"]), e(m["why"])] for m in gate["near_misses"]),
            caption="Near-misses (never linked; create a duplicate unless you fix a name)",
            empty="",
        )
    if gate["state"] != "review" and gate["held_for_review"]:
        out += (
            f'<div class="decide"><p>{gate["held_for_review"]} deal(s) of ambiguous groups are '
            "held, untouched, until a person settles them: tick the deals that are one deal "
            "above and apply. Nothing else changes.</p>"
            f"{button('Apply the settled groups', '/first-run/approve', collect='settle')}"
            "</div>"
        )
    if gate["state"] == "review":
        out += (
            '<div class="decide"><p><b>Approve</b>: link every proposed match, and each '
            "ambiguous group you settled above (the ticked deals become one deal, the others "
            "deals of their own); ambiguous groups you leave alone stay held, untouched. Then "
            "creates go out on the next cycle.</p>"
            f"{button('Approve the match', '/first-run/approve', collect='settle')}"
            "<p><b>Waive</b>: link nothing; every deal not yet linked is created in the "
            "systems that lack it — duplicates where a deal already existed there.</p>"
            f"{button('Waive the match', '/first-run/waive', confirm='Link nothing and create every unlinked deal everywhere?')}"  # noqa: E501
            "</div>"
        )
    return out + "</section>"


def _deal_list(deals: list[dict[str, Any]]) -> str:
    return "<ul>" + "".join(f"<li>{_deal_text(d)}</li>" for d in deals) + "</ul>"


def _deal_text(deal: dict[str, Any]) -> str:
    where = ", ".join(f"{c['system']} {c['external_id']}" for c in deal["copies"])
    money = f" · {deal['amount']} {deal['currency']}" if deal["amount"] is not None else ""
    return f"{e(deal['name'])} @ {e(deal['company'])}{e(money)} <small>({e(where)})</small>"


def _ambiguous(group: dict[str, Any]) -> str:
    match_id = group["match_id"]
    boxes = "".join(
        f'<li><input type="checkbox" id="g-{e(match_id)}-{i}" data-group="{e(match_id)}" '
        f'value="{e(deal["record_id"])}"><label for="g-{e(match_id)}-{i}">'
        f"{_deal_text(deal)}</label></li>"
        for i, deal in enumerate(group["deals"])
    )
    return (
        f'<fieldset class="ambiguous"><legend>Ambiguous {e(match_id)}</legend>'
        f"<p>{e(group['why'])}. Tick the deals that are one deal (one per system) to settle "
        "it when you approve; leave all unticked to keep them held.</p>"
        f'<ul class="plain">{boxes}</ul></fieldset>'
    )


def _held(held: list[dict[str, Any]]) -> str:
    out = '<section aria-labelledby="hs"><h2 id="hs">Held systems</h2>'
    if not held:
        return out + '<p class="ok">No system is held.</p></section>'
    for state in held:
        system = state["system"]
        out += f"<h3>{e(system)}</h3><p>{e(state['message'])}</p>"
        if state["held"] == "deletes":
            out += table(
                ("deal", "vendor id", "how", "seen"),
                (
                    [
                        link(f"/console/deals/{d['record_id']}", d["record_id"]),
                        e(d["external_id"]),
                        e(d["how"]),
                        when(d["detected_at"]),
                    ]
                    for d in state["deletes"]
                ),
                caption=f"{state['deletes_total']} held deletes in {system}",
                empty="No held delete.",
            )
            out += (
                '<div class="decide"><p><b>Confirm</b>: these deals really were deleted in '
                f"{e(system)}: delete them everywhere they are synced, and release {e(system)}."
                "</p>"
                f"{button(f'Confirm {system} deletes', f'/systems/{system}/deletes/confirm', confirm='Delete these deals everywhere?')}"  # noqa: E501
                f"<p><b>Discard</b>: they vanished by mistake (a filter, an outage): keep every "
                f"deal and its links, delete nothing, release {e(system)}.</p>"
                f"{button(f'Discard {system} deletes', f'/systems/{system}/deletes/discard')}"
                "</div>"
            )
        else:
            out += (
                '<div class="decide"><p><b>Same account, moved</b>: adopt the configured '
                "binding and keep every link.</p>"
                f"{button(f'Rebind {system} (same account)', f'/systems/{system}/rebind')}"
                "<p><b>A new account</b>: set the old account's links aside (restored if you "
                "bind back) and read the system afresh like a newly added one.</p>"
                f"{button(f'Rebind {system} (new account)', f'/systems/{system}/rebind', {'new_account': True}, confirm='Set the old links aside?')}"  # noqa: E501
                "</div>"
            )
    return out + "</section>"


def _parked(parked: list[dict[str, Any]]) -> str:
    rows = [
        [
            e(p["kind"]),
            link(f"/console/deals/{p['record_id']}", p["record_id"]) if p["record_id"] else "—",
            e(p["system"]),
            e(p["why"]),
        ]
        for p in parked
    ]
    intro = (
        '<section aria-labelledby="pk"><h2 id="pk">Parked deals</h2><p class="hint">A deal '
        "in a currency a system cannot hold is not written there (never with the figure "
        "unchanged): set <code>systems.NAME.currency.foreign: convert</code> with a rate, or "
        "change the deal's currency, then replay its dead letter. A deal waiting for a "
        "reference (an owner, a company) goes out once that exists.</p>"
    )
    body = table(
        ("why", "deal", "system", "message"), rows, caption="Parked", empty="Nothing is parked."
    )
    return intro + body + "</section>"
