"""The first-run match rule (pure: over Deal values, no store) and its normalisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.config import Config, load_config
from sync.engine import matching
from sync.engine.matching import Deal
from sync.engine.normalise import normalise_company, normalise_text

ROOT = Path(__file__).resolve().parents[2]


class _Engine:
    """What ``propose`` reads of an engine when it is handed the deals: the config."""

    def __init__(self, **match: Any) -> None:
        config = load_config(ROOT / "config.yaml", env={})
        rule = config.sync.match.model_copy(update=match)
        self.config: Config = config.model_copy(
            update={"sync": config.sync.model_copy(update={"match": rule})}
        )


def deal(rid: str, system: str, name: str, company: str, **fields: Any) -> Deal:
    return Deal(rid, ((system, f"{system}-{rid}"),), {"name": name, "company": company, **fields})


def propose(deals: list[Deal], **rule: Any) -> matching.Proposal:
    return matching.propose(_Engine(**rule), deals)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hooli", "Hooli Inc."),
        ("Hooli, Inc.", "HOOLI INC"),
        ("hooli llc", "Hooli"),
        ("Initech GmbH", "initech"),
        ("Globex Corp.", "Globex Corporation"),
        ("  Umbrella   Ltd ", "umbrella"),
        ("Stark Co", "Stark Company"),
        ("Société Générale SA", "societe generale"),
    ],
)
def test_company_names_agree_but_for_case_spacing_punctuation_and_suffix(a: str, b: str) -> None:
    """Company names compare equal across case, spacing, punctuation, accents and legal-form
    suffixes."""
    assert normalise_company(a) == normalise_company(b)


def test_a_suffix_alone_is_a_name() -> None:
    """A company called just "Co" keeps its name: only trailing suffixes after a name drop."""
    assert normalise_company("Co") == "co"
    assert normalise_company("Inc Ltd") == "inc"


def test_deal_names_ignore_case_spacing_and_punctuation() -> None:
    """Deal names compare across case, spacing and punctuation, not across words."""
    assert normalise_text("Renewal 042 - Platform") == normalise_text("renewal 042  platform.")
    assert normalise_text("Renewal 042") != normalise_text("Renewal 043")


def test_one_deal_per_system_is_matched_and_alone_is_single() -> None:
    """Copies in different systems with equal normalised name and company are one deal; a
    deal no other system holds is single."""
    proposal = propose(
        [
            deal("r1", "ruddr", "Hooli renewal", "Hooli"),
            deal("c1", "close", "HOOLI RENEWAL", "Hooli, Inc."),
            deal("p1", "parsalink", "hooli renewal", "hooli llc"),
            deal("r2", "ruddr", "Initech expansion", "Initech"),
        ]
    )
    assert proposal.counts == {
        "matched": 1,
        "ambiguous": 0,
        "single": 1,
        "to_link": 2,
        "near_misses": 0,
    }


def test_two_candidates_in_one_system_are_ambiguous_never_guessed() -> None:
    """Two Close deals that read the same as one Ruddr deal: ambiguous, all three reported."""
    proposal = propose(
        [
            deal("r1", "ruddr", "Hooli renewal", "Hooli", amount="10.00"),
            deal("c1", "close", "Hooli renewal", "Hooli", amount="10.00"),
            deal("c2", "close", "Hooli Renewal", "Hooli Inc", amount="99.00"),
        ]
    )
    (group,) = proposal.of("ambiguous")
    assert {d.record_id for d in group.deals} == {"r1", "c1", "c2"}
    assert "close holds 3 candidates" in group.why
    assert proposal.counts["to_link"] == 0


def test_tie_breakers_split_an_ambiguous_group_when_they_tell_every_deal_apart() -> None:
    """With amount as a tie-breaker, the Close deal of the same amount is linked and the other
    becomes a deal of its own."""
    deals = [
        deal("r1", "ruddr", "Hooli renewal", "Hooli", amount="10.00"),
        deal("c1", "close", "Hooli renewal", "Hooli", amount="10.00"),
        deal("c2", "close", "Hooli renewal", "Hooli", amount="99.00"),
    ]
    proposal = propose(deals, tie_breakers=["amount"])
    (matched,) = proposal.of("matched")
    assert {d.record_id for d in matched.deals} == {"r1", "c1"}
    assert [g.deals[0].record_id for g in proposal.of("single")] == ["c2"]


def test_records_already_linked_by_an_id_take_part_as_one_deal() -> None:
    """A Ruddr+Truto record (linked by Salesforce id) and a Close copy: one deal. Two such
    records with the same name overlap in systems, so neither can be the other: each is its
    own deal — until a Close copy could be either of them (ambiguous)."""
    linked = Deal(
        "rt", (("ruddr", "r"), ("truto_salesforce", "006")), {"name": "X", "company": "Y"}
    )
    assert propose([linked, deal("c", "close", "x", "y")]).counts["to_link"] == 1
    twin = Deal(
        "rt2", (("ruddr", "r2"), ("truto_salesforce", "007")), {"name": "X", "company": "Y"}
    )
    assert propose([linked, twin]).counts == {
        "matched": 2,
        "ambiguous": 0,
        "single": 0,
        "to_link": 0,
        "near_misses": 0,
    }
    assert propose([linked, twin, deal("c", "close", "x", "y")]).counts["ambiguous"] == 1


def test_deals_of_one_name_that_only_one_system_holds_are_each_their_own() -> None:
    """Two Ruddr deals of one name at one company, and no other system holds one: nothing to
    confuse them with, so they are not ambiguous — two singles, created everywhere once
    approved."""
    proposal = propose(
        [
            deal("r1", "ruddr", "Hooli renewal", "Hooli", amount="10.00"),
            deal("r2", "ruddr", "Hooli Renewal", "Hooli Inc", amount="99.00"),
        ]
    )
    assert proposal.counts["ambiguous"] == 0
    singles = proposal.of("single")
    assert sorted(g.deals[0].record_id for g in singles) == ["r1", "r2"]
    assert all("no other system holds one" in g.why for g in singles)


def test_a_deal_without_a_company_is_never_matched() -> None:
    """The rule compares name and company: a deal lacking one is single, not matched by name."""
    proposal = propose([deal("r", "ruddr", "X", ""), deal("c", "close", "X", "")])
    assert proposal.counts["single"] == 2


def test_near_misses_are_reported_not_linked() -> None:
    """Close names at one company, or one name at two companies, are near-misses."""
    proposal = propose(
        [
            deal("r1", "ruddr", "Hooli platform renewal", "Hooli"),
            deal("c1", "close", "Hooli platform renewals", "Hooli"),
            deal("r2", "ruddr", "Initech expansion", "Initech"),
            deal("p2", "parsalink", "Initech expansion", "Initrode"),
        ]
    )
    whys = sorted(m.why for m in proposal.near_misses)
    assert len(whys) == 2 and whys[1] == "same name, another company"
    assert proposal.counts["matched"] == 0


def test_the_rule_is_configurable_and_checked(tmp_path: Path) -> None:
    """sync.match.fields takes canonical field names; anything else is a config error."""
    path = tmp_path / "config.yaml"
    text = (
        (ROOT / "config.yaml")
        .read_text()
        .replace("fields: [name, company]", "fields: [name, compnay]")
    )
    path.write_text(text)
    from sync.config import ConfigError

    with pytest.raises(ConfigError, match=r"sync\.match\.fields"):
        load_config(path, env={})


def test_a_large_store_whose_systems_share_nothing_is_matched_in_linear_time() -> None:
    """10,000 singles in two systems at ten companies: the proposal (near-misses included,
    within their budget) takes well under ten seconds, not the minutes of a pairwise search."""
    import time

    deals = [
        deal(f"d{i}", "ruddr" if i % 2 else "close", f"Deal {i * 7919 % 100003}", f"Co {i % 10}")
        for i in range(10_000)
    ]
    started = time.perf_counter()
    proposal = propose(deals)
    assert time.perf_counter() - started < 10
    assert proposal.counts["single"] == 10_000
