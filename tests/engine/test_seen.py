"""``SeenIds``, what a complete scan's deletes are found from: every id added is in it, ids
never added are not, and its length counts each id once however often it was listed."""

from __future__ import annotations

from sync.engine.seen import SeenIds


def test_added_ids_are_seen_and_others_are_not() -> None:
    """Ids added over several pages (and before and after a lookup) answer ``in``; ids never
    added, and what is not an id at all, do not."""
    seen = SeenIds(f"deal-{n}" for n in range(0, 3000, 2))
    assert "deal-10" in seen
    seen.update(f"deal-{n}" for n in range(3000, 6000, 2))
    assert all(f"deal-{n}" in seen for n in range(0, 6000, 2))
    assert not any(f"deal-{n}" in seen for n in range(1, 6000, 2))
    assert None not in seen
    assert "" not in seen


def test_an_id_listed_twice_counts_once() -> None:
    """A deal a shifting listing showed on two pages is one deal listed (``pace`` counts it)."""
    seen = SeenIds(["a", "b", "a"])
    seen.update(["b", "c"])
    assert len(seen) == 3
    assert len(SeenIds()) == 0
