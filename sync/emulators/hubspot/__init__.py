"""HubSpot CRM emulator (``https://api.hubapi.com``): deals, pipelines, owners, companies,
deal→company associations and the portal's details.

Written from shared/vendors.md §5 (with §5.8 paging and batches, §5.9 portal and currencies)
and HubSpot's own OpenAPI specs (shared/specs/hubspot-deals-v3.json, -pipelines-v3.json,
-owners-v3.json). Docs: https://developers.hubspot.com/docs/api/crm/deals ,
https://developers.hubspot.com/docs/api/crm/search ,
https://developers.hubspot.com/docs/api/usage-details .

What the docs say and we do:

- Auth: ``Authorization: Bearer <private app token>`` (``hubspot-test-token``); 401 with
  category ``INVALID_AUTHENTICATION``; a write without ``crm.objects.deals.write`` → 403
  ``MISSING_SCOPES``. ``POST /oauth/v2/private-apps/get/access-token-info`` lists the scopes.
- Deals at ``/crm/v3/objects/deals`` (the spec's ``/crm/v3/objects/0-3`` too): list (``limit``
  ≤ 100, default 10, ``after``, ``properties``, ``associations=companies``, ``archived``), get
  (``idProperty``, ``archived``), create (201; ``associations`` to companies with type 5
  or 341), PATCH, DELETE (204; then found only with ``archived=true``).
- Every property value is a string. Unknown properties (``PROPERTY_DOESNT_EXIST``) and read-only
  ones (``READ_ONLY_VALUE``) are refused with HubSpot's "Property values were not valid: [...]"
  400; so are values that are not numbers / dates / allowed options. ``""`` clears a property.
- ``hs_object_id``, ``createdate`` and ``hs_lastmodifieddate`` are HubSpot's (the last moves on
  every accepted write); ``closedate`` takes epoch ms or ISO 8601 and reads back as ISO;
  ``hs_deal_stage_probability`` (0..1), ``hs_is_closed`` and ``hs_is_closed_won`` derive from the
  stage's ``metadata``; ``dealstage`` must belong to ``pipeline`` (default ``default``);
  ``deal_currency_code`` must be a portal currency; ``hubspot_owner_id`` an owner.
- ``crmsync_id`` is a custom property with unique values, usable as ``idProperty`` on get,
  PATCH, batch read/update and upsert; a second deal with the same value → 409 ``CONFLICT``.
- Batches (``batch/read|create|update|upsert|archive``): at most 100 inputs (400 above);
  inputs are done one by one, and when any fails the answer is 207 with ``results`` and
  ``errors`` (``StandardError``, ``context.ids`` and ``context.objectWriteTraceId`` naming the
  input). Results carry the input's ``objectWriteTraceId``; upsert results ``new``.
- Search: ``filterGroups`` (≤ 5 groups, ≤ 10 filters a group, ≤ 25 in all; every operator of
  the spec), one sort, ``limit`` ≤ 200, ``after`` an offset; a query pages through at most
  10,000 results (``after`` ≥ 10,000 → 400); archived deals are never found. Search sees a
  write ``index_lag`` seconds (2 s) late: ``POST /_emulator/index_lag {"seconds": 0}`` turns
  the lag off.
- Limits (while rate limiting is on): a ten-secondly budget of 190 (Professional private app)
  and a daily one of 650,000, reported on every answer in ``X-HubSpot-RateLimit-Max``,
  ``-Remaining``, ``-Interval-Milliseconds``, ``-Daily``, ``-Daily-Remaining``, ``-Secondly``
  and ``-Secondly-Remaining``; search has its own 5 requests/s and sends none of them. A 429's
  body names ``policyName`` ``TEN_SECONDLY_ROLLING``, ``SECONDLY`` (search) or ``DAILY``.
- ``GET /crm/v3/pipelines/deals`` (stages with ``metadata.probability`` and ``isClosed`` as
  strings), ``GET /crm/v3/owners`` (``email`` filter, paged), companies at
  ``/crm/v3/objects/companies`` (list, get, create, ``PATCH`` one), associations through v4
  (``/crm/v4/objects/deals/{id}/associations/companies``, ``…/default/companies/{to}``),
  ``GET /account-info/v3/details`` (``portalId``, ``companyCurrency``, ``additionalCurrencies``).

Where the docs leave a gap we chose the stricter behaviour:

- A requested property that has no value is left out of ``properties`` (the spec's values are
  strings; null does not validate), so a reader must treat a missing property as empty.
- Changing a deal's associations does not move ``hs_lastmodifieddate`` (the docs do not say it
  does): a reader cannot rely on the stamp to see a company change.
- ``limit`` over the maximum is refused (400) rather than silently capped; free-text ``query``
  in search is refused (not emulated).
- Batch create validates each input on its own (HubSpot may refuse the whole batch instead):
  the 207 path is the one a client must handle anyway.

Control API (besides the common one): ``POST /_emulator/index_lag``, ``POST
/_emulator/account`` (``companyCurrency``, ``additionalCurrencies``, ``portalId``, ``scopes``,
``dailyLimit``, ``dailyUsed``). ``POST /_emulator/set`` with collection ``deals`` sets
properties behind the API's back.
"""

from sync.emulators.hubspot.app import HubSpotEmulator
from sync.emulators.hubspot.common import TOKEN

__all__ = ["TOKEN", "HubSpotEmulator"]
