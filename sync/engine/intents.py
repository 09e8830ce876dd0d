"""Open create intents: deals we may have created whose answer never came back (DESIGN §2.5).

A create is journaled as an intent (``Outbox.intent_at`` and ``Outbox.intent``, the canonical
fields it sent) before its request leaves. When the answer is lost (a timeout, a 5xx after the
vendor committed, a process killed in between) the deal exists in the vendor but not in our
links. Two things may meet it next, in either order:

- the create's retry looks the deal up (``push._recover``) and adopts it;
- a capture of that system lists it as an unlinked deal. Vendors that hold our record id
  (Close's custom field, Truto's remote field) say whose it is; for the others (Ruddr,
  ParsaLink) capture asks this module before making a new canonical record.

The rule, written for people in the README ("How the sync decides", Identity):

1. Only intents of *this* system whose record has no link here yet, still open (pending,
   retry, parked or in flight), are candidates.
2. The deal cannot predate the intent: its vendor stamp must be at or after the intent minus
   ``SLACK`` (clock skew between the vendor and us).
3. It is compared field by field with what the intent sent *and* with what the record holds
   now (either may be the closer: the deal may have been edited there, or here, since), over
   the fields both carry. The name weighs two, every other field one. A score of at least
   ``THRESHOLD`` adopts it, provided the name agrees or at least ``MIN_OTHERS`` other fields
   do — so an edit of the amount or even of the name between the create and the capture does
   not turn our own deal into a new one.
4. The best score wins; equal scores go to the oldest intent (two identical creates: each
   deal is adopted by one intent, and the other intent's retry finds its own deal).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from sync.engine.state import aware_utc
from sync.store import outbox

#: a deal stamped this long before an intent may still be its (vendor clock skew)
SLACK = dt.timedelta(minutes=10)
THRESHOLD = 0.6
MIN_OTHERS = 3
NAME_WEIGHT = 2.0


@dataclass
class Intent:
    """An open create of one record in one system, and what it sent."""

    row_id: int
    record_id: str
    at: dt.datetime
    sent: dict[str, Any]


def open_intents(session: Session, system: str) -> list[Intent]:
    """The system's open create intents whose record is not linked there yet, oldest first."""
    rows = outbox.open_intents(session, system)
    return [
        Intent(row_id, record_id, at, dict(sent or {}))
        for row_id, record_id, intent_at, sent in rows
        if row_id is not None and (at := aware_utc(intent_at)) is not None
    ]


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value).strip().casefold()
    return value


def similarity(expected: Mapping[str, Any], theirs: Mapping[str, Any]) -> tuple[float, bool, int]:
    """How well a vendor deal (``theirs``) matches what we expected it to hold: (score 0..1,
    the name agrees, how many other fields agree), over the fields both carry."""
    weight = agreed = 0.0
    name_agrees, others = False, 0
    for name, value in expected.items():
        if value is None or name not in theirs:
            continue
        w = NAME_WEIGHT if name == "name" else 1.0
        weight += w
        if _norm(theirs[name]) == _norm(value):
            agreed += w
            if name == "name":
                name_agrees = True
            else:
                others += 1
    return (agreed / weight if weight else 0.0), name_agrees, others


def _qualifies(score: tuple[float, bool, int]) -> bool:
    value, name_agrees, others = score
    return value >= THRESHOLD and (name_agrees or others >= MIN_OTHERS)


def best_intent(
    intents: list[Intent],
    theirs: Mapping[str, Any],
    stamp: dt.datetime | None,
    current: Mapping[str, Mapping[str, Any]],
) -> tuple[Intent, float] | None:
    """The intent a vendor deal most likely came from, with its score; None when no intent
    qualifies. ``current``: each intent record's canonical fields as they are now."""
    best: tuple[Intent, float] | None = None
    for intent in intents:  # oldest first: on equal scores the oldest keeps the deal
        if stamp is not None and stamp < intent.at - SLACK:
            continue  # the deal existed before we asked for it: not ours
        scores = [similarity(intent.sent, theirs)]
        if intent.record_id in current:
            scores.append(similarity(current[intent.record_id], theirs))
        for score in scores:
            if _qualifies(score) and (best is None or score[0] > best[1]):
                best = (intent, score[0])
    return best


def adopted_base(
    sent: Mapping[str, Any], theirs: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Shadow and ``sent`` of an adopted deal, as if the create had answered: the base is what
    we sent, so an edit made there since is a change on that side (merged by the usual rules,
    never overwritten); a value the target filled in where we sent nothing stays its own
    (``Link.sent``), as on an answered create."""
    shadow: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    for name, value in theirs.items():
        ours = sent.get(name)
        shadow[name] = ours if ours is not None else value
        if name in sent and ours is None and value is not None:
            kept[name] = [None, value]
    return shadow, kept
