"""Salesforce REST (``/services``) emulator: the Opportunity sObject of one org, and its OAuth.

Written from shared/vendors.md §4 (incl. §4.8 sObject Collections and OAuth, §4.9 org identity
and currencies) and Salesforce's REST API and SOQL guides
(https://developer.salesforce.com/docs/platform/api-rest/guide/ ,
https://developer.salesforce.com/docs/platform/salesforce-soql-sosl/guide/). Shares no code
with the Truto emulator's Salesforce integration (a different surface) or with the connector.

What the docs say and we do:

- Auth: ``Authorization: Bearer <session>``; the fixed session ``sf-test-token`` never expires.
  ``POST /services/oauth2/token`` (form, ``grant_type=client_credentials`` with ``client_id`` /
  ``client_secret`` in the form or as HTTP Basic) answers ``access_token``, ``instance_url``,
  ``id``, ``token_type``, ``issued_at``, ``signature``, ``scope``; bad clients get
  ``{"error": "invalid_client", "error_description"}``. Sessions expire (2 h by the emulator's
  clock, or at once through the control API) and then answer 401
  ``[{"errorCode": "INVALID_SESSION_ID"}]``.
- Paths ``/services/data/vNN.0/...`` (v20.0–v62.0; collections from v42, collection upsert
  from v46). Errors are a JSON *array* ``[{"message", "errorCode", "fields"}]``.
- ``query`` / ``queryAll`` run the SOQL subset of ``soql`` (SELECT, FROM Opportunity, Account,
  User, OpportunityStage, Organization, CurrencyType; WHERE with = != < <= > >= IN NOT IN AND
  OR NOT and unquoted date/datetime literals; ORDER BY; LIMIT; OFFSET; COUNT()). Pages: up to
  ``Sforce-Query-Options: batchSize`` rows (200..2000, default 2000), ``nextRecordsUrl`` on a
  snapshot taken when the query ran; ``queryAll`` also returns deleted rows (``IsDeleted``).
  Syntax errors answer 400 ``MALFORMED_QUERY``, unknown fields and mistyped values
  ``INVALID_FIELD``, unknown objects ``INVALID_TYPE``.
- ``sobjects/Opportunity``: create 201 ``{id, success, errors}``; get (``?fields=``); PATCH
  204; DELETE 204 (the row stays in the recycle bin for ``queryAll``, with ``IsDeleted`` and
  a new ``SystemModstamp``, and in the delete log; a get or update of it is 404
  ``ENTITY_IS_DELETED``). ``PATCH sobjects/Opportunity/Crmsync_Id__c/{value}`` upserts: 201
  created, 200 with ``{id, success, errors, created}`` updated (204 before v46), 300 with the
  matching records' URLs when several match (the External ID field is not unique).
  ``updated/`` and ``deleted/`` are the replication windows of ``windows``.
- ``sobjects/Account``: POST creates an account (``Name``), PATCH ``/{id}`` renames it (204;
  opportunities' stamps move only with ``rename_touches_deals``, which Salesforce does not).
- ``composite/sobjects``: POST creates, PATCH updates (records carry ``attributes.type`` and
  ``id``), ``PATCH composite/sobjects/Opportunity/Crmsync_Id__c`` upserts, DELETE ``?ids=``
  deletes; at most 200 records, one SaveResult per record in request order; with
  ``allOrNone`` one failure rolls every record back (``ALL_OR_NONE_OPERATION_ROLLED_BACK``).
  ``GET composite/sobjects/Opportunity?ids=&fields=`` reads up to 2,000.
- Opportunity: ``Name`` (≤120), ``StageName`` (restricted picklist of ``OpportunityStage``) and
  ``CloseDate`` (a date) are required; ``Probability`` (0–100) takes the stage's default on
  create and whenever ``StageName`` changes without a ``Probability`` in the same write;
  ``IsClosed``, ``IsWon``, ``ForecastCategoryName`` and ``ExpectedRevenue`` are derived and
  read-only (writing them is ``INVALID_FIELD_FOR_INSERT_UPDATE``); ``Amount`` is major units
  (2 decimals); ``AccountId`` / ``OwnerId`` must name existing records (``MALFORMED_ID`` /
  ``INVALID_CROSS_REFERENCE_KEY``); ``OwnerId`` defaults to the running user (the first user);
  ``SystemModstamp`` and ``LastModifiedDate`` move on every write, kept to the millisecond and
  written ``2013-05-08T21:20:00.000+0000``; ids are 18 characters, ``006`` for opportunities.
- The org is not the one behind Truto's Salesforce account (``reference``): its own org id,
  accounts, users and opportunities, ids on its own pod, none of Ruddr's ``salesforceId``
  deals — until ``POST /_emulator/salesforce {"shared_deals": true}`` seeds them (a world where
  Ruddr's integration is connected to this org); ``{"organization_id": …}`` serves another id.
- ``Organization`` has the org id (``00D…``) and ``DefaultCurrencyIsoCode`` (USD). The org is
  single-currency until ``POST /_emulator/salesforce {"multi_currency": true}``: then every
  opportunity carries ``CurrencyIsoCode`` (a restricted picklist of the active currencies,
  existing ones get the corporate currency) and ``CurrencyType`` is queryable.
- Limits: a daily allocation (100,000 requests over a rolling 24 hours) counted per request
  under ``/services/data`` (a collection request counts once; the token endpoint does not
  count); every such answer carries ``Sforce-Limit-Info: api-usage=N/M``; when spent, 403
  ``REQUEST_LIMIT_EXCEEDED``. ``/_emulator/salesforce`` sets ``api_limit`` and ``api_used``.
- Get Updated keeps 30 days, the delete log 15 days (``purge_deleted`` through the control API
  empties it now, moving ``earliestDateAvailable``).

Where the docs leave a gap we chose: string comparisons and field names are case-insensitive
(as in SOQL); mixing AND and OR without parentheses is a MALFORMED_QUERY; nulls sort first
unless ``NULLS LAST``; rows without ORDER BY come in creation order; an unknown body field is
``INVALID_FIELD``.
"""

from sync.emulators.salesforce.app import SalesforceEmulator
from sync.emulators.salesforce.common import CLIENT_ID, CLIENT_SECRET, ORG_ID, TOKEN

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "ORG_ID", "TOKEN", "SalesforceEmulator"]
