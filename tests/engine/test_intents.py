"""``intents.may_qualify``: the summary filter a lost create's recovery reads in full only the
deals that pass (issue 25) — never stricter than the rule itself (``best_intent``)."""

from __future__ import annotations

import datetime as dt

from sync.engine.intents import Intent, best_intent, may_qualify

AT = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
SENT = {"name": "Ours", "amount": 100, "company": "Acme", "stage": "proposal", "notes": "x"}
INTENT = Intent(1, "rec_1", AT, SENT)
LATER = AT + dt.timedelta(seconds=5)
EDITED = LATER + dt.timedelta(seconds=5)


def summary(**fields: object) -> dict[str, object]:
    """A summary's canonical fields: ``notes`` is one it does not carry (None)."""
    return {
        "name": "Ours",
        "amount": 100,
        "company": "Acme",
        "stage": "proposal",
        "notes": None,
        **fields,
    }


def test_a_deal_whose_name_agrees_passes_whatever_its_other_fields() -> None:
    """The fields the summary lacks may still lift the full deal over the threshold."""
    theirs = summary(amount=1, company="Other", stage="won")
    assert may_qualify(INTENT, theirs, LATER, LATER)


def test_another_name_passes_only_as_a_rename_with_every_carried_field_equal() -> None:
    renamed = summary(name="Ours (edited)")
    assert may_qualify(INTENT, renamed, EDITED, LATER)
    assert not may_qualify(INTENT, renamed, LATER, LATER), "never edited: somebody else's"
    assert not may_qualify(INTENT, summary(name="Ours (edited)", amount=5), EDITED, LATER)


def test_a_deal_older_than_the_intent_is_never_ours() -> None:
    old = AT - dt.timedelta(hours=1)
    assert not may_qualify(INTENT, summary(), old, old)


def test_what_the_record_holds_now_counts_as_much_as_what_was_sent() -> None:
    now = {**SENT, "name": "Ours, renamed here", "amount": 7}
    assert may_qualify(INTENT, summary(name="Ours, renamed here", amount=7), LATER, LATER, now)


def test_what_passes_the_rule_in_full_always_passes_the_summary_filter() -> None:
    """Every full deal ``best_intent`` adopts passes the filter on its summary."""
    for full, stamp in (
        ({**SENT, "amount": 1}, LATER),
        ({**SENT, "name": "Ours (edited)"}, EDITED),
        ({**SENT, "notes": "changed there"}, LATER),
    ):
        assert best_intent([INTENT], full, stamp, {}, LATER) is not None, full
        assert may_qualify(INTENT, {**full, "notes": None}, stamp, LATER), full
