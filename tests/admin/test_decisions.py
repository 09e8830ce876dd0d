"""Settling an ambiguous group in the console is what a corrected match file does for it, and
refuses what such a file refuses."""

from __future__ import annotations

import pytest

from sync.admin.decisions import settle
from sync.engine import matching
from sync.engine.operations import AdminError


def _deal(record_id: str, *copies: tuple[str, str]) -> matching.Deal:
    return matching.Deal(record_id, tuple(sorted(copies)), {"name": "Renewal", "company": "Acme"})


def _proposal() -> matching.Proposal:
    ruddr = _deal("rec_r", ("ruddr", "r1"))
    close_a, close_b = _deal("rec_a", ("close", "c1")), _deal("rec_b", ("close", "c2"))
    matched = matching.Group("M00001", "matched", [_deal("rec_m", ("close", "c9"))], "same")
    return matching.Proposal(
        groups=[matched, matching.Group("A00002", "ambiguous", [ruddr, close_a, close_b], "?")],
        rule="name + company",
    )


def test_the_chosen_deals_become_one_and_the_others_each_their_own() -> None:
    settled = settle(_proposal(), {"A00002": ["rec_r", "rec_b"]})
    by_id = {group.match_id: group for group in settled.groups}
    assert by_id["M00001"].status == "matched"  # untouched
    assert [d.record_id for d in by_id["A00002"].deals] == ["rec_r", "rec_b"]
    assert by_id["A00002"].status == "matched" and by_id["A00002"].to_link
    assert [(g.status, [d.record_id for d in g.deals]) for g in settled.groups[2:]] == [
        ("single", ["rec_a"])
    ]
    assert settled.counts["ambiguous"] == 0


@pytest.mark.parametrize(
    ("choices", "words"),
    [
        ({"A00002": ["rec_a", "rec_b"]}, "same system"),
        ({"A00002": ["rec_r"]}, "at least two"),
        ({"A00002": ["rec_r", "rec_zzz"]}, "no deal rec_zzz"),
        ({"M00001": ["rec_m"]}, "not an ambiguous group"),
    ],
)
def test_a_settlement_a_match_file_would_refuse_is_refused(
    choices: dict[str, list[str]], words: str
) -> None:
    with pytest.raises(AdminError, match=words):
        settle(_proposal(), choices)
