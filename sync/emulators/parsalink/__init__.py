"""ParsaLink CRM API emulator (``/api``).

Written from shared/seeds/003 (https://docs.parsalink.io/api-reference/crm/opportunities) and
shared/vendors.md §6 (introduction https://docs.parsalink.io/api-reference/introduction,
authentication https://docs.parsalink.io/api-reference/authentication). ParsaLink runs Django +
DRF (vendors.md §6), so where its docs are silent the emulator behaves as DRF does by default.

Documented behaviour reproduced: Bearer auth with a workspace API key (``pk_…``) or a JWT from
``POST /api/auth/login/`` (access 1 h, refresh 30 d, refresh tokens rotate on use);
``GET/POST /opportunities/`` and ``GET/PATCH/DELETE /opportunities/{id}/`` answering 200 / 201 /
200 / 204; ``page`` / ``limit`` (max 100) / ``offset`` with ``{count, next, previous, results}``
and absolute ``next`` / ``previous`` URLs; the filters ``stage``, ``accountId``, ``assignedTo``,
``closeDateAfter``, ``closeDateBefore``, ``valueMin``, ``valueMax``, ``search``; the fixed stage
enum; ``probability`` an integer 0-100; ``accountName`` / ``assignedToName`` derived; 422 on
validation; ids ``opp_`` / ``acc_`` / ``usr_`` + ULID; stamps ``2025-03-15T09:30:00Z`` (seconds,
so several writes within one second share a stamp, as on the real API); 100 requests/minute
(Starter plan) with ``X-RateLimit-Reset`` as a Unix timestamp.

Test credentials: API key ``pk_test_parsalink``; every seeded user logs in with the password
``parsalink-demo``, including the demo user ``demo@parsalink.test``.

Stricter behaviour where the docs leave a gap (each choice is deliberate):

- The list returns the *summary* object of the documented list example (no ``closedDate``,
  ``lossReason``, ``assignedToName``, ``contactIds``, ``description``); only
  ``GET /opportunities/{id}/`` returns the full object ("Retrieve full details"). Pass
  ``full_list_objects=True`` to return full objects from lists.
- Ordering is not documented and cannot be chosen: lists come in ``createdAt`` ascending order
  (id tiebreak), which clients must not rely on; an ``ordering`` parameter is ignored.
- Unknown query parameters and unknown / read-only body fields are silently ignored (DRF), so a
  misspelt filter or field does nothing — clients must check what they get back.
- ``limit`` above 100 is clamped to 100 without an error (DRF ``max_page_size``), an invalid or
  non-positive ``limit`` falls back to the default page size of 20, an invalid ``offset`` to 0.
  A ``page`` that is not a positive integer or lies past the last page answers 404
  ``{"detail": "Invalid page."}`` (DRF). With both ``page`` and ``offset``, ``offset`` wins.
- ``closeDateAfter`` / ``closeDateBefore`` are exclusive (strictly after / before) and accept a
  date or an ISO 8601 date-time (its date is used); ``valueMin`` / ``valueMax`` are inclusive;
  records without a close date / value never match those filters. ``search`` matches every
  whitespace-separated term case-insensitively in the name. A ``stage``, ``accountId`` or
  ``assignedTo`` that names nothing answers 400 (django-filter choice validation).
- Validation errors answer 422 with DRF's field map plus DRF's generic ``detail``:
  ``{"detail": "Invalid input.", "name": ["This field is required."]}``. Malformed JSON is 400
  ``{"detail": "JSON parse error - …"}``.
- ``value`` must be a JSON number ≥ 0 with at most 2 decimals (no numeric strings);
  ``probability`` a JSON integer (``40.0`` is refused). ``name`` ≤ 255, ``source`` ≤ 50,
  ``lossReason`` ≤ 255 characters. Defaults: ``stage`` ``prospecting``, ``probability`` 0.
- ``closedDate`` is set to today (server clock, UTC) when a write moves the stage to
  ``closed_won`` / ``closed_lost`` without sending ``closedDate``, and cleared when a write moves
  it back to an open stage.
- The refresh endpoint answers ``{access, refresh}``: the docs show only ``access`` but also say
  the refresh token rotates, so the new refresh token must be returned. A used, expired or
  forged refresh token answers 401.
- 429 bodies are ``{"detail": "Request was throttled."}`` with the ``X-RateLimit-*`` headers and
  no ``Retry-After``. ``X-RateLimit-Limit`` is the window size, ``X-RateLimit-Remaining`` the
  requests left, ``X-RateLimit-Reset`` the wall-clock Unix second at which the window is full
  again (the emulator clock offset is not applied, since the limiter runs on real time).
- ``GET/PATCH /accounts/{id}/`` (a rename) as for opportunities; a rename moves the deals'
  ``updatedAt`` only with ``rename_touches_deals`` (undocumented).
- ``GET /accounts/`` accepts ``search`` (name) like the opportunity list; paths without the
  trailing slash answer 404; methods other than the documented ones answer 405.
"""

from sync.emulators.parsalink.app import ParsaLinkEmulator
from sync.emulators.parsalink.common import DEFAULT_API_KEY, DEMO_EMAIL, DEMO_PASSWORD

__all__ = ["DEFAULT_API_KEY", "DEMO_EMAIL", "DEMO_PASSWORD", "ParsaLinkEmulator"]
