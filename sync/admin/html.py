"""The console's HTML, built with :func:`html.escape` on every value that came from a store or
a vendor (a deal's name is a vendor's text: it never becomes markup)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

NAV = (
    ("/console", "Overview"),
    ("/console/waiting", "Waiting for you"),
    ("/console/runs", "Runs"),
    ("/console/conflicts", "Conflicts"),
    ("/console/deadletters", "Dead letters"),
    ("/console/deals", "Deals"),
    ("/console/actions", "Actions"),
    ("/docs", "API"),
)


def e(value: Any) -> str:
    """A value as escaped text (None as an em dash)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, (dict, list)):
        return escape(json.dumps(value, sort_keys=True, default=str))
    return escape(str(value))


def page(title: str, body: str, *, path: str, csrf: str | None) -> str:
    """A whole console page: the navigation, ``body``, the script, the CSRF token."""
    current = ' aria-current="page"'
    links = "".join(
        f'<li><a href="{href}"{current if href == path else ""}>{label}</a></li>'
        for href, label in NAV
    )
    signout = (
        '<form method="post" action="/console/logout" class="signout">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button type="submit">Sign out</button></form>'
        if csrf
        else ""
    )
    meta = f'<meta name="csrf-token" content="{escape(csrf)}">' if csrf else ""
    # signed out, the pages are out of reach: show the way in only
    nav = f'<nav aria-label="Console"><ul>{links}</ul></nav>' if csrf else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{escape(title)} · crmsync</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<script src="/console/static/console.js" defer></script></head><body>'
        '<header><span class="brand">crmsync</span>'
        f"{nav}{signout}</header>"
        f'<main id="main"><h1>{escape(title)}</h1>{body}</main>'
        '<div id="toast" role="status" aria-live="polite"></div></body></html>'
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    caption: str,
    empty: str,
    raw_head: Sequence[str] | None = None,
) -> str:
    """A table of already-escaped cells; ``empty`` when there are no rows. ``raw_head``:
    header cells already as markup (else ``headers`` are escaped)."""
    body = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{escape(empty)}</p>'
    cells = raw_head if raw_head is not None else [escape(h) for h in headers]
    head = "".join(f'<th scope="col">{h}</th>' for h in cells)
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _cell(cell: str) -> str:
    """A cell; one given as a ``<th scope="row">`` (a row's header) stays one."""
    return cell if cell.startswith("<th") else f"<td>{cell}</td>"


def button(label: str, action: str, body: dict[str, Any] | None = None, **extra: str) -> str:
    """A button the script turns into a POST of ``body`` (JSON) to ``action``, with the CSRF
    token; ``confirm`` asks first, ``follow`` shows a started run's progress."""
    attrs = "".join(f' data-{key}="{escape(value)}"' for key, value in extra.items())
    payload = escape(json.dumps(body or {}))
    return (
        f'<button type="button" class="act" data-action="{escape(action)}" '
        f'data-body="{payload}"{attrs}>{escape(label)}</button>'
    )


def badge(health: str | None) -> str:
    kind = {"ok": "good", "stale": "warn", "never": "warn", "error": "bad"}.get(health or "", "")
    return f'<span class="badge {kind}">{e(health)}</span>'


def when(iso: str | None) -> str:
    """A timestamp to the second, the exact ISO value kept in ``datetime``."""
    if not iso:
        return "—"
    shown = iso.replace("T", " ")[:19]
    return f'<time datetime="{escape(iso)}">{escape(shown)}</time>'


def link(href: str, text: Any) -> str:
    return f'<a href="{escape(href)}">{e(text)}</a>'


def field(value: Any) -> str:
    """A deal's field value as short text (None as an em dash)."""
    return e(value)
