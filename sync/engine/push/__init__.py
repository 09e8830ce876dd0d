"""Push: drain one system's outbox (DESIGN §2.4–2.6).

Each row is claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers can
drain one outbox without double sends), then:

- update: diff the canonical projection against the shadow and send only the changed fields;
  the shadow is then set from the vendor's answer for the fields sent;
- create: journal the intent *before* sending; if an earlier attempt's outcome is unknown, look
  the deal up in the target first and adopt it — no retry ever duplicates a deal;
- delete: delete in the target (a 404 is success: it is gone).

Failures: a 4xx goes to dead letters with the vendor's message (the run goes on); a 404 on
update is a delete in the target (its policy applies); transient errors and 429s wait with
exponential backoff (or the vendor's signal); an unresolvable reference parks the row.

No transaction is open while a vendor answers. A drain works in three steps per claimed batch:

1. *prepare* (the draining thread): load the batch's rows, records and links in three queries,
   compute each diff and payload, and commit the intents of the batch's creates in one
   transaction — an intent is durable before its request leaves;
2. *send* (a bounded pool of threads, ``systems.<name>.concurrency``): the vendor call, and the
   vendor's answer mapped to canonical fields; no session is open (except a create recovery's
   look-up and its fresh intent);
3. *apply* (the draining thread): the outcomes that arrived, decided on a read snapshot and
   written in one short write transaction that first re-checks what it read (``snapshot``):
   shadows from the answers, journal, outbox status, dead letters, retries, the 404 policy.
   Each row is re-checked: still claimed by us, and not re-enqueued meanwhile (a capture
   changed the deal while it was in flight: the row goes back to ``pending`` and is diffed
   again). A row that loses a race (a unique link) is put back for a soon retry.

Layout: ``drain`` (the loop), ``prepare`` (claim, diff, intents), ``send`` (vendor calls,
create recovery), ``apply`` (the transaction, its row-by-row fallback, rows given back),
``snapshot`` (an apply's reads and decisions before the write lock, re-checked in it) and
``applier`` (each outcome: links, shadows, retry, park, dead letters), ``rows`` (the outbox
columns apply reads and writes).
"""

from __future__ import annotations

from sync.engine.push.apply import apply_results
from sync.engine.push.drain import drain, initial_capture_done
from sync.engine.push.prepare import claim, prepare
from sync.engine.push.send import send, send_many

__all__ = [
    "apply_results",
    "claim",
    "drain",
    "initial_capture_done",
    "prepare",
    "send",
    "send_many",
]
