"""A Salesforce system is bound to its org id, not to its instance URL (which can change)."""

from __future__ import annotations

from pathlib import Path

from sync.config import load_config
from sync.engine.bindings import binding_of

ROOT = Path(__file__).resolve().parents[2]


def test_a_new_instance_url_of_the_same_org_keeps_the_binding() -> None:
    """With options.org_id set, moving base_url (My Domain, org migration) changes nothing;
    another org id is another binding; without an org id the URL still counts."""
    config = load_config(ROOT / "examples/salesforce.yaml", env={})
    system = config.systems["salesforce"]
    bound = system.model_copy(update={"options": {**system.options, "org_id": "00Dxx0000001"}})
    moved = bound.model_copy(update={"base_url": "https://acme.my.salesforce.com"})
    other = bound.model_copy(update={"options": {**bound.options, "org_id": "00Dyy0000002"}})

    def binding(cfg: object) -> dict[str, object]:
        return binding_of(config.model_copy(update={"systems": {"salesforce": cfg}}), "salesforce")

    assert binding(bound) == binding(moved) == {"type": "salesforce", "account": "00Dxx0000001"}
    assert binding(other) != binding(bound)
    assert "base_url" in binding(system)
