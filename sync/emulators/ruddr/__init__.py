"""Ruddr workspace API emulator (``/api/workspace``).

Written from shared/seeds/000 (Ruddr "Create an opportunity",
https://docs.ruddr.io/api-reference/opportunities/create-an-opportunity) and shared/vendors.md §1
(pagination https://docs.ruddr.io/guides/pagination, errors https://docs.ruddr.io/guides/errors,
rate limits https://docs.ruddr.io/guides/rate-limits, conventions
https://docs.ruddr.io/guides/conventions).

Documented behaviour reproduced: Bearer auth with the documented 401 body; lists sorted by
``createdAt`` descending with ``startingAfter`` / ``endingBefore`` / ``limit`` (1-100, default 10)
and ``{"results", "hasMore"}``; full opportunity objects as in seed 000 (nested ``owner``,
``company{client}``, ``opportunityStage{statusId}``, ``opportunityPipeline``, ``weightedAmount``,
read-only ``salesforceId`` / ``hubspotId``); stamps in ISO 8601 UTC with milliseconds and ``Z``;
empty strings become null and an explicit null unsets; 20 req/s with a burst of 60 shared by
the workspace; 429 ``{"status": 429, "message": "Too many requests"}`` with no Retry-After.

Stricter behaviour where the docs leave a gap (each choice is deliberate):

- ``GET /opportunities`` accepts only ``startingAfter``, ``endingBefore`` and ``limit``: the list
  page was never found, so no filter is confirmed (vendors.md §1.2b). Any other query parameter
  (``modifiedAtOnAfter``, ``companyId``…) answers 400 rather than being silently ignored, so a
  connector cannot believe it filtered server-side.
- ``startingAfter`` / ``endingBefore`` must name an existing record of the list: a cursor whose
  record was deleted answers 400, so a scan racing a delete must restart.
- Both cursors at once, a ``limit`` outside 1..100 or not an integer: 400.
- Request bodies may only hold the documented create fields: unknown keys answer 400, and so
  does writing the read-only ``salesforceId`` / ``hubspotId`` (``"'salesforceId' is read-only"``).
- ``opportunityStageId`` defaults to the stage with the lowest probability *as documented*, among
  the workspace's active stages: with the reference stages that is "Closed Lost" (0.0). Clients
  must send a stage; the emulator does not guess a friendlier "first open stage".
- ``probability`` defaults to the chosen stage's probability on create; a PATCH that changes the
  stage leaves ``probability`` alone (clients must send both).
- Non-nullable response fields (``name``, ``companyId``, ``probability``, ``isActive``,
  ``currency``, ``opportunityStageId``) reject null / empty strings with 400.
- ``currency`` must be three upper-case letters; the workspace default is ``USD``.
- ``projects`` must reference existing projects; the seed has none, so any project id is 400.
- ``modifiedAt`` is strictly later than the record's previous ``modifiedAt`` at millisecond
  precision on every write (also on control-API ``set``, which models Ruddr's own integrations).
- ``weightedAmount`` = ``amount`` × ``probability`` rounded to cents; null without an amount.
- ``GET /companies/{id}`` and ``PATCH /companies/{id}`` (a rename) follow the opportunity
  family's conventions; a rename moves the deals' ``modifiedAt`` only with
  ``rename_touches_deals`` (undocumented).
- ``GET /companies`` additionally accepts ``name`` (exact match, the documented string-filter
  naming); ``GET /members`` accepts pagination only.
- ``DELETE`` answers 204 with an empty body; unknown routes answer 404 and other methods 405, both
  with the documented ``{"status", "message"}`` body.
"""

from sync.emulators.ruddr.app import RuddrEmulator
from sync.emulators.ruddr.common import DEFAULT_TOKEN

__all__ = ["DEFAULT_TOKEN", "RuddrEmulator"]
