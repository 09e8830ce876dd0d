"""Matching deals that already exist in several systems (the guided first run, README).

Capture links what it can be sure of — an external id (Ruddr's ``salesforceId`` /
``hubspotId`` against Truto's Salesforce ids), crmsync's record id written in the vendor, an
exact ``sync.natural_key`` — and makes one canonical record for every other vendor deal. On a
fresh store whose systems already held the same deals, that is one record per copy. This module
proposes which of those records are one deal, by the ``sync.match`` rule: the ``fields``
(default name + company) must agree once normalised — case, accents, whitespace, punctuation
and, for companies, suffixes such as Inc, LLC, Ltd, GmbH, Corp, Co — and ``tie_breakers``
(close date, amount) split a group that holds two deals of one system.

Per group of records sharing a key:
- each system appears once at most → **matched** (records of several systems; linked on apply)
- one system appears twice even after the tie-breakers → **ambiguous**: never guessed; on
  apply its records are held (nothing created from them) until a person decides (``--apply``)
- one record in one system → **single** (created in the others once approved)
Unmatched deals of different systems with close names (``near_miss``) or the same name at
another company are reported as **near-misses**, for a person to look at; never linked.

The proposal is computed from the store only (no vendor call) and is deterministic, so
``crmsync match`` can be run, exported (CSV), corrected and applied at any time. Applying a
link merges the records (fields by the conflict policy, keyed fields key by key, links, identity
keys, journal, conflicts and pushes moved onto the record kept) and queues what each system
now lacks or holds differently.

Layout: ``proposal`` (the groups and near-misses), ``csvfile`` (export and corrections),
``linking`` (applying a proposal to the store). Callers use ``sync.engine.matching``.
"""

from __future__ import annotations

from sync.engine.matching.csvfile import CSV_COLUMNS, MatchFileError, read_csv, write_csv
from sync.engine.matching.linking import CHUNK, Applied, apply
from sync.engine.matching.proposal import (
    NEAR_MISS_BUDGET,
    Deal,
    Group,
    NearMiss,
    Proposal,
    Status,
    load_deals,
    normalise,
    propose,
)

__all__ = [
    "CHUNK",
    "CSV_COLUMNS",
    "NEAR_MISS_BUDGET",
    "Applied",
    "Deal",
    "Group",
    "MatchFileError",
    "NearMiss",
    "Proposal",
    "Status",
    "apply",
    "load_deals",
    "normalise",
    "propose",
    "read_csv",
    "write_csv",
]
