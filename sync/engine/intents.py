"""Open create intents: deals we may have created whose answer never came back (DESIGN §2.5).

A create is journaled as an intent (``Outbox.intent_at`` and ``Outbox.intent``, the canonical
fields it sent) before its request leaves. When the answer is lost (a timeout, a 5xx after the
vendor committed, a process killed in between) the deal exists in the vendor but not in our
links. Two things may meet it next, in either order:

- the create's retry looks the deal up (``push.recovery.recover``) and adopts it;
- a capture of that system lists it as an unlinked deal. Vendors that hold our record id
  (Close's custom field, Truto's remote field) say whose it is; for the others (Ruddr,
  ParsaLink) capture asks this module before making a new canonical record.

The rule, written for people in the README ("How the sync decides", Identity). Adopting
somebody else's deal would merge two real deals into one (one of them vanishes everywhere), so
the rule errs towards a visible duplicate, never towards a merge:

1. Only intents of *this* system whose record has no link here yet, still open (pending,
   retry, parked or in flight), are candidates; and only in systems that cannot hold our
   record id — where they can (Close, Truto), the id the deal carries decides alone.
2. The deal cannot predate the intent: its creation stamp (its modified stamp where the
   vendor gives none) must be at or after the intent minus ``SLACK`` (vendor clock skew).
3. It is compared field by field with what the intent sent *and* with what the record holds
   now (either may be the closer: the deal may have been edited there, or here, since), over
   the fields both carry; the name weighs two, every other field one.
   - The name agrees: a score of at least ``THRESHOLD`` adopts it (an amount edited there
     meanwhile does not make our deal a new one).
   - The name differs: it is ours only if it was renamed there — the vendor shows it was
     modified after it was made — and every other field compared (at least ``MIN_OTHERS``)
     agrees. A deal made with another name and never touched is somebody else's, however
     alike: users make deals from templates.
4. The best score wins; equal scores go to the oldest intent (two identical creates: each
   deal is adopted by one intent, and the other intent's retry finds its own deal). A renamed
   deal that more than one intent could claim is adopted by none.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from sync.store import outbox
from sync.timefmt import maybe_utc

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
        if row_id is not None and (at := maybe_utc(intent_at)) is not None
    ]


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value).strip().casefold()
    return value


@dataclass(frozen=True)
class Score:
    """How well a vendor deal matches what we expected it to hold."""

    value: float  # 0..1, the name weighing NAME_WEIGHT
    name_agrees: bool
    others: int  # other fields that agree
    compared: int  # other fields compared


def similarity(expected: Mapping[str, Any], theirs: Mapping[str, Any]) -> Score:
    """How well a vendor deal (``theirs``) matches what we expected it to hold, over the
    fields both carry."""
    weight = agreed = 0.0
    name_agrees, others, compared = False, 0, 0
    for name, value in expected.items():
        if value is None or name not in theirs:
            continue
        w = NAME_WEIGHT if name == "name" else 1.0
        weight += w
        compared += name != "name"
        if _norm(theirs[name]) == _norm(value):
            agreed += w
            if name == "name":
                name_agrees = True
            else:
                others += 1
    return Score(agreed / weight if weight else 0.0, name_agrees, others, compared)


def _renamed(stamp: dt.datetime | None, created: dt.datetime | None) -> bool:
    """The vendor shows the deal was edited after it was made (so a name that differs from
    what our create sent may be a rename of our deal)."""
    return stamp is not None and created is not None and stamp > created


def _qualifies(score: Score, renamed: bool) -> bool:
    if score.name_agrees:
        return score.value >= THRESHOLD
    return renamed and score.others == score.compared and score.others >= MIN_OTHERS


def best_intent(
    intents: list[Intent],
    theirs: Mapping[str, Any],
    stamp: dt.datetime | None,
    current: Mapping[str, Mapping[str, Any]],
    created: dt.datetime | None = None,
) -> tuple[Intent, Score] | None:
    """The intent a vendor deal most likely came from, with its score; None when no intent
    qualifies. ``stamp``/``created``: the deal's modified and creation stamps; ``current``:
    each intent record's canonical fields as they are now."""
    born = created or stamp
    renamed = _renamed(stamp, created)
    best: tuple[Intent, Score] | None = None
    claimants = 0  # intents the deal qualifies for only as a rename
    for intent in intents:  # oldest first: on equal scores the oldest keeps the deal
        if born is not None and born < intent.at - SLACK:
            continue  # the deal existed before we asked for it: not ours
        scores = [similarity(intent.sent, theirs)]
        if intent.record_id in current:
            scores.append(similarity(current[intent.record_id], theirs))
        good = [score for score in scores if _qualifies(score, renamed)]
        claimants += bool(good) and not any(score.name_agrees for score in good)
        for score in good:
            if best is None or rank(score) > rank(best[1]):
                best = (intent, score)
    if best is None or (not best[1].name_agrees and claimants > 1):
        return None  # a renamed deal several creates could have made: none can be sure
    return best


