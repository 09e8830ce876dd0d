"""Capture: read what changed in one system and fold it into the store (DESIGN §2.1–2.3).

Per page, in one transaction: skip what we already hold (same vendor stamp, decided from link
columns; or a projection equal to the shadow: echo suppression), map the rest to canonical
form, resolve the identity of unlinked deals, merge field by field against the shadow, journal
every decision, and enqueue pushes for the systems whose shadow now differs. The store rows a
page needs (links, records, identity keys) are loaded in a few queries per page, not per
record; the rows it creates are inserted with one statement per table. The next page is read
while this one is folded in (``prefetch.one_ahead``).

Cursors. The compound cursor (stamp, external id) moves in the page's transaction, only over
committed records and never past the run's start (in the vendor's clock), so a crash re-reads
and never skips. A poll that read *every* page also sets the **watermark**: the run's start in
the vendor's clock, measured from the HTTP ``Date`` of the listing's first answer. Everything
the vendor had committed by then has been seen, so the next incremental poll asks from
``watermark - lookback`` — after a quiet period one empty page — instead of from the newest
stamp, which would re-read every record modified in the lookback before it, poll after poll.
Without a ``Date`` the watermark stays unset and polls ask from ``stamp - lookback``.

Healing. A full compare (``full=True``: a reconcile) counts ``healed``: records that differ
from the store (or are unlinked) although their vendor stamp is older than what the previous
complete poll had covered (its watermark, else the cursor stamp for incremental systems or
the poll's start for scan systems; minus the lookback, which the regular path re-reads
anyway), and deletes a full scan finds in an incremental system without a delete feed. The
regular path should have delivered all of them: in a healthy installation the count is 0.

Layout: ``poll`` (the loop, cursors, watermark), ``page`` (page state, loading, skip rules),
``identity`` (matching unlinked deals), ``merge`` (field merge, echoes, conflicts).
"""

from __future__ import annotations

from sync.engine.capture.page import NewLink, NewRecord, Poll
from sync.engine.capture.poll import capture, capture_mode

__all__ = ["NewLink", "NewRecord", "Poll", "capture", "capture_mode"]
