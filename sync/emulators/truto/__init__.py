"""Truto unified CRM emulator: ``/unified/crm`` over three integrated accounts.

Written from shared/seeds/001 (Truto "Create Opportunities", older doc) and shared/vendors.md §3,
with the unified-API conventions of Truto's own skills repository
(https://github.com/trutohq/truto-skills, ``skills/truto/references/unified-api.md``) and the
querying guide (https://truto.one/docs/api-reference/overview/querying).

Behind the one token (``Bearer truto-test-token``) sit three integrated accounts, one per
integration, with the fixed ids of :data:`sync.emulators.reference.TRUTO_ACCOUNTS`. Each keeps
its records in the *vendor's own shape* (what ``truto_response_format=raw`` and ``remote_data``
show) and maps them to the unified shape on the way out, as Truto does. Collections (for
``POST /_emulator/set``, which sets raw vendor fields): ``salesforce:opportunities``,
``salesforce:accounts``, ``salesforce:users`` and the same for ``capsule:`` and ``close:``.

Unified fields populated per integration (seed 001 lists which are *supported*; the rest is
our choice, and absent fields are omitted from ``unified`` answers as Truto omits unmapped ones):

============== ============================ ========================== ==========================
unified        salesforce (``Opportunity``) capsule (``opportunity``)  close (``opportunity``)
============== ============================ ========================== ==========================
id             ``Id`` (18 chars, ``006…``)  ``id`` (integer, as text)  ``id`` (``oppo_…``)
name           ``Name``                     ``name``                   ``lead_name`` (read only;
                                                                       Close opportunities have
                                                                       no name — a written name
                                                                       is dropped)
description    ``Description``              ``description``            ``note`` (read only: seed
                                                                       001 has no Close
                                                                       description write —
                                                                       send
                                                                       ``remote_data.note``)
amount         ``Amount``                   ``value.amount``           ``value`` / 100 (cents)
currency       ``CurrencyIsoCode`` (multi-  ``value.currency``         —
               currency orgs only)
owner{id}      ``OwnerId`` (``005…``)       ``owner.id`` (read only:   ``user_id``
                                            seed 001 has no Capsule
                                            owner write — send
                                            ``remote_data.owner``)
account{id}    ``AccountId`` (``001…``)     ``party.id``               ``lead_id``
stage{id,name} ``StageName`` (id = name)    ``milestone``              — (not in seed 001; set
                                                                       ``remote_data.status_id``)
status         open / won / lost from       open / won / lost from     ``status_type``
               ``IsClosed``, ``IsWon``      milestone completion       (``active`` → open)
close_date     ``CloseDate`` at 00:00 UTC   ``expectedCloseOn``        ``date_won`` at 00:00 UTC
last_activity  —                            —                          ``date_updated``
created_at     ``CreatedDate``              ``createdAt``              ``date_created``
updated_at     ``SystemModstamp``           ``updatedAt``              ``date_updated``
tags           —                            ``tags``                   —
custom_fields  ``*__c`` by API name         ``fields`` by field name   ``custom.cf_…`` by cf id
============== ============================ ========================== ==========================

Decisions where the docs leave a gap (the stricter choice, as issue 3 asks):

- Timestamps are ISO 8601 in UTC with milliseconds and ``Z`` (``2026-01-05T10:00:00.123Z``)
  whatever the upstream precision (Capsule has seconds, Close microseconds). Raw objects keep
  the vendor's format: Salesforce ``…T10:00:00.123+0000``, Capsule ``…T10:00:00Z``, Close
  ``…T10:00:00.123456+00:00``. Every write stamps a strictly later server time.
- A unified field seed 001 does not list as writable for the integration is dropped, not
  refused (Capsule ``owner``; Close ``name``, ``description``, ``stage``, ``currency``,
  ``tags``): Truto writes what its mapping maps. Seed 001 is the *create* page; the update
  page's per-integration lists were not captured, so updates are assumed to take the same
  fields. ``remote_data`` reaches the upstream as is, which checks what it knows: Capsule's
  ``owner`` (a user id, else 422) and ``probability`` (0..100, kept over the milestone's);
  Close's ``status_id`` (else 400), ``note``, ``confidence``.
- ``close_date`` must be an RFC 3339 date-time with an offset; Salesforce and Close store a date,
  so the UTC date of the value is kept and answered back as midnight UTC.
- Truto checks only the unified requirements of seed 001 (Close: ``account`` and ``owner``;
  Capsule: ``name`` and ``stage``; Salesforce: ``name``) → **400** ``Validation failed`` with
  ``details.failures``. The upstream then applies its own rules and its error passes through with
  its status in the envelope, its body under ``details.remote_error``: Salesforce also needs
  ``StageName`` and ``CloseDate`` (``REQUIRED_FIELD_MISSING``, 400), refuses a ``Name`` over
  120 characters (``STRING_TOO_LONG``, 400: "Opportunity Name: data value too large: <its
  first 40 characters> (max length=120)", on create and update alike) and rejects unknown stages,
  owners and accounts; Capsule needs a ``party`` (``account``) and answers 422; Close answers 400
  for an unknown lead or user.
- ``updated_at`` / ``created_at`` filters (``[gt]``, ``[gte]``, ``[lt]``, ``[lte]``, as Truto's SDK
  sends them) only where ``GET /opportunities/meta/list`` declares them in ``query_schema``:
  Salesforce and Close, not Capsule. Any filter or parameter the integration does not declare
  → 400. Salesforce filters go through SOQL, whose date-time literals have whole seconds, so the
  value is truncated to the second (a ``[gt]`` answer may include records of that same second —
  dedupe). Close compares at microseconds against ``date_updated``.
- Order: with an ``updated_at`` filter, ``updated_at`` ascending then id (a record changed during
  the scan shows up again later in the same scan, which an incremental client wants); otherwise
  ``created_at`` ascending then id, which changes under no update, so a full scan misses and
  repeats nothing while records are modified. ``sort_by`` is not offered.
- ``limit``: default 50, 1..100, else 400. ``next_cursor`` is opaque and carries the query it
  was made for (filters of the cursor's request win); ``prev_cursor`` is always null.
- ``truto_response_format``: ``unified`` (default: populated unified fields + ``remote_data``),
  ``raw`` (the vendor object alone), ``normalized`` (every unified field, null when the
  integration does not populate it, no ``remote_data``). ``truto_ignore_remote_data=true`` drops
  ``remote_data``; ``truto_exclude_fields[]=…`` (or comma-separated) drops top-level fields.
- Creates answer **201** with the object unwrapped; PATCH answers 200 with the object; DELETE
  answers 200 ``{"id": …}``.
- ``Idempotency-Key`` on POST/PATCH: the first answer (status and body) is stored per integrated
  account and replayed for the same key; the same key with a different method, path or body
  → **422** (as the IETF ``Idempotency-Key`` header draft specifies).
- Currency (vendors.md §8): Salesforce has ``CurrencyIsoCode`` only in multi-currency orgs.
  The emulated org is multi-currency (``SalesforceIntegration.multi_currency``; corporate
  currency USD): unified ``currency`` reads and writes ``CurrencyIsoCode`` (a 3-letter code,
  else 400 ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``), new deals default to the corporate
  currency. With ``multi_currency`` off the field does not exist: ``currency`` is omitted from
  answers and writing it is Salesforce's ``INVALID_FIELD`` (400).
- ``GET /accounts``, ``/users`` and ``/stages`` (Salesforce ``StageName`` picklist values with
  id = name, Capsule milestones, Close opportunity statuses) list the reference data, 1..100 a
  page like opportunities, in a fixed order.
- Rate limit (off unless enabled): a bucket per integrated account, 10 req/s, burst 20 — Truto
  normalizes the upstream limit into ``ratelimit-limit`` / ``ratelimit-remaining`` /
  ``ratelimit-reset`` (seconds until reset) on every answer; 429 carries the error envelope.
"""

from sync.emulators.truto.app import TrutoEmulator
from sync.emulators.truto.common import TOKEN

__all__ = ["TOKEN", "TrutoEmulator"]
