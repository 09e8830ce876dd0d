"""The deals a complete scan listed, held compactly: what a scan system's deletes are found
from (``deletes.after_complete_scan``: a live link the listing did not show was deleted).

A million external ids held as a set of strings take some 110 MB, most of a worker's memory
at that size (issue 25: under 300 MB per process). ``SeenIds`` keeps an 8-byte digest of
each instead, 8 MB a million, sorted into buckets once the listing is complete.

The digest is BLAKE2b salted afresh for each scan. Two ids that share a digest make an unseen
deal look seen: its delete is noticed a scan later, when the salt differs. With 64 bits the
chance that any of a scan's vanished deals collides with one of a million listed ones is
about 5 in 10^14 per vanished deal.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from hashlib import blake2b

BUCKETS = 256


class SeenIds:
    """A set of external ids that only answers ``in`` and ``len`` (the distinct ids added)."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._salt = os.urandom(16)  # a fresh hash each scan: a collision is not repeated
        self._buckets = [array("q") for _ in range(BUCKETS)]
        self._sorted = True
        self.update(ids)

    def _digest(self, external_id: str) -> int:
        raw = blake2b(external_id.encode(), digest_size=8, salt=self._salt).digest()
        return int.from_bytes(raw, "little", signed=True)

    def update(self, ids: Iterable[str]) -> None:
        buckets = self._buckets
        for external_id in ids:
            digest = self._digest(external_id)
            buckets[digest % BUCKETS].append(digest)
        self._sorted = False

    def _sort(self) -> None:
        """Each bucket sorted, without the ids listed twice (a page that shifted under the
        listing): a few thousand numbers at a time, never the whole scan as Python ints."""
        if not self._sorted:
            self._buckets = [array("q", sorted(set(bucket))) for bucket in self._buckets]
            self._sorted = True

    def __contains__(self, external_id: object) -> bool:
        if not isinstance(external_id, str):
            return False
        self._sort()
        digest = self._digest(external_id)
        bucket = self._buckets[digest % BUCKETS]
        at = bisect_left(bucket, digest)
        return at < len(bucket) and bucket[at] == digest

    def __len__(self) -> int:
        self._sort()
        return sum(len(bucket) for bucket in self._buckets)