def may_qualify(
    intent: Intent,
    summary: Mapping[str, Any],
    stamp: dt.datetime | None,
    created: dt.datetime | None,
    current: Mapping[str, Any] | None = None,
) -> bool:
    """Could a deal of which a list gave only a summary qualify for ``intent`` once read in
    full? A necessary condition of ``best_intent``, so a summary that fails it needs no full
    read (ParsaLink: a GET each). ``summary``: its canonical fields, None where the summary
    does not carry the field; ``current``: what the intent's record holds now."""
    born = created or stamp
    if born is not None and born < intent.at - SLACK:
        return False
    carried = {name: value for name, value in summary.items() if value is not None}
    for expected in (intent.sent, current):
        if not expected:
            continue
        if expected.get("name") is not None and "name" not in carried:
            return True  # the name cannot be judged from the summary
        score = similarity(expected, carried)
        if score.name_agrees:
            return True  # the fields the summary lacks may lift it over THRESHOLD
        if _renamed(stamp, created) and score.others == score.compared:
            return True  # a rename keeps every other field: those the summary carries do
    return False


def rank(score: Score) -> tuple[bool, float]:
    """The name agreeing outranks any rename; then the closer match."""
    return score.name_agrees, score.value


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


# --------------------------------------------------------------------------- updates in doubt
#
# An update whose answer never came back (a process killed after the vendor applied it, a 5xx
# after commit) leaves the vendor's deal differing from our shadow by exactly what we sent.
# Read as that vendor's own edit, our echo would meet a newer edit made elsewhere as a
# "conflict" — and under a ``prefer`` policy ranking that vendor first, overwrite it. So an
# update's values are recorded on its outbox row (``Outbox.intent``: field -> values sent, the
# last few attempts) before its request leaves, and a capture that meets one of them where the
# shadow had another takes it as our echo: the shadow moves, nothing changed there.

#: how many earlier attempts' values an in-doubt update remembers per field
DOUBT_DEPTH = 4


def in_doubt(earlier: Mapping[str, Any] | None, diff: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The values an update may have left in the vendor: this attempt's and, per field, those
    of earlier attempts whose outcome is unknown."""
    doubts = {
        name: list(values) for name, values in (earlier or {}).items() if isinstance(values, list)
    }
    for name, value in diff.items():
        values = [v for v in doubts.get(name, []) if v != value]
        doubts[name] = [*values, value][-DOUBT_DEPTH:]
    return doubts


def open_update_doubts(session: Session, system: str) -> dict[str, dict[str, list[Any]]]:
    """Record id -> the values its open, in-doubt update to ``system`` may have left there."""
    rows = outbox.update_doubts(session, system)
    return {record_id: dict(doubts) for record_id, doubts in rows if doubts}


def echoes(
    doubts: Mapping[str, list[Any]], theirs: Mapping[str, Any], shadow: Mapping[str, Any]
) -> dict[str, Any]:
    """The fields a vendor deal changed since ``shadow`` to a value an in-doubt update of ours
    sent: our own write, not an edit made there."""
    return {
        name: theirs[name]
        for name, values in doubts.items()
        if isinstance(values, list)
        and name in theirs
        and theirs[name] != shadow.get(name)
        and theirs[name] in values
    }
