"""Close (``/api/v1``) emulator: opportunities, their reference data and the event log.

Written from shared/vendors.md §2, shared/seeds/002 (old developer.close.com opportunity page),
shared/seeds/004 (new Fern "Create an opportunity" page) and shared/specs/close-openapi.yml.
Docs: https://developer.close.com/api/resources/opportunities ,
https://developer.close.com/api/overview/pagination ,
https://developer.close.com/topics/rate-limits , https://developer.close.com/resources/event-log .

What the docs say and we do:

- Auth: HTTP Basic with the API key as username and an *empty* password, or ``Bearer <key>``.
- ``value`` is integer cents, ``value_formatted`` ``"$3,000"``, ``value_currency`` the org's USD;
  ``confidence`` int 0–100; ``expected_value = value × confidence / 100``; monthly values × 12
  in ``annualized_value``.
- ``date_won`` is a date in responses, accepts a datetime in requests, is set to today (honouring
  ``x-tz-offset``) when the status becomes a won-type one and it is unset, and is not cleared when
  the status reverts.
- ``status_id`` + ``pipeline_id`` must agree (400); pipeline only → its first status; neither →
  the org's first status. A create without ``lead_id`` creates a new lead (name null, shown as
  "Untitled") — seed 004.
- PUT acts as PATCH. ``custom.cf_…`` keys are flat on the object; null unsets; ``.add`` /
  ``.remove`` on PUT for multi-value fields; the deprecated ``custom.FIELD_NAME`` syntax is refused.
- List: ``_skip`` / ``_limit`` (default 100) with ``has_more``, ``total_results`` and the value
  aggregates of seed 002; ``_order_by`` on the documented fields, ``-`` for descending.
- Event log: ``{data, cursor_next, cursor_previous}``, latest first, ``_cursor`` pages,
  ``_limit`` capped at and defaulting to 50, no ``_skip``, only the documented filter
  combinations, 30 days of retention; deletes have ``data: null``.
- Errors: 400 ``{"errors": [...], "field-errors": {...}}``; 429
  ``{"error": {"rate_reset": <float s>, ...}}`` plus ``Retry-After``; ``ratelimit: limit=N,
  remaining=M, reset=S`` on every answer while rate limiting is on.

Where the docs leave a gap we chose the stricter behaviour:

- Max ``_limit`` is 100 for opportunities and leads (docs: "varies per resource"); max ``_skip``
  is 10,000 ("there is a maximum _skip"); both answered 400. Negative or non-integer → 400.
- Unknown body keys → 400 (the split spec's ``additionalProperties: false``), also read-only ones
  (``date_updated``, ``lead_name``, …); ``custom_fields`` (dict syntax, deprecated) and
  ``attachments`` are refused too. ``date_created`` / ``created_by`` only on create.
- Unknown query parameters → 400, and so are documented ones the emulator does not implement
  (``query`` on opportunities, ``lead_query``, ``lead_saved_search_id``, ``_group_by``): silently
  ignoring a filter would return wrong data, which is worse than a loud refusal.
- ``value`` must be a JSON integer (``300.0`` → 400); ``confidence`` an integer 0..100;
  ``user_id`` / ``lead_id`` must exist; there are no contacts, so ``contact_id`` must be null.
- POST/PUT need ``Content-Type: application/json`` (415 otherwise, a documented Close status).
- Basic auth with a non-empty password is refused. 401 body ``{"error": "..."}``; 404 body
  ``{"error": "<Object> matching query does not exist."}``.
- ``date_lost`` is stamped when the status becomes a lost-type one and cleared when it leaves it.
- Every successful PUT is a write: ``date_updated`` moves on and an ``updated`` event is logged.
- Lead search: ``GET /lead/?query=name:"Acme Corp"`` is a case-insensitive *phrase* match
  (``name:"Acme"`` also finds "Acme Corp"), bare words must all occur in the name — a connector
  must compare names exactly itself.
- Events are not consolidated (each write is its own event). Seeded opportunities predate the
  log: only writes through the API (and their deletes) appear in it.
- The default list order is ``-date_created`` (ties by id); ``_order_by`` ties are broken by id
  too, nulls placed as PostgreSQL does. Paths need Close's trailing slash (no redirect).
- ``GET /organization/{id}/`` (id from ``GET /me/``'s ``organizations``) answers the
  organization with its ``currency`` (USD), which every opportunity's ``value_currency``
  repeats; ``PUT`` changes ``name`` and ``currency`` (spec: "Update an organization's name,
  currency, …"; the response schema is undocumented, so the body is our choice).
- The API key belongs to the first reference user: new opportunities default to that
  ``user_id``, and it is ``created_by`` / ``updated_by`` of every write; ``GET /me/`` returns it.
- The Tags custom field accepts multiple values (a list of strings) so ``.add`` / ``.remove``
  have a field to act on; the other two are single text values.
- A second pipeline "Renewals" (three statuses) exists next to reference ``CLOSE_PIPELINE`` so
  status/pipeline agreement is observable; seeded opportunities only use "Sales".
- Rate limits: 20 requests/s per endpoint group (the observed ``limit=160`` per 8 s window of
  vendors.md §2.4), burst 20, groups ``opportunity_read``, ``opportunity_write``, ``lead``,
  ``event`` and ``other``; ``reset`` is whole seconds until the bucket is full again.
"""

from sync.emulators.close.app import CloseEmulator
from sync.emulators.close.common import API_KEY, MAX_SKIP

__all__ = ["API_KEY", "MAX_SKIP", "CloseEmulator"]
